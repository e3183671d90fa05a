//===- ImportMLIR.h - build mixq IR from a checkpoint -------------*- C++ -*-===//

#ifndef MIXQ_IMPORT_IMPORTMLIR_H
#define MIXQ_IMPORT_IMPORTMLIR_H

#include "mixq/Import/Checkpoint.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"

namespace mixq {

/// Builds the mixq module of `ckpt`: a `mixq.checkpoint @ckpt` declaring every
/// tensor (for a config-only checkpoint, the tensors the config implies, in
/// f32) and `func.func @model(%ids, %labels) -> (logits, loss)` whose
/// per-layer ops carry their layer index and role. Returns null after
/// emitting a diagnostic when the result does not verify.
mlir::OwningOpRef<mlir::ModuleOp> importCheckpoint(mlir::MLIRContext &ctx,
                                                   const Checkpoint &ckpt);

} // namespace mixq

#endif // MIXQ_IMPORT_IMPORTMLIR_H
