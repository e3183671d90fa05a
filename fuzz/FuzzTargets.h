//===- FuzzTargets.h - bodies of the import fuzz targets --------*- C++ -*-===//
//
// The work of one fuzz execution, shared by the libFuzzer mains (built with
// clang++) and the corpus smoke test in MixQImportTests (built with g++).
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_FUZZ_FUZZTARGETS_H
#define MIXQ_FUZZ_FUZZTARGETS_H

#include "llvm/ADT/StringRef.h"

namespace mixq::fuzz {

/// Parses `bytes` as a whole safetensors file and decodes every tensor the
/// parser accepts. Returns false when the parser broke one of its guarantees
/// (a bug); parse errors are expected and return true.
bool runSafetensors(llvm::StringRef bytes);

/// The same for a llama2.c v0 `.bin` file.
bool runLlama2c(llvm::StringRef bytes);

} // namespace mixq::fuzz

#endif // MIXQ_FUZZ_FUZZTARGETS_H
