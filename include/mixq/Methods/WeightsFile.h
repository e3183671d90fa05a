//===- WeightsFile.h - the variant's weights.safetensors ----------*- C++ -*-===//
//
// A variant's materialised tensors live in one safetensors file,
// `<variant>/weights.safetensors`. Besides plain tensors (f32 bases that
// override the checkpoint's, PEFT adapters) it holds quantized weights as
// the arrays of a kernels::QuantizedTensor, named after the weight `W`
// (e.g. `model.layers.0.self_attn.q_proj.weight`):
//
//   W.qcodes         U8  [rows, rowBytes]   packed codes (Quant.h layout)
//   W.qscales        F32 [rows, blocks] (nf4/fp4/int8 without double quant)
//                        or [tileRowCount, tileColCount] (int4/3/2: alpha)
//   W.qzeros         F32 [tileRowCount, tileColCount] (int4/3/2: beta)
//   W.qscale_codes   U8  [rows * blocks]    double quant: 8-bit absmax codes
//   W.qscale_absmax  F32 [ceil(rows * blocks / 256)]
//   W.qscale_offset  F32 [1]                double quant: the mean offset
//
// Arrays a format does not use are absent. The header's `__metadata__`
// holds `"format": "mixq-weights"`, `"version": "1"` and, under the key `W`,
// the spec as JSON: {"format": "nf4", "block": 64, "double_quant": true,
// "tile": [1, 64], "rows": 64, "cols": 172, "row_bytes": 86}.
// MLIR-free; errors name the file and the tensor.
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_METHODS_WEIGHTSFILE_H
#define MIXQ_METHODS_WEIGHTSFILE_H

#include "mixq/Import/Checkpoint.h"
#include "mixq/Kernels/Quant.h"

#include "llvm/ADT/StringMap.h"
#include "llvm/Support/Error.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace mixq {
namespace methods {

/// The file name of the materialised tensors inside a variant directory.
constexpr const char *kWeightsFileName = "weights.safetensors";

/// Suffixes of the packed arrays (".qcodes", ...), in the order above.
extern const char *const kPackedSuffixes[6];

/// The spec of a quantized tensor as its metadata JSON (see file comment).
std::string quantizedSpecJSON(const kernels::QuantizedTensor &q);

/// A reader of a weights file's quantized tensors (plain tensors are read
/// with the Checkpoint interface: Checkpoint::openTensorFile).
class QuantizedWeightsReader {
public:
  /// Opens `path`, validating the safetensors header.
  static llvm::Expected<std::unique_ptr<QuantizedWeightsReader>>
  open(llvm::StringRef path);

  /// True if `name` was stored as a quantized tensor.
  bool hasQuantized(llvm::StringRef name) const {
    return specs_.count(name) != 0;
  }
  /// Names of the quantized tensors, sorted.
  std::vector<std::string> quantizedNames() const;
  /// Loads and verifies quantized tensor `name`.
  llvm::Expected<kernels::QuantizedTensor> load(llvm::StringRef name) const;
  const Checkpoint &file() const { return *file_; }

private:
  std::unique_ptr<Checkpoint> file_;
  llvm::StringMap<std::string> specs_;
};

/// Loads quantized tensor `name` from the weights file `path` (what the
/// runtime calls for a linear whose base the compiler materialised).
llvm::Expected<kernels::QuantizedTensor>
loadQuantizedTensor(llvm::StringRef path, llvm::StringRef name);

/// A weights file being built: starts from the tensors already in the file
/// (if any), replaces or adds tensors, and writes the whole file atomically.
class WeightsFileWriter {
public:
  /// Loads `path` if it exists (errors if it exists but is not readable).
  static llvm::Expected<WeightsFileWriter> openOrCreate(llvm::StringRef path);

  /// Adds or replaces a plain f32 tensor.
  void putF32(llvm::StringRef name, std::vector<int64_t> shape,
              const std::vector<float> &values);
  /// Adds or replaces the packed arrays and metadata of quantized `name`
  /// (removing arrays a previous format of `name` had).
  void putQuantized(llvm::StringRef name, const kernels::QuantizedTensor &q);
  /// Removes tensor `name` and, if quantized, its packed arrays.
  void remove(llvm::StringRef name);
  bool contains(llvm::StringRef name) const {
    return tensors_.count(name.str()) != 0;
  }
  /// Writes the file (to a temporary name, then renamed).
  llvm::Error write() const;
  const std::string &path() const { return path_; }

private:
  std::string path_;
  std::map<std::string, TensorData> tensors_;
  std::map<std::string, std::string> metadata_;
};

} // namespace methods
} // namespace mixq

#endif // MIXQ_METHODS_WEIGHTSFILE_H
