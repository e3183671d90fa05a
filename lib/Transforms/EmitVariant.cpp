//===- EmitVariant.cpp - write the variant directory --------------*- C++ -*-===//

#include "mixq/Support/FileUtils.h"
#include "mixq/Transforms/ModelInfo.h"
#include "mixq/Transforms/Passes.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;

namespace mixq {
#define GEN_PASS_DEF_MIXQEMITVARIANTPASS
#include "mixq/Transforms/Passes.h.inc"
} // namespace mixq

using namespace mixq;

namespace {

struct EmitVariantPass
    : public mixq::impl::MixQEmitVariantPassBase<EmitVariantPass> {
  using MixQEmitVariantPassBase::MixQEmitVariantPassBase;
  void runOnOperation() override;

private:
  LogicalResult writeFile(StringRef name,
                          llvm::function_ref<void(raw_ostream &)> write) {
    SmallString<256> path(out);
    llvm::sys::path::append(path, name);
    if (llvm::Error e = writeFileAtomically(path, write))
      return getOperation().emitError(llvm::toString(std::move(e)));
    return success();
  }
};

} // namespace

void EmitVariantPass::runOnOperation() {
  ModuleOp module = getOperation();
  if (out.empty()) {
    module.emitError("mixq-emit-variant needs out=DIR");
    return signalPassFailure();
  }
  CheckpointOp ckpt;
  module.walk([&](CheckpointOp op) { ckpt = op; });
  if (!ckpt) {
    module.emitError("mixq-emit-variant expects a mixq.checkpoint");
    return signalPassFailure();
  }
  FailureOr<ModelConfig> model = inferModelConfig(module);
  if (failed(model))
    return signalPassFailure();
  if (auto seq = module->getAttrOfType<IntegerAttr>("mixq.max_seq_len"))
    model->maxSeqLen = seq.getInt();

  llvm::json::Array entries;
  module.walk([&](LinearOp op) {
    llvm::json::Object e = linearSpecToJSON(linearSpecOf(op));
    if (op.getRole() != "lm_head")
      e["layer"] = int64_t(op.getLayer());
    e["role"] = op.getRole();
    entries.push_back(std::move(e));
  });
  llvm::json::Object config{{"version", 1}, {"layers", std::move(entries)}};
  if (auto src = module->getAttrOfType<StringAttr>("mixq.config"))
    config["comment"] = ("assigned from " + src.getValue()).str();

  SmallString<256> ckptPath(ckpt.getPath());
  llvm::sys::fs::make_absolute(ckptPath);
  llvm::json::Object manifest{{"version", 1},
                              {"checkpoint", ckptPath.str()},
                              {"checkpoint_format", ckpt.getFormat()},
                              {"model", model->toJSON()},
                              {"config", std::move(config)},
                              {"ir", "variant.mlir"}};
  // Materialised weights (--mixq-materialize-quant and friends): relative
  // when they are in the variant directory, else absolute.
  if (auto weights = module->getAttrOfType<StringAttr>("mixq.weights")) {
    SmallString<256> dir(out);
    llvm::sys::fs::make_absolute(dir);
    StringRef file = weights.getValue();
    manifest["weights"] = llvm::sys::path::parent_path(file) == dir
                              ? llvm::sys::path::filename(file).str()
                              : file.str();
  }

  if (std::error_code ec = llvm::sys::fs::create_directories(out)) {
    module.emitError("cannot create ") << out << ": " << ec.message();
    return signalPassFailure();
  }
  if (failed(writeFile("variant.mlir",
                       [&](raw_ostream &os) { module.print(os); })) ||
      failed(writeFile("manifest.json", [&](raw_ostream &os) {
        os << llvm::formatv("{0:2}",
                            llvm::json::Value(std::move(manifest)))
           << "\n";
      })))
    return signalPassFailure();
}
