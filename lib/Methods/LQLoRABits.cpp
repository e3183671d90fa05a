//===- LQLoRABits.cpp - LQ-LoRA bit allocation under a budget -----*- C++ -*-===//
//
// Picks one quant format per projection minimising the total quantization
// error under an average-bit budget (a multiple-choice knapsack), and writes
// the allocation as a config JSON.
//
//===----------------------------------------------------------------------===//

#include "PassUtils.h"

#include "mixq/Kernels/Quant.h"
#include "mixq/Methods/Passes.h"

#include "mlir/IR/Builders.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"

#include <cmath>

using namespace mlir;

namespace mixq {
#define GEN_PASS_DEF_MIXQLQLORABITSPASS
#include "mixq/Methods/Passes.h.inc"
} // namespace mixq

using namespace mixq;
using namespace mixq::methods;

namespace {

/// One linear's candidates: storage bits and squared error per format.
struct Choice {
  QuantSpec spec;
  double bits = 0.0;  ///< total bits of the tensor
  double error = 0.0; ///< ||W - dequant(quant(W))||_F^2
};

struct Item {
  LinearOp op;
  std::vector<Choice> choices;
  size_t pick = 0;
};

struct LQLoRABitsPass
    : public mixq::impl::MixQLQLoRABitsPassBase<LQLoRABitsPass> {
  using MixQLQLoRABitsPassBase::MixQLQLoRABitsPassBase;
  void runOnOperation() override;
};

} // namespace

static std::vector<QuantSpec> candidateSpecs() {
  std::vector<QuantSpec> specs;
  for (QuantFormat f : {QuantFormat::Int2, QuantFormat::Int3,
                        QuantFormat::NF4, QuantFormat::Int8}) {
    QuantSpec s;
    s.format = f;
    s.doubleQuant = f == QuantFormat::NF4;
    s.tileRows = 1;
    s.tileCols = 64;
    specs.push_back(s);
  }
  return specs;
}

static FailureOr<Item> measure(LinearOp op, const Checkpoint &ckpt) {
  FailureOr<std::vector<float>> w = readLinearWeight(ckpt, op);
  if (failed(w))
    return failure();
  int64_t out = op.getOutFeatures(), in = op.getInFeatures();
  Item item{op, {}, 0};
  std::vector<float> deq(w->size());
  // Int tiles: one row by the largest divisor of `in` up to 64 columns.
  int64_t tileCols = 64;
  while (in % tileCols != 0)
    --tileCols;
  for (QuantSpec s : candidateSpecs()) {
    if (isIntTileFormat(s.format))
      s.tileCols = tileCols;
    if (isIntTileFormat(s.format) && tileCols < 2)
      continue;
    auto q = kernels::quantize(w->data(), out, in, s);
    if (!q)
      return emitLLVMError(op, q.takeError());
    kernels::dequantize(*q, deq.data());
    double err = 0.0;
    for (size_t i = 0; i < deq.size(); ++i)
      err += std::pow(double((*w)[i]) - double(deq[i]), 2);
    item.choices.push_back({s, double(q->storageBytes()) * 8.0, err});
  }
  if (item.choices.empty())
    return op.emitError("no candidate format fits ") << weightName(op);
  return item;
}

/// Picks argmin error + lambda * bits per item; returns the total bits.
static double pickAll(std::vector<Item> &items, double lambda) {
  double bits = 0.0;
  for (Item &it : items) {
    double best = INFINITY;
    for (size_t c = 0; c < it.choices.size(); ++c) {
      double v = it.choices[c].error + lambda * it.choices[c].bits;
      if (v < best)
        best = v, it.pick = c;
    }
    bits += it.choices[it.pick].bits;
  }
  return bits;
}

/// Lagrangian relaxation, then greedy upgrades into the slack.
static LogicalResult allocate(std::vector<Item> &items, double budgetBits) {
  double lo = 0.0, hi = 1.0;
  while (pickAll(items, hi) > budgetBits && hi < 1e30)
    hi *= 4.0;
  if (pickAll(items, hi) > budgetBits)
    return failure();
  for (int i = 0; i < 200; ++i) {
    double mid = 0.5 * (lo + hi);
    (pickAll(items, mid) > budgetBits ? lo : hi) = mid;
  }
  double used = pickAll(items, hi);
  for (;;) {
    Item *bestItem = nullptr;
    size_t bestChoice = 0;
    double bestGain = 0.0;
    for (Item &it : items)
      for (size_t c = 0; c < it.choices.size(); ++c) {
        const Choice &cur = it.choices[it.pick], &alt = it.choices[c];
        double extra = alt.bits - cur.bits, gain = cur.error - alt.error;
        if (extra <= 0 || gain <= 0 || used + extra > budgetBits)
          continue;
        if (gain / extra > bestGain)
          bestGain = gain / extra, bestItem = &it, bestChoice = c;
      }
    if (!bestItem)
      return success();
    used += bestItem->choices[bestChoice].bits -
            bestItem->choices[bestItem->pick].bits;
    bestItem->pick = bestChoice;
  }
}

static llvm::json::Object entryFor(const Item &it, int64_t rank) {
  const QuantSpec &s = it.choices[it.pick].spec;
  LinearOp op = it.op;
  llvm::json::Object e{{"layer", op.getLayer()},
                       {"role", op.getRole()},
                       {"format", quantFormatName(s.format)}};
  if (isIntTileFormat(s.format))
    e["tile"] = llvm::json::Array{s.tileRows, s.tileCols};
  else
    e["block"] = s.block;
  if (s.format == QuantFormat::NF4)
    e["double_quant"] = true;
  if (rank > 0) {
    e["adapter"] = "lora";
    e["rank"] = rank;
    e["alpha"] = 2 * rank;
  } else {
    e["adapter"] = "none";
  }
  return e;
}

void LQLoRABitsPass::runOnOperation() {
  ModuleOp module = getOperation();
  if (out.empty()) {
    module.emitError("mixq-lq-lora-bits needs out=FILE");
    return signalPassFailure();
  }
  auto ckpt = openModuleCheckpoint(module, "mixq-lq-lora-bits");
  if (failed(ckpt))
    return signalPassFailure();
  std::vector<Item> items;
  double params = 0.0;
  WalkResult r = module.walk([&](LinearOp op) {
    if (op.getRole() == "lm_head")
      return WalkResult::advance();
    FailureOr<Item> it = measure(op, **ckpt);
    if (failed(it))
      return WalkResult::interrupt();
    params += double(op.getOutFeatures()) * double(op.getInFeatures());
    items.push_back(std::move(*it));
    return WalkResult::advance();
  });
  if (r.wasInterrupted())
    return signalPassFailure();
  if (failed(allocate(items, budget * params))) {
    module.emitError("mixq-lq-lora-bits: budget ")
        << budget << " bits/param is below the cheapest allocation";
    return signalPassFailure();
  }
  llvm::json::Array layers;
  double bits = 0.0, error = 0.0;
  Builder b(module.getContext());
  for (const Item &it : items) {
    layers.push_back(entryFor(it, rank));
    bits += it.choices[it.pick].bits;
    error += it.choices[it.pick].error;
    LinearOp op = it.op;
    op->setAttr("mixq.lq_format",
                   b.getStringAttr(quantFormatName(
                       it.choices[it.pick].spec.format)));
  }
  llvm::json::Object config{
      {"version", 1},
      {"comment", llvm::formatv("LQ-LoRA allocation: budget {0} bits/param, "
                                "used {1:F4}, total squared error {2:E4}",
                                budget.getValue(), bits / params, error)
                      .str()},
      {"layers", std::move(layers)}};
  std::error_code ec;
  llvm::raw_fd_ostream os(out, ec, llvm::sys::fs::OF_Text);
  if (ec) {
    module.emitError("cannot write ") << out << ": " << ec.message();
    return signalPassFailure();
  }
  os << llvm::formatv("{0:2}", llvm::json::Value(std::move(config))) << "\n";
  module->setAttr("mixq.lq_bits_per_param", b.getF64FloatAttr(bits / params));
}
