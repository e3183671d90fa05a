//===- MixQ.h - MixQ dialect --------------------------------------*- C++ -*-===//

#ifndef MIXQ_DIALECT_MIXQ_IR_MIXQ_H
#define MIXQ_DIALECT_MIXQ_IR_MIXQ_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "mixq/Dialect/MixQ/IR/MixQDialect.h.inc"
#include "mixq/Dialect/MixQ/IR/MixQEnums.h.inc"

namespace mixq::detail {
mlir::FailureOr<llvm::APFloat> parseDouble(mlir::AsmParser &parser);
void printDouble(mlir::AsmPrinter &printer, const llvm::APFloat &value);
mlir::FailureOr<bool> parseBool(mlir::AsmParser &parser);
mlir::FailureOr<llvm::SmallVector<int64_t>> parseIntList(mlir::AsmParser &p);
void printIntList(mlir::AsmPrinter &printer, llvm::ArrayRef<int64_t> values);
} // namespace mixq::detail

#define GET_ATTRDEF_CLASSES
#include "mixq/Dialect/MixQ/IR/MixQAttrs.h.inc"

#define GET_OP_CLASSES
#include "mixq/Dialect/MixQ/IR/MixQOps.h.inc"

#endif // MIXQ_DIALECT_MIXQ_IR_MIXQ_H
