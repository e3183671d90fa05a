//===- MixQAttrs.cpp - quantization and adapter attribute verifiers -*- C++ -*-===//
//
// Shape-independent checks; the checks that need the weight's shape (block
// divides the input width, QA-BLoRA tile equals the quant tile, rank fits the
// matrix) live in LinearOp::verify.
//
//===----------------------------------------------------------------------===//

#include "mixq/Dialect/MixQ/IR/MixQ.h"

using namespace mlir;
using namespace mixq;

static bool isPowerOfTwo(int64_t v) { return v > 0 && (v & (v - 1)) == 0; }

//===----------------------------------------------------------------------===//
// QuantAttr
//===----------------------------------------------------------------------===//

int64_t QuantAttr::getBits() const {
  switch (getFormat()) {
  case QuantFormatKind::f32: return 32;
  case QuantFormatKind::bf16: return 16;
  case QuantFormatKind::int8: return 8;
  case QuantFormatKind::nf4:
  case QuantFormatKind::fp4:
  case QuantFormatKind::int4: return 4;
  case QuantFormatKind::int3: return 3;
  case QuantFormatKind::int2: return 2;
  }
  return 32;
}

bool QuantAttr::isIntTile() const {
  QuantFormatKind f = getFormat();
  return f == QuantFormatKind::int4 || f == QuantFormatKind::int3 ||
         f == QuantFormatKind::int2;
}

LogicalResult QuantAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                QuantFormatKind format, int64_t block,
                                bool doubleQuant, ArrayRef<int64_t> tile) {
  bool blockwise = format == QuantFormatKind::nf4 ||
                   format == QuantFormatKind::fp4 ||
                   format == QuantFormatKind::int8;
  bool intTile = format == QuantFormatKind::int4 ||
                 format == QuantFormatKind::int3 ||
                 format == QuantFormatKind::int2;
  if (blockwise && (!isPowerOfTwo(block) || block < 16 || block > 4096))
    return emitError() << "expects block to be a power of two in [16, 4096], "
                          "got "
                       << block;
  if (doubleQuant && format != QuantFormatKind::nf4 &&
      format != QuantFormatKind::fp4)
    return emitError() << "double_quant applies only to nf4 and fp4, not "
                       << stringifyQuantFormatKind(format);
  if (intTile) {
    if (tile.size() != 2)
      return emitError() << "expects a 2-D tile = [rows, cols] for "
                         << stringifyQuantFormatKind(format);
    if (tile[0] <= 0 || tile[1] <= 0)
      return emitError() << "expects positive tile sizes, got [" << tile[0]
                         << ", " << tile[1] << "]";
    if (tile[0] * tile[1] < 2)
      return emitError() << "expects a tile of at least 2 elements";
  } else if (!tile.empty()) {
    return emitError() << "tile applies only to int4, int3 and int2, not "
                       << stringifyQuantFormatKind(format);
  }
  return success();
}

//===----------------------------------------------------------------------===//
// Adapter attributes
//===----------------------------------------------------------------------===//

static LogicalResult verifyCommon(function_ref<InFlightDiagnostic()> emitError,
                                  const APFloat &alphaF,
                                  const APFloat &dropoutF) {
  double alpha = alphaF.convertToDouble(), dropout = dropoutF.convertToDouble();
  if (alpha < 0.0)
    return emitError() << "expects a non-negative alpha, got " << alpha;
  if (dropout < 0.0 || dropout >= 1.0)
    return emitError() << "expects dropout in [0, 1), got " << dropout;
  return success();
}

LogicalResult LoRAAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                               int64_t rank, APFloat alpha, APFloat dropout,
                               AdapterInitKind init, int64_t initIters) {
  if (rank <= 0)
    return emitError() << "expects a positive rank, got " << rank;
  if (initIters < 1)
    return emitError() << "expects init_iters >= 1, got " << initIters;
  if (initIters > 1 && init != AdapterInitKind::loftq)
    return emitError() << "init_iters applies only to loftq initialisation";
  return verifyCommon(emitError, alpha, dropout);
}

LogicalResult QBLoRAAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                 int64_t rank, int64_t lambda, APFloat alpha,
                                 APFloat dropout, AdapterInitKind init) {
  if (rank <= 0)
    return emitError() << "expects a positive rank, got " << rank;
  if (!isPowerOfTwo(lambda))
    return emitError() << "expects lambda to be a power of two, got "
                       << lambda;
  return verifyCommon(emitError, alpha, dropout);
}

LogicalResult QABLoRAAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                  ArrayRef<int64_t> lambda, APFloat alpha,
                                  APFloat dropout) {
  if (lambda.size() != 2)
    return emitError() << "expects lambda = [rows, cols], got "
                       << lambda.size() << " values";
  if (lambda[0] <= 0 || lambda[1] <= 0)
    return emitError() << "expects positive lambda values";
  return verifyCommon(emitError, alpha, dropout);
}
