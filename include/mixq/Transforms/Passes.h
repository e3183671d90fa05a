//===- Passes.h - MixQ passes -------------------------------------*- C++ -*-===//

#ifndef MIXQ_TRANSFORMS_PASSES_H
#define MIXQ_TRANSFORMS_PASSES_H

#include "mixq/Dialect/MixQ/IR/MixQ.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

namespace mixq {

#define GEN_PASS_DECL
#include "mixq/Transforms/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "mixq/Transforms/Passes.h.inc"

} // namespace mixq

#endif // MIXQ_TRANSFORMS_PASSES_H
