//===- InitAdapters.cpp - gaussian / LoftQ / PiSSA adapters -------*- C++ -*-===//
//
// Computes every adapter's initial parameters (include/mixq/Methods/
// AdapterInit.h), writes them under PEFT names into the variant's weights
// and reports ||W - Q - s*AB||_F per linear (attribute and JSON report).
//
//===----------------------------------------------------------------------===//

#include "PassUtils.h"

#include "mixq/Methods/AdapterInit.h"
#include "mixq/Methods/Passes.h"
#include "mixq/Methods/WeightsFile.h"
#include "mixq/Transforms/ModelInfo.h"

#include "mlir/IR/Builders.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/xxhash.h"

using namespace mlir;

namespace mixq {
#define GEN_PASS_DEF_MIXQINITADAPTERSPASS
#include "mixq/Methods/Passes.h.inc"
} // namespace mixq

using namespace mixq;
using namespace mixq::methods;

namespace {

struct InitAdaptersPass
    : public mixq::impl::MixQInitAdaptersPassBase<InitAdaptersPass> {
  using MixQInitAdaptersPassBase::MixQInitAdaptersPassBase;
  void runOnOperation() override;

private:
  LogicalResult initLinear(LinearOp op, const Checkpoint &ckpt,
                           WeightsFileWriter &writer, GaussianKind kind);
  llvm::json::Array report;
};

} // namespace

/// Writes the adapter matrices of `res` under `op`'s PEFT names.
static void putAdapters(LinearOp op, const AdapterInitResult &res,
                        WeightsFileWriter &writer) {
  std::string mod = peftModule(weightName(op));
  if (!res.A.empty())
    writer.putF32(mod + ".lora_A.weight", {res.aRows, res.aCols}, res.A);
  if (!res.B.empty())
    writer.putF32(mod + ".lora_B.weight", {res.bRows, res.bCols}, res.B);
  if (!res.H.empty())
    writer.putF32(mod + ".lora_H.weight", {res.hRows, res.hCols}, res.H);
}

LogicalResult InitAdaptersPass::initLinear(LinearOp op, const Checkpoint &ckpt,
                                           WeightsFileWriter &writer,
                                           GaussianKind kind) {
  FailureOr<std::vector<float>> w = readLinearWeight(ckpt, op);
  if (failed(w))
    return failure();
  LinearSpec spec = linearSpecOf(op);
  StringRef name = weightName(op);
  uint64_t layerSeed = llvm::xxh3_64bits(name) ^ (seed * 0x9e3779b97f4a7c15ULL);
  auto res = initAdapter(w->data(), op.getOutFeatures(), op.getInFeatures(),
                         spec, layerSeed, kind);
  if (!res)
    return emitLLVMError(op, res.takeError(),
                         "cannot initialise the adapter of '" + name + "': ");
  putAdapters(op, *res, writer);
  // LoftQ / PiSSA change the base: its f32 form overrides the checkpoint
  // (quantizing it reproduces the packed tensor exactly).
  if (spec.adapter.init != AdapterInit::Gaussian &&
      spec.adapter.kind != AdapterKind::QABLoRA) {
    writer.putF32(name, {op.getOutFeatures(), op.getInFeatures()}, res->base);
    if (op.getQuantAttr())
      writer.putQuantized(name, res->quant);
  }
  Builder b(op.getContext());
  op->setAttr("mixq.init_error", b.getF64FloatAttr(res->error));
  op->setAttr("mixq.qlora_error", b.getF64FloatAttr(res->qloraError));
  report.push_back(llvm::json::Object{
      {"weight", name},
      {"layer", op.getLayer()},
      {"role", op.getRole()},
      {"adapter", adapterKindName(spec.adapter.kind)},
      {"init", adapterInitName(spec.adapter.init)},
      {"init_iters", spec.adapter.initIters},
      {"format", quantFormatName(spec.quant.format)},
      {"error", res->error},
      {"qlora_error", res->qloraError}});
  return success();
}

/// Writes `doc` as JSON to `path`.
static LogicalResult writeJSON(Operation *op, StringRef path,
                               llvm::json::Value doc) {
  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec, llvm::sys::fs::OF_Text);
  if (ec)
    return op->emitError("cannot write ") << path << ": " << ec.message();
  os << llvm::formatv("{0:2}", doc) << "\n";
  return success();
}

void InitAdaptersPass::runOnOperation() {
  ModuleOp module = getOperation();
  report = llvm::json::Array();
  if (gaussian != "normal" && gaussian != "kaiming") {
    module.emitError("mixq-init-adapters: gaussian must be normal or "
                     "kaiming, got '")
        << gaussian << "'";
    return signalPassFailure();
  }
  GaussianKind kind =
      gaussian == "normal" ? GaussianKind::Normal : GaussianKind::Kaiming;
  FailureOr<std::string> path =
      prepareWeightsPath(module, out, "mixq-init-adapters");
  if (failed(path))
    return signalPassFailure();
  auto ckpt = openModuleCheckpoint(module, "mixq-init-adapters");
  if (failed(ckpt))
    return signalPassFailure();
  if (failed(updateWeightsFile(
          module, *path, [](LinearOp op) { return bool(op.getAdapterAttr()); },
          [&](LinearOp op, WeightsFileWriter &writer) {
            return initLinear(op, **ckpt, writer, kind);
          })))
    return signalPassFailure();
  SmallString<256> reportPath(llvm::sys::path::parent_path(*path));
  llvm::sys::path::append(reportPath, "init_report.json");
  llvm::json::Object doc{{"seed", int64_t(seed)},
                         {"gaussian", gaussian},
                         {"layers", std::move(report)}};
  if (failed(writeJSON(module, reportPath, std::move(doc))))
    return signalPassFailure();
}
