//===- Passes.h - MixQ method passes ------------------------------*- C++ -*-===//
//
// Passes that implement the methods and baselines: materialised quantized
// weights, adapter initialisation (gaussian, LoftQ, PiSSA), adapter merging
// and folding, fused linear ops and the --mixq-compile pipeline.
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_METHODS_PASSES_H
#define MIXQ_METHODS_PASSES_H

#include "mixq/Dialect/MixQ/IR/MixQ.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

namespace mixq {

#define GEN_PASS_DECL
#include "mixq/Methods/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "mixq/Methods/Passes.h.inc"

} // namespace mixq

#endif // MIXQ_METHODS_PASSES_H
