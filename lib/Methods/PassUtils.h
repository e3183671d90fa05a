//===- PassUtils.h - helpers shared by the method passes ----------*- C++ -*-===//

#ifndef MIXQ_LIB_METHODS_PASSUTILS_H
#define MIXQ_LIB_METHODS_PASSUTILS_H

#include "mixq/Dialect/MixQ/IR/MixQ.h"
#include "mixq/Import/Checkpoint.h"

#include "mlir/IR/BuiltinOps.h"

#include <memory>
#include <string>
#include <vector>

namespace mixq {
namespace methods {

/// Opens the checkpoint of the module's `mixq.checkpoint`; emits an error
/// (naming `pass`) when there is none, it cannot be opened or has no weights.
mlir::FailureOr<std::unique_ptr<Checkpoint>>
openModuleCheckpoint(mlir::ModuleOp module, llvm::StringRef pass);

/// The checkpoint tensor name a linear reads.
llvm::StringRef weightName(LinearOp op);

/// The PEFT module path of a weight: "model.layers.0.self_attn.q_proj.weight"
/// -> "base_model.model.model.layers.0.self_attn.q_proj".
std::string peftModule(llvm::StringRef weight);

/// Reads `op`'s weight as f32 [out, in], checking its size; emits errors on
/// `op` naming the checkpoint file and the tensor.
mlir::FailureOr<std::vector<float>> readLinearWeight(const Checkpoint &ckpt,
                                                     LinearOp op);

/// `out`/weights.safetensors (absolute), creating `out`; emits an error on
/// `module` when `out` is empty or cannot be created.
mlir::FailureOr<std::string> prepareWeightsPath(mlir::ModuleOp module,
                                                llvm::StringRef out,
                                                llvm::StringRef pass);

/// Records on the module where its materialised weights are
/// (`mixq.weights`, read by --mixq-emit-variant).
void setWeightsAttr(mlir::ModuleOp module, llvm::StringRef path);

class WeightsFileWriter;

/// Opens (or creates) the weights file `path`, calls `update` on every
/// linear `select` picks (stopping at the first failure), writes the file
/// and records it on the module. Errors are emitted on the module or op.
mlir::LogicalResult updateWeightsFile(
    mlir::ModuleOp module, llvm::StringRef path,
    llvm::function_ref<bool(LinearOp)> select,
    llvm::function_ref<mlir::LogicalResult(LinearOp, WeightsFileWriter &)>
        update);

/// Emits `err` on `op` (prefixed by `what`) and returns failure.
mlir::LogicalResult emitLLVMError(mlir::Operation *op, llvm::Error err,
                                  const llvm::Twine &what = "");

} // namespace methods
} // namespace mixq

#endif // MIXQ_LIB_METHODS_PASSUTILS_H
