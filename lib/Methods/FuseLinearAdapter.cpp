//===- FuseLinearAdapter.cpp - mixq.linear -> mixq.fused_linear ---*- C++ -*-===//
//
// Every quantized linear becomes one mixq.fused_linear naming its kernel
// specialisation; optionally the fused module replaces out/variant.mlir.
//
//===----------------------------------------------------------------------===//

#include "mixq/Methods/Passes.h"

#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

using namespace mlir;

namespace mixq {
#define GEN_PASS_DEF_MIXQFUSELINEARADAPTERPASS
#include "mixq/Methods/Passes.h.inc"
} // namespace mixq

using namespace mixq;

namespace {

/// mixq.linear {quant, adapter?} -> mixq.fused_linear {kernel = ...}; the
/// discardable attributes (mixq.init_error, ...) are kept.
struct FuseLinear : public OpRewritePattern<LinearOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(LinearOp op,
                                PatternRewriter &rewriter) const override {
    QuantAttr quant = op.getQuantAttr();
    if (!quant)
      return rewriter.notifyMatchFailure(op, "no quant attribute");
    std::string kernel = FusedLinearOp::getKernelName(
        quant, op.getAdapterAttr(), op.getOutFeatures(), op.getInFeatures());
    auto fused = FusedLinearOp::create(
        rewriter, op.getLoc(), op.getResult().getType(), op.getInput(),
        op.getWeight(), op.getLayer(), op.getRole(), quant,
        op.getAdapterAttr(), kernel);
    for (NamedAttribute attr : op->getDiscardableAttrs())
      fused->setAttr(attr.getName(), attr.getValue());
    rewriter.replaceOp(op, fused.getResult());
    return success();
  }
};

struct FuseLinearAdapterPass
    : public mixq::impl::MixQFuseLinearAdapterPassBase<FuseLinearAdapterPass> {
  using MixQFuseLinearAdapterPassBase::MixQFuseLinearAdapterPassBase;
  void runOnOperation() override;
};

} // namespace

void FuseLinearAdapterPass::runOnOperation() {
  ModuleOp module = getOperation();
  RewritePatternSet patterns(&getContext());
  patterns.add<FuseLinear>(&getContext());
  if (failed(applyPatternsGreedily(module, std::move(patterns))))
    return signalPassFailure();
  if (out.empty())
    return;
  SmallString<256> path(out);
  llvm::sys::path::append(path, "variant.mlir");
  std::string tmp = (path + ".tmp").str();
  std::error_code ec;
  {
    llvm::raw_fd_ostream os(tmp, ec, llvm::sys::fs::OF_Text);
    if (!ec) {
      module.print(os);
      os.close();
      ec = os.error();
    }
  }
  if (!ec)
    ec = llvm::sys::fs::rename(tmp, path);
  if (ec) {
    module.emitError("cannot write ") << path << ": " << ec.message();
    return signalPassFailure();
  }
}
