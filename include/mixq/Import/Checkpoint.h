//===- Checkpoint.h - read LLaMA-family checkpoints --------------*- C++ -*-===//
//
// One reader interface over the checkpoint formats MixQ imports:
//   - a Hugging Face directory: config.json + model.safetensors, or sharded
//     model-*.safetensors with model.safetensors.index.json (F32/F16/BF16);
//   - a llama2.c v0 `.bin` (shared or separate classifier);
//   - a TorchScript `.pt` through LibTorch (when built with it);
//   - a bare config.json (config-only: shapes without weights).
// Tensors are always exposed under Hugging Face names
// (`model.layers.{i}.self_attn.q_proj.weight`, ...) and in the HF layout:
// llama2.c q/k rows are permuted on read to the rotate_half rotary layout, so
// both imports of stories260K give the same logits. MLIR-free.
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_IMPORT_CHECKPOINT_H
#define MIXQ_IMPORT_CHECKPOINT_H

#include "mixq/Import/ModelConfig.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mixq {

enum class DType { F32, F16, BF16, I8, U8, I16, I32, I64, F64 };

llvm::StringRef dtypeName(DType t);            ///< safetensors spelling: "F32"
llvm::Expected<DType> parseDType(llvm::StringRef s);
int64_t dtypeSize(DType t);

struct TensorInfo {
  std::string name;            ///< HF name
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::string file;            ///< file that holds the data ("" if none)
  uint64_t offset = 0;         ///< absolute byte offset in `file`
  uint64_t nbytes = 0;
  /// Nonzero when the stored rows are in the interleaved-pair rotary layout of
  /// llama2.c/Meta checkpoints (q_proj/k_proj only): readF32 permutes them to
  /// the HF rotate_half layout with this many heads. Code that maps the raw
  /// bytes at `offset` itself must apply the same permutation.
  int64_t interleavedRopeHeads = 0;
  int64_t numElements() const;
};

class Checkpoint {
public:
  virtual ~Checkpoint();

  /// Opens `path` (directory, .safetensors, .bin, .pt or config.json) and
  /// validates every header/offset against the file sizes and config.json.
  /// Errors name the file and the problem.
  static llvm::Expected<std::unique_ptr<Checkpoint>> open(llvm::StringRef path);

  /// Opens one safetensors file that is not a whole model (e.g. a PEFT
  /// `adapter_model.safetensors`): the header is validated as in open() but
  /// nothing is checked against a config.json; config() stays empty and
  /// format() is "safetensors".
  static llvm::Expected<std::unique_ptr<Checkpoint>>
  openTensorFile(llvm::StringRef path);

  /// "hf-safetensors", "llama2c", "torchscript", "config-only" or, for
  /// openTensorFile, "safetensors".
  virtual llvm::StringRef format() const = 0;
  const std::string &path() const { return path_; }
  const ModelConfig &config() const { return config_; }
  bool hasWeights() const { return !tensors_.empty(); }
  llvm::ArrayRef<TensorInfo> tensors() const { return tensors_; }
  const TensorInfo *find(llvm::StringRef name) const;

  /// Reads a tensor converted to f32, in HF layout.
  virtual llvm::Expected<std::vector<float>> readF32(llvm::StringRef name) const;

protected:
  std::string path_;
  ModelConfig config_;
  std::vector<TensorInfo> tensors_;
};

/// A tensor to write into a safetensors file.
struct TensorData {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes; ///< little-endian, row-major
};

/// Writes one safetensors file (header sorted by name, 8-byte aligned).
llvm::Error writeSafetensors(llvm::StringRef path,
                             llvm::ArrayRef<TensorData> tensors,
                             const std::vector<std::pair<std::string, std::string>>
                                 &metadata = {});

/// Writes a random-weight HF checkpoint (config.json + model.safetensors) of
/// `config` into `dir`: seeded, deterministic, weights ~ N(0, 0.02), norms 1.
llvm::Error writeRandomCheckpoint(const ModelConfig &config, llvm::StringRef dir,
                                  uint64_t seed, DType dtype = DType::F32);

/// The HF tensor names a LLaMA-family checkpoint of `config` must have.
std::vector<std::string> expectedTensorNames(const ModelConfig &config);

} // namespace mixq

#endif // MIXQ_IMPORT_CHECKPOINT_H
