//===- PassUtils.cpp - helpers shared by the method passes --------*- C++ -*-===//

#include "PassUtils.h"

#include "mixq/Methods/WeightsFile.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

using namespace mlir;
using namespace mixq;
using namespace mixq::methods;

LogicalResult methods::emitLLVMError(Operation *op, llvm::Error err,
                                     const llvm::Twine &what) {
  return op->emitError(what) << llvm::toString(std::move(err));
}

FailureOr<std::unique_ptr<Checkpoint>>
methods::openModuleCheckpoint(ModuleOp module, StringRef pass) {
  CheckpointOp ckptOp;
  module.walk([&](CheckpointOp op) { ckptOp = op; });
  if (!ckptOp)
    return module.emitError(pass) << " expects a mixq.checkpoint";
  auto ckpt = Checkpoint::open(ckptOp.getPath());
  if (!ckpt)
    return emitLLVMError(ckptOp, ckpt.takeError());
  if (!(*ckpt)->hasWeights())
    return ckptOp.emitError(pass)
           << " needs weights, but checkpoint " << ckptOp.getPath()
           << " is " << (*ckpt)->format();
  return std::move(*ckpt);
}

StringRef methods::weightName(LinearOp op) {
  return op.getWeight().getLeafReference().getValue();
}

std::string methods::peftModule(StringRef weight) {
  weight.consume_back(".weight");
  return ("base_model.model." + weight).str();
}

FailureOr<std::vector<float>> methods::readLinearWeight(const Checkpoint &ckpt,
                                                        LinearOp op) {
  auto w = ckpt.readF32(weightName(op));
  if (!w)
    return emitLLVMError(op, w.takeError());
  int64_t expected = op.getOutFeatures() * op.getInFeatures();
  if (int64_t(w->size()) != expected)
    return op.emitError(ckpt.path())
           << ": tensor '" << weightName(op) << "' has " << w->size()
           << " values, expected [" << op.getOutFeatures() << ", "
           << op.getInFeatures() << "]";
  return std::move(*w);
}

FailureOr<std::string> methods::prepareWeightsPath(ModuleOp module,
                                                   StringRef out,
                                                   StringRef pass) {
  if (out.empty())
    return module.emitError(pass) << " needs out=DIR";
  if (std::error_code ec = llvm::sys::fs::create_directories(out))
    return module.emitError("cannot create ") << out << ": " << ec.message();
  SmallString<256> path(out);
  llvm::sys::fs::make_absolute(path);
  llvm::sys::path::append(path, kWeightsFileName);
  return std::string(path);
}

void methods::setWeightsAttr(ModuleOp module, StringRef path) {
  module->setAttr("mixq.weights", StringAttr::get(module.getContext(), path));
}

LogicalResult methods::updateWeightsFile(
    ModuleOp module, StringRef path, function_ref<bool(LinearOp)> select,
    function_ref<LogicalResult(LinearOp, WeightsFileWriter &)> update) {
  auto writer = WeightsFileWriter::openOrCreate(path);
  if (!writer)
    return emitLLVMError(module, writer.takeError());
  WalkResult r = module.walk([&](LinearOp op) {
    if (!select(op))
      return WalkResult::advance();
    return failed(update(op, *writer)) ? WalkResult::interrupt()
                                       : WalkResult::advance();
  });
  if (r.wasInterrupted())
    return failure();
  if (llvm::Error e = writer->write())
    return emitLLVMError(module, std::move(e));
  setWeightsAttr(module, path);
  return success();
}
