//===- MaterializeQuant.cpp - quantized weights into the variant --*- C++ -*-===//
//
// Quantizes every configured linear's checkpoint weight into its format and
// writes the packed arrays into `out`/weights.safetensors (naming convention
// in include/mixq/Methods/WeightsFile.h).
//
//===----------------------------------------------------------------------===//

#include "PassUtils.h"

#include "mixq/Methods/Passes.h"
#include "mixq/Methods/WeightsFile.h"
#include "mixq/Transforms/ModelInfo.h"

using namespace mlir;

namespace mixq {
#define GEN_PASS_DEF_MIXQMATERIALIZEQUANTPASS
#include "mixq/Methods/Passes.h.inc"
} // namespace mixq

using namespace mixq;
using namespace mixq::methods;

namespace {

struct MaterializeQuantPass
    : public mixq::impl::MixQMaterializeQuantPassBase<MaterializeQuantPass> {
  using MixQMaterializeQuantPassBase::MixQMaterializeQuantPassBase;
  void runOnOperation() override;
};

} // namespace

/// Quantizes `op`'s weight into `writer`.
static LogicalResult materialize(LinearOp op, const Checkpoint &ckpt,
                                 WeightsFileWriter &writer) {
  FailureOr<std::vector<float>> w = readLinearWeight(ckpt, op);
  if (failed(w))
    return failure();
  LinearSpec spec = linearSpecOf(op);
  auto q = kernels::quantize(w->data(), op.getOutFeatures(),
                             op.getInFeatures(), spec.quant);
  if (!q)
    return emitLLVMError(op, q.takeError(),
                         "cannot quantize '" + weightName(op) + "' of " +
                             ckpt.path() + ": ");
  writer.putQuantized(weightName(op), *q);
  op->setAttr("mixq.materialized", UnitAttr::get(op.getContext()));
  return success();
}

void MaterializeQuantPass::runOnOperation() {
  ModuleOp module = getOperation();
  FailureOr<std::string> path =
      prepareWeightsPath(module, out, "mixq-materialize-quant");
  if (failed(path))
    return signalPassFailure();
  auto ckpt = openModuleCheckpoint(module, "mixq-materialize-quant");
  if (failed(ckpt))
    return signalPassFailure();
  if (failed(updateWeightsFile(
          module, *path, [](LinearOp op) { return bool(op.getQuantAttr()); },
          [&](LinearOp op, WeightsFileWriter &writer) {
            return materialize(op, **ckpt, writer);
          })))
    return signalPassFailure();
}
