//===- mixq-opt.cpp - the MixQ optimizer driver -------------------*- C++ -*-===//
//
// Parses mixq (+ func, arith, tensor) IR and runs mixq passes and pipelines
// and a few upstream ones (canonicalize, cse, symbol-dce).
//
//===----------------------------------------------------------------------===//

#include "mixq/Dialect/MixQ/IR/MixQ.h"
#include "mixq/Transforms/Passes.h"
#ifdef MIXQ_HAVE_CODEGEN
#include "mixq/CodeGen/Passes.h"
#endif
#ifdef MIXQ_HAVE_METHODS
#include "mixq/Methods/Passes.h"
#endif

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "mlir/Transforms/Passes.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  registry.insert<mixq::MixQDialect, mlir::func::FuncDialect,
                  mlir::arith::ArithDialect, mlir::tensor::TensorDialect>();

  mlir::registerCanonicalizerPass();
  mlir::registerCSEPass();
  mlir::registerSymbolDCEPass();
  mixq::registerMixQPasses();
#ifdef MIXQ_HAVE_CODEGEN
  mixq::registerMixQCodeGenPasses();
#endif
#ifdef MIXQ_HAVE_METHODS
  mixq::registerMixQMethodsPasses();
#endif

  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "MixQ optimizer driver\n", registry));
}
