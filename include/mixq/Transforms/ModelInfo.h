//===- ModelInfo.h - read a model's shape back from mixq IR -------*- C++ -*-===//

#ifndef MIXQ_TRANSFORMS_MODELINFO_H
#define MIXQ_TRANSFORMS_MODELINFO_H

#include "mixq/Config/VariantConfig.h"
#include "mixq/Dialect/MixQ/IR/MixQ.h"
#include "mixq/Import/ModelConfig.h"

#include "mlir/IR/BuiltinOps.h"

namespace mixq {

/// Reconstructs the model's shape (global and per-layer sizes) from the ops
/// of `module`: embedding, attention, linears. Emits an error on `module`
/// when the IR is not a complete decoder.
mlir::FailureOr<ModelConfig> inferModelConfig(mlir::ModuleOp module);

/// The LinearSpec of a linear's attributes (f32 / no adapter when absent).
LinearSpec linearSpecOf(LinearOp op);

/// Converts between the config-level and the IR-level descriptions.
QuantAttr toQuantAttr(mlir::MLIRContext *ctx, const QuantSpec &q);
mlir::Attribute toAdapterAttr(mlir::MLIRContext *ctx, const AdapterSpec &a);

} // namespace mixq

#endif // MIXQ_TRANSFORMS_MODELINFO_H
