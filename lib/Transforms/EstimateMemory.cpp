//===- EstimateMemory.cpp - static fine-tuning memory estimate ----*- C++ -*-===//

#include "mixq/Config/MemoryModel.h"
#include "mixq/Kernels/Quant.h"
#include "mixq/Transforms/ModelInfo.h"
#include "mixq/Transforms/Passes.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/raw_ostream.h"

#include <map>
#include <numeric>

using namespace mlir;

namespace mixq {
#define GEN_PASS_DEF_MIXQESTIMATEMEMORYPASS
#include "mixq/Transforms/Passes.h.inc"
} // namespace mixq

using namespace mixq;

namespace {

struct EstimateMemoryPass
    : public mixq::impl::MixQEstimateMemoryPassBase<EstimateMemoryPass> {
  using MixQEstimateMemoryPassBase::MixQEstimateMemoryPassBase;
  void runOnOperation() override;
};

void printRow(raw_ostream &os, StringRef name, int64_t bytes, int64_t total) {
  os << llvm::format("  %-12s %16lld B %10.2f MiB %6.1f%%\n",
                     name.str().c_str(), (long long)bytes,
                     double(bytes) / (1024.0 * 1024.0),
                     total ? 100.0 * double(bytes) / double(total) : 0.0);
}

/// One line per linear: what the compiler decided for it.
void printLinear(raw_ostream &os, LinearOp op) {
  LinearSpec s = linearSpecOf(op);
  int64_t out = op.getOutFeatures(), in = op.getInFeatures();
  std::string adapter = adapterKindName(s.adapter.kind).str();
  if (s.adapter.kind == AdapterKind::QABLoRA)
    adapter += llvm::formatv(" l={0}x{1}", s.adapter.lambdaRows,
                             s.adapter.lambdaCols);
  else if (s.adapter.kind != AdapterKind::None)
    adapter += llvm::formatv(" r={0}", s.adapter.rank);
  if (s.adapter.kind == AdapterKind::QBLoRA)
    adapter += llvm::formatv(" l={0}", s.adapter.lambda);
  os << llvm::format("  %5lld %-10s %6lldx%-6lld %-5s %6.3f %12lld %-14s "
                     "%8lld\n",
                     (long long)(int64_t)op.getLayer(),
                     op.getRole().str().c_str(), (long long)out,
                     (long long)in, quantFormatName(s.quant.format).data(),
                     kernels::bitsPerParam(s.quant, out, in),
                     (long long)kernels::quantizedBytes(s.quant, out, in),
                     adapter.c_str(),
                     (long long)adapterParams(out, in, s.adapter));
}

} // namespace

void EstimateMemoryPass::runOnOperation() {
  ModuleOp module = getOperation();
  if (llvm::any_of(seqLens, [](int64_t l) { return l <= 0; })) {
    module.emitError("mixq-estimate-memory expects positive seq-lens");
    return signalPassFailure();
  }
  if (batch <= 0 || seqLen <= 0) {
    module.emitError("mixq-estimate-memory expects positive batch and "
                     "seq-len");
    return signalPassFailure();
  }
  FailureOr<ModelConfig> model = inferModelConfig(module);
  if (failed(model))
    return signalPassFailure();

  std::map<std::pair<int64_t, std::string>, LinearOp> linears;
  module.walk([&](LinearOp op) {
    linears[{op.getLayer(), op.getRole().str()}] = op;
    int64_t bytes = kernels::quantizedBytes(
        linearSpecOf(op).quant, op.getOutFeatures(), op.getInFeatures());
    op->setAttr("mixq.weight_bytes",
                IntegerAttr::get(IntegerType::get(&getContext(), 64), bytes));
  });
  auto specFn = [&](int64_t layer, StringRef role) {
    auto it = linears.find({layer, role.str()});
    return it == linears.end() ? LinearSpec() : linearSpecOf(it->second);
  };
  MemoryOptions opts;
  opts.batch = batch;
  opts.seqLen = seqLen;
  opts.seqLens.assign(seqLens.begin(), seqLens.end());
  opts.lossTokens = lossTokens;
  opts.trainNorms = trainNorms;
  MemoryBreakdown m = estimateFineTuneMemory(*model, specFn, opts);

  Builder b(&getContext());
  auto i64 = [&](int64_t v) { return b.getI64IntegerAttr(v); };
  module->setAttr(
      "mixq.memory_estimate",
      b.getDictionaryAttr({
          b.getNamedAttr("batch", i64(batch)),
          b.getNamedAttr("seq_len", i64(seqLen)),
          b.getNamedAttr("weights", i64(m.weights)),
          b.getNamedAttr("adapters", i64(m.adapters)),
          b.getNamedAttr("optimizer", i64(m.optimizer)),
          b.getNamedAttr("gradients", i64(m.gradients)),
          b.getNamedAttr("activations", i64(m.activations)),
          b.getNamedAttr("workspace", i64(m.workspace)),
          b.getNamedAttr("total", i64(m.total())),
      }));

  if (perLinear) {
    raw_ostream &os = llvm::errs();
    os << "  layer role        out x in    fmt   bits/p  weight bytes "
          "adapter        params\n";
    module.walk([&](LinearOp op) { printLinear(os, op); });
  }
  if (print) {
    raw_ostream &os = llvm::errs();
    os << "mixq memory estimate: " << model->numLayers << " layers, ";
    if (seqLens.empty())
      os << "batch " << batch << " x " << seqLen << " tokens\n";
    else
      os << "packed micro-batch of " << seqLens.size() << " sequences, "
         << std::accumulate(opts.seqLens.begin(), opts.seqLens.end(),
                            int64_t(0))
         << " tokens\n";
    int64_t total = m.total();
    printRow(os, "weights", m.weights, total);
    printRow(os, "adapters", m.adapters, total);
    printRow(os, "optimizer", m.optimizer, total);
    printRow(os, "gradients", m.gradients, total);
    printRow(os, "activations", m.activations, total);
    printRow(os, "workspace", m.workspace, total);
    printRow(os, "total", total, total);
  }
  if (!report.empty()) {
    std::error_code ec;
    llvm::raw_fd_ostream out(report, ec, llvm::sys::fs::OF_Text);
    if (ec) {
      module.emitError("cannot write ") << report << ": " << ec.message();
      return signalPassFailure();
    }
    llvm::json::Object o = m.toJSON();
    o["batch"] = int64_t(batch);
    o["seq_len"] = int64_t(seqLen);
    if (!seqLens.empty())
      o["seq_lens"] = llvm::json::Array(opts.seqLens);
    o["loss_tokens"] = int64_t(lossTokens);
    out << llvm::formatv("{0:2}", llvm::json::Value(std::move(o))) << "\n";
  }
}
