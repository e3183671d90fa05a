//===- SafetensorsFuzzer.cpp - libFuzzer target: safetensors ----*- C++ -*-===//
//
// Arbitrary bytes as a whole safetensors file. Errors are expected; crashes,
// sanitizer reports and broken parser guarantees (trap) are bugs.
//
//===----------------------------------------------------------------------===//

#include "FuzzTargets.h"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  llvm::StringRef bytes(reinterpret_cast<const char *>(data), size);
  if (!mixq::fuzz::runSafetensors(bytes))
    __builtin_trap();
  return 0;
}
