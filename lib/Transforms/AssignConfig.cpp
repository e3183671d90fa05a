//===- AssignConfig.cpp - attach per-layer quant/adapter attributes -*- C++ -*-===//

#include "mixq/Transforms/ModelInfo.h"
#include "mixq/Transforms/Passes.h"

#include "llvm/ADT/SmallSet.h"

using namespace mlir;

namespace mixq {
#define GEN_PASS_DEF_MIXQASSIGNCONFIGPASS
#include "mixq/Transforms/Passes.h.inc"
} // namespace mixq

using namespace mixq;

namespace {

struct AssignConfigPass
    : public mixq::impl::MixQAssignConfigPassBase<AssignConfigPass> {
  using MixQAssignConfigPassBase::MixQAssignConfigPassBase;
  void runOnOperation() override;

private:
  LogicalResult checkEntries(const VariantConfig &cfg, int64_t numLayers,
                             bool hasLMHead);
  LogicalResult assign(LinearOp op, const VariantConfig &cfg);
};

} // namespace

/// Every entry must name a layer and role that exist.
LogicalResult AssignConfigPass::checkEntries(const VariantConfig &cfg,
                                             int64_t numLayers,
                                             bool hasLMHead) {
  ModuleOp module = getOperation();
  for (auto [i, e] : llvm::enumerate(cfg.entries)) {
    if (e.layer && *e.layer >= numLayers)
      return module.emitError("config ")
             << config << ": 'layers'[" << i << "] names layer " << *e.layer
             << " but the model has " << numLayers << " layers";
    if (e.role && *e.role == "lm_head" && !hasLMHead)
      return module.emitError("config ")
             << config << ": 'layers'[" << i
             << "] configures lm_head but the model's head is tied to the "
                "embedding";
  }
  return success();
}

LogicalResult AssignConfigPass::assign(LinearOp op, const VariantConfig &cfg) {
  int64_t layer = op.getLayer();
  StringRef role = op.getRole();
  if (!cfg.configures(layer, role))
    return success();
  llvm::Expected<LinearSpec> spec = cfg.resolve(layer, role);
  if (!spec)
    return op.emitError(llvm::toString(spec.takeError()));
  MLIRContext *ctx = &getContext();
  auto fail = [&]() {
    return op.emitError("config ")
           << config << ": layer " << layer << " " << role
           << " cannot take this configuration";
  };
  auto emitErr = [&]() { return op.emitError(); };
  QuantSpec &q = spec->quant;
  SmallVector<int64_t> tile;
  if (isIntTileFormat(q.format))
    tile = {q.tileRows, q.tileCols};
  if (failed(QuantAttr::verify(emitErr, toQuantAttr(ctx, q).getFormat(),
                               q.block, q.doubleQuant, tile)))
    return fail();
  op.setQuantAttr(toQuantAttr(ctx, q));
  const AdapterSpec &a = spec->adapter;
  // AdaLoRA lives in the runtime only (its rank allocator prunes during
  // training); the IR has no attribute for it.
  if (a.kind == AdapterKind::AdaLoRA)
    return op.emitError("config ")
           << config << ": layer " << layer << " " << role
           << ": adapter 'adalora' is not compiled by mixq-opt; fine-tune it "
              "with `mixq-run finetune CHECKPOINT --config FILE`";
  if (a.kind == AdapterKind::LoRA &&
      failed(LoRAAttr::verify(emitErr, a.rank, APFloat(a.alpha),
                              APFloat(a.dropout),
                              *symbolizeAdapterInitKind(adapterInitName(a.init)),
                              a.init == AdapterInit::LoftQ ? a.initIters : 1)))
    return fail();
  if (a.kind == AdapterKind::QBLoRA &&
      failed(QBLoRAAttr::verify(
          emitErr, a.rank, a.lambda, APFloat(a.alpha), APFloat(a.dropout),
          *symbolizeAdapterInitKind(adapterInitName(a.init)))))
    return fail();
  if (a.kind == AdapterKind::QABLoRA &&
      failed(QABLoRAAttr::verify(emitErr, {a.lambdaRows, a.lambdaCols},
                                 APFloat(a.alpha), APFloat(a.dropout))))
    return fail();
  if (Attribute attr = toAdapterAttr(ctx, a))
    op.setAdapterAttr(attr);
  else
    op.removeAdapterAttr();
  if (failed(op.verify()))
    return fail();
  return success();
}

void AssignConfigPass::runOnOperation() {
  ModuleOp module = getOperation();
  if (config.empty()) {
    module.emitError("mixq-assign-config needs config=FILE");
    return signalPassFailure();
  }
  llvm::Expected<VariantConfig> cfg = VariantConfig::fromFile(config);
  if (!cfg) {
    module.emitError(llvm::toString(cfg.takeError()));
    return signalPassFailure();
  }
  int64_t numLayers = 0;
  bool hasLMHead = false;
  SmallVector<LinearOp> linears;
  module.walk([&](LinearOp op) {
    numLayers = std::max<int64_t>(numLayers, op.getLayer() + 1);
    hasLMHead |= op.getRole() == "lm_head";
    linears.push_back(op);
  });
  if (failed(checkEntries(*cfg, numLayers, hasLMHead)))
    return signalPassFailure();
  for (LinearOp op : linears)
    if (failed(assign(op, *cfg)))
      return signalPassFailure();
  module->setAttr("mixq.config", StringAttr::get(&getContext(), config));
}
