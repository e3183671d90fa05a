//===- ImportInternal.h - shared import internals ---------------*- C++ -*-===//
//
// Declarations shared by the format readers in lib/Import, the unit tests and
// the fuzz targets. The parsers here work on bytes in memory and never touch
// the file system, so fuzzers can drive them directly. Not installed.
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_LIB_IMPORT_IMPORTINTERNAL_H
#define MIXQ_LIB_IMPORT_IMPORTINTERNAL_H

#include "mixq/Import/Checkpoint.h"

#include "llvm/ADT/Twine.h"

#include <optional>

namespace mixq {
namespace detail {

/// An error "<file>: <msg>".
llvm::Error importError(llvm::StringRef file, const llvm::Twine &msg);

/// Formats a shape as "[a, b]".
std::string shapeString(llvm::ArrayRef<int64_t> shape);

/// `a * b` into `out`, false on overflow of the unsigned 64-bit range.
bool mulOverflow(uint64_t a, uint64_t b, uint64_t &out);

//===----------------------------------------------------------------------===//
// Safetensors
//===----------------------------------------------------------------------===//

/// Largest header accepted (the safetensors reference implementation's limit).
inline constexpr uint64_t kMaxSafetensorsHeader = uint64_t(100) << 20;

/// Decodes the 8-byte little-endian header length at the start of a
/// safetensors file of `fileSize` bytes; `prefix` holds the first bytes read.
llvm::Expected<uint64_t> parseSafetensorsHeaderSize(llvm::StringRef file,
                                                    llvm::StringRef prefix,
                                                    uint64_t fileSize);

struct SafetensorsHeader {
  std::vector<TensorInfo> tensors; ///< sorted by name; offsets absolute
  std::vector<std::pair<std::string, std::string>> metadata;
};

/// Parses and validates the JSON header `json` of a file of `fileSize` bytes
/// (header at byte 8). Checks dtypes, shapes against spans, ranges, overlaps,
/// holes and duplicate names.
llvm::Expected<SafetensorsHeader> parseSafetensorsHeader(llvm::StringRef file,
                                                         llvm::StringRef json,
                                                         uint64_t fileSize);

/// Parses a whole safetensors file held in memory (header only is decoded).
llvm::Expected<SafetensorsHeader> parseSafetensorsBuffer(llvm::StringRef file,
                                                         llvm::StringRef bytes);

/// A tensor to lay out in a safetensors header.
struct TensorSpec {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
};

/// Builds the length-prefixed header (8-byte length + JSON padded with spaces
/// to a multiple of 8) for `tensors` stored back to back in the given order.
llvm::Expected<std::string> buildSafetensorsHeader(
    llvm::StringRef file, llvm::ArrayRef<TensorSpec> tensors,
    const std::vector<std::pair<std::string, std::string>> &metadata);

/// The first key occurring twice at the top level of the JSON object `text`.
std::optional<std::string> findDuplicateTopLevelKey(llvm::StringRef text);

//===----------------------------------------------------------------------===//
// llama2.c
//===----------------------------------------------------------------------===//

inline constexpr uint64_t kLlama2cHeaderBytes = 7 * 4;

struct Llama2cLayout {
  ModelConfig config;
  std::vector<TensorInfo> tensors; ///< HF names, canonical order
};

/// Parses the v0 header in `header` (at least 28 bytes) of a file of
/// `fileSize` bytes and lays out every tensor; the size must match exactly.
llvm::Expected<Llama2cLayout> parseLlama2cHeader(llvm::StringRef file,
                                                 llvm::StringRef header,
                                                 uint64_t fileSize);

//===----------------------------------------------------------------------===//
// Tensor data
//===----------------------------------------------------------------------===//

/// Converts the `info.nbytes` raw little-endian bytes in `bytes` to f32 in HF
/// layout (undoing the interleaved rotary layout when asked).
llvm::Expected<std::vector<float>> decodeTensor(const TensorInfo &info,
                                                llvm::StringRef bytes);

/// Permutes the rows of a [heads * headDim, cols] matrix from the interleaved
/// rotary layout (llama2.c/Meta) to HF rotate_half: row h*hd + 2i + j moves to
/// h*hd + j*hd/2 + i. Returns false when the sizes do not fit.
bool permuteInterleavedRows(std::vector<float> &data, int64_t rows,
                            int64_t cols, int64_t heads);

float halfToFloat(uint16_t h);
float bfloat16ToFloat(uint16_t b);
uint16_t floatToHalf(float f);
uint16_t floatToBFloat16(float f);

//===----------------------------------------------------------------------===//
// Model-level checks
//===----------------------------------------------------------------------===//

/// Expected HF tensors of `config` with their shapes (lm_head only when not
/// tied).
std::vector<TensorSpec> expectedTensors(const ModelConfig &config);

/// Checks `tensors` against `config` (every expected tensor present with the
/// right shape and a floating-point dtype) and reorders them: expected names
/// first, then any others by name.
llvm::Error checkTensorsAgainstConfig(llvm::StringRef origin,
                                      const ModelConfig &config,
                                      std::vector<TensorInfo> &tensors);

//===----------------------------------------------------------------------===//
// Format readers (called by Checkpoint::open)
//===----------------------------------------------------------------------===//

llvm::Expected<std::unique_ptr<Checkpoint>>
openSafetensorsFile(llvm::StringRef path);
llvm::Expected<std::unique_ptr<Checkpoint>>
openShardedSafetensors(llvm::StringRef indexPath);
llvm::Expected<std::unique_ptr<Checkpoint>> openLlama2c(llvm::StringRef path);
llvm::Expected<std::unique_ptr<Checkpoint>>
openTorchScript(llvm::StringRef path);
llvm::Expected<std::unique_ptr<Checkpoint>>
openConfigOnly(llvm::StringRef configPath);

/// Whether this build can read TorchScript.
bool haveTorchScript();

} // namespace detail
} // namespace mixq

#endif // MIXQ_LIB_IMPORT_IMPORTINTERNAL_H
