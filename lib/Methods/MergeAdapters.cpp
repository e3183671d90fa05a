//===- MergeAdapters.cpp - trained adapters into the base weights -*- C++ -*-===//
//
// LoRA / Q-BLoRA: W' = dequant(Q) + s * DeltaW as an f32 base; QA-BLoRA: H
// folded into the zero points of the int tiles (include/mixq/Methods/
// Merge.h). The base Q is the materialised tensor of the module's weights
// file when there is one, else the checkpoint weight quantized as the
// linear's `quant` says (what the runtime trains on).
//
//===----------------------------------------------------------------------===//

#include "PassUtils.h"

#include "mixq/Methods/Merge.h"
#include "mixq/Methods/Passes.h"
#include "mixq/Methods/WeightsFile.h"
#include "mixq/Transforms/ModelInfo.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

using namespace mlir;

namespace mixq {
#define GEN_PASS_DEF_MIXQMERGEADAPTERSPASS
#include "mixq/Methods/Passes.h.inc"
} // namespace mixq

using namespace mixq;
using namespace mixq::methods;

namespace {

struct MergeAdaptersPass
    : public mixq::impl::MixQMergeAdaptersPassBase<MergeAdaptersPass> {
  using MixQMergeAdaptersPassBase::MixQMergeAdaptersPassBase;
  void runOnOperation() override;

private:
  FailureOr<kernels::QuantizedTensor> loadBase(LinearOp op);
  LogicalResult mergeLinear(LinearOp op, WeightsFileWriter &writer);

  // Per-run state (shared_ptr: passes are copyable for cloning).
  std::shared_ptr<Checkpoint> ckpt, adapterFile;
  std::shared_ptr<QuantizedWeightsReader> materialized;
};

} // namespace

FailureOr<kernels::QuantizedTensor> MergeAdaptersPass::loadBase(LinearOp op) {
  StringRef name = weightName(op);
  if (materialized && materialized->hasQuantized(name)) {
    auto q = materialized->load(name);
    if (!q)
      return emitLLVMError(op, q.takeError());
    return std::move(*q);
  }
  // An f32 override in the weights file (e.g. a LoftQ base of an f32
  // linear) replaces the checkpoint's tensor.
  const Checkpoint &source =
      materialized && materialized->file().find(name) ? materialized->file()
                                                      : *ckpt;
  FailureOr<std::vector<float>> w = readLinearWeight(source, op);
  if (failed(w))
    return failure();
  auto q = kernels::quantize(w->data(), op.getOutFeatures(),
                             op.getInFeatures(), linearSpecOf(op).quant);
  if (!q)
    return emitLLVMError(op, q.takeError(),
                         "cannot quantize '" + name + "': ");
  return std::move(*q);
}

/// Reads adapter matrix `suffix` ("lora_A", ...) of `op` from `file`,
/// checking its size.
static LogicalResult readAdapterMatrix(LinearOp op, const Checkpoint &file,
                                       StringRef suffix, int64_t rows,
                                       int64_t cols, std::vector<float> &out) {
  if (rows * cols == 0)
    return success();
  std::string name = peftModule(weightName(op)) + "." + suffix.str() +
                     ".weight";
  auto v = file.readF32(name);
  if (!v)
    return emitLLVMError(op, v.takeError());
  if (int64_t(v->size()) != rows * cols)
    return op.emitError(file.path())
           << ": adapter tensor '" << name << "' has " << v->size()
           << " values, expected [" << rows << ", " << cols << "]";
  out = std::move(*v);
  return success();
}

LogicalResult MergeAdaptersPass::mergeLinear(LinearOp op,
                                             WeightsFileWriter &writer) {
  LinearSpec spec = linearSpecOf(op);
  kernels::AdapterView view = adapterViewOf(spec.adapter);
  auto shapes =
      kernels::adapterShapes(view, op.getInFeatures(), op.getOutFeatures());
  if (!shapes)
    return emitLLVMError(op, shapes.takeError());
  std::vector<float> A, B, H;
  if (failed(readAdapterMatrix(op, *adapterFile, "lora_A", shapes->aRows,
                               shapes->aCols, A)) ||
      failed(readAdapterMatrix(op, *adapterFile, "lora_B", shapes->bRows,
                               shapes->bCols, B)) ||
      failed(readAdapterMatrix(op, *adapterFile, "lora_H", shapes->hRows,
                               shapes->hCols, H)))
    return failure();
  view.A = A.empty() ? nullptr : A.data();
  view.B = B.empty() ? nullptr : B.data();
  view.H = H.empty() ? nullptr : H.data();
  FailureOr<kernels::QuantizedTensor> base = loadBase(op);
  if (failed(base))
    return failure();
  StringRef name = weightName(op);
  if (view.kind == AdapterKind::QABLoRA) {
    auto folded = foldQABLoRA(*base, view);
    if (!folded)
      return emitLLVMError(op, folded.takeError());
    writer.putQuantized(name, *folded);
  } else {
    auto dense = mergeAdapterToDense(*base, view);
    if (!dense)
      return emitLLVMError(op, dense.takeError());
    writer.remove(name);
    writer.putF32(name, {base->rows, base->cols}, *dense);
    QuantSpec f32;
    op.setQuantAttr(toQuantAttr(op.getContext(), f32));
    op->removeAttr("mixq.materialized");
  }
  op.removeAdapterAttr();
  op->setAttr("mixq.merged", UnitAttr::get(op.getContext()));
  return success();
}

void MergeAdaptersPass::runOnOperation() {
  ModuleOp module = getOperation();
  if (adapters.empty()) {
    module.emitError("mixq-merge-adapters needs adapters=FILE");
    return signalPassFailure();
  }
  FailureOr<std::string> path =
      prepareWeightsPath(module, out, "mixq-merge-adapters");
  if (failed(path))
    return signalPassFailure();
  auto opened = openModuleCheckpoint(module, "mixq-merge-adapters");
  if (failed(opened))
    return signalPassFailure();
  ckpt = std::move(*opened);
  std::string adapterPath = adapters;
  if (llvm::sys::fs::is_directory(adapterPath))
    adapterPath += "/adapter_model.safetensors";
  auto file = Checkpoint::openTensorFile(adapterPath);
  if (!file) {
    (void)emitLLVMError(module, file.takeError());
    return signalPassFailure();
  }
  adapterFile = std::move(*file);
  materialized.reset();
  if (auto w = module->getAttrOfType<StringAttr>("mixq.weights")) {
    auto r = QuantizedWeightsReader::open(w.getValue());
    if (!r) {
      (void)emitLLVMError(module, r.takeError());
      return signalPassFailure();
    }
    materialized = std::move(*r);
  }
  if (failed(updateWeightsFile(
          module, *path, [](LinearOp op) { return bool(op.getAdapterAttr()); },
          [&](LinearOp op, WeightsFileWriter &writer) {
            return mergeLinear(op, writer);
          })))
    return signalPassFailure();
}
