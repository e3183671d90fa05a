//===- FuzzTargets.cpp - bodies of the import fuzz targets ------*- C++ -*-===//
//
// Each function checks, independently of the parser, the guarantees the
// readers rely on: accepted tensors lie inside the input, their byte spans
// match shape x dtype and do not overlap, and decoding yields one value per
// element.
//
//===----------------------------------------------------------------------===//

#include "FuzzTargets.h"

#include "ImportInternal.h"

#include <algorithm>

using namespace mixq;
using namespace mixq::detail;

namespace {

/// Largest tensor decoded per execution (keeps executions fast).
constexpr uint64_t kMaxDecodeBytes = uint64_t(1) << 22;

bool checkTensors(llvm::StringRef bytes, std::vector<TensorInfo> tensors) {
  uint64_t size = bytes.size();
  for (const TensorInfo &t : tensors) {
    if (t.offset > size || t.nbytes > size - t.offset)
      return false;
    uint64_t need = dtypeSize(t.dtype);
    for (int64_t d : t.shape)
      if (d < 0 || __builtin_mul_overflow(need, uint64_t(d), &need))
        return false;
    if (need != t.nbytes)
      return false;
    if (t.nbytes > kMaxDecodeBytes)
      continue;
    llvm::Expected<std::vector<float>> values =
        decodeTensor(t, bytes.substr(t.offset, t.nbytes));
    if (!values) {
      // Only the rotary permutation may refuse a well-sized tensor.
      llvm::consumeError(values.takeError());
      if (t.interleavedRopeHeads == 0)
        return false;
      continue;
    }
    if (values->size() != static_cast<uint64_t>(t.numElements()))
      return false;
  }
  std::sort(tensors.begin(), tensors.end(),
            [](const TensorInfo &a, const TensorInfo &b) {
              return a.offset < b.offset;
            });
  for (size_t i = 1; i < tensors.size(); ++i)
    if (tensors[i - 1].offset + tensors[i - 1].nbytes > tensors[i].offset)
      return false;
  return true;
}

} // namespace

bool fuzz::runSafetensors(llvm::StringRef bytes) {
  llvm::Expected<SafetensorsHeader> header =
      parseSafetensorsBuffer("fuzz.safetensors", bytes);
  if (!header) {
    llvm::consumeError(header.takeError());
    return true;
  }
  return checkTensors(bytes, std::move(header->tensors));
}

bool fuzz::runLlama2c(llvm::StringRef bytes) {
  llvm::Expected<Llama2cLayout> layout =
      parseLlama2cHeader("fuzz.bin", bytes, bytes.size());
  if (!layout) {
    llvm::consumeError(layout.takeError());
    return true;
  }
  // An accepted file is exactly as long as its header implies.
  if (layout->tensors.empty() ||
      static_cast<int64_t>(layout->tensors.size()) !=
          static_cast<int64_t>(expectedTensorNames(layout->config).size()))
    return false;
  return checkTensors(bytes, std::move(layout->tensors));
}
