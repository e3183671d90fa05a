//===- Passes.h - MixQ code generation passes -------------------*- C++ -*-===//

#ifndef MIXQ_CODEGEN_PASSES_H
#define MIXQ_CODEGEN_PASSES_H

#include "mixq/Dialect/MixQ/IR/MixQ.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

namespace mixq {

#define GEN_PASS_DECL
#include "mixq/CodeGen/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "mixq/CodeGen/Passes.h.inc"

} // namespace mixq

#endif // MIXQ_CODEGEN_PASSES_H
