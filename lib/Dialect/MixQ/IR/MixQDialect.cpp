//===- MixQDialect.cpp - MixQ dialect registration ----------------*- C++ -*-===//

#include "mixq/Dialect/MixQ/IR/MixQ.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mixq;

#include "mixq/Dialect/MixQ/IR/MixQDialect.cpp.inc"
#include "mixq/Dialect/MixQ/IR/MixQEnums.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "mixq/Dialect/MixQ/IR/MixQAttrs.cpp.inc"

void MixQDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "mixq/Dialect/MixQ/IR/MixQOps.cpp.inc"
      >();
  addAttributes<
#define GET_ATTRDEF_LIST
#include "mixq/Dialect/MixQ/IR/MixQAttrs.cpp.inc"
      >();
}

namespace mixq::detail {

FailureOr<APFloat> parseDouble(AsmParser &parser) {
  double value = 0.0;
  if (parser.parseFloat(value))
    return failure();
  return APFloat(value);
}

void printDouble(AsmPrinter &printer, const APFloat &value) {
  // printFloat keeps a decimal point or exponent, so the value re-parses as
  // a float and round-trips exactly.
  printer.printFloat(value);
}

FailureOr<bool> parseBool(AsmParser &parser) {
  if (succeeded(parser.parseOptionalKeyword("true")))
    return true;
  if (succeeded(parser.parseOptionalKeyword("false")))
    return false;
  return parser.emitError(parser.getCurrentLocation(),
                          "expected 'true' or 'false'");
}

FailureOr<SmallVector<int64_t>> parseIntList(AsmParser &parser) {
  SmallVector<int64_t> values;
  if (parser.parseCommaSeparatedList(AsmParser::Delimiter::Square, [&] {
        return parser.parseInteger(values.emplace_back());
      }))
    return failure();
  return values;
}

void printIntList(AsmPrinter &printer, ArrayRef<int64_t> values) {
  printer << "[";
  llvm::interleaveComma(values, printer);
  printer << "]";
}

} // namespace mixq::detail
