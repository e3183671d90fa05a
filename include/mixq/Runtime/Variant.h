//===- Variant.h - what mixq-run runs: a variant dir or a checkpoint -*- C++ -*-===//
//
// The runtime's input, without MLIR:
//   (a) a variant directory with manifest.json =
//       {"version": 1, "checkpoint": "<source checkpoint>",
//        "weights": "weights.safetensors"      (optional; its tensors override
//                                               the checkpoint's, and may hold
//                                               initialised PEFT adapters),
//        "tokenizer": "<path>"                 (optional),
//        "model": {<HF config.json, optional mixq_layers>},
//        "config": {<VariantConfig JSON>}}
//       Relative paths are relative to the variant directory.
//   (b) a checkpoint (HF directory or llama2.c .bin) with an optional config
//       JSON file (none: f32 base without adapters).
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_RUNTIME_VARIANT_H
#define MIXQ_RUNTIME_VARIANT_H

#include "mixq/Config/VariantConfig.h"
#include "mixq/Import/Checkpoint.h"
#include "mixq/Import/ModelConfig.h"
#include "mixq/Methods/WeightsFile.h"
#include "mixq/Runtime/Model.h"
#include "mixq/Runtime/Tokenizer.h"

#include "llvm/Support/Error.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mixq {
namespace runtime {

class Variant {
public:
  /// Opens `path` (variant directory or checkpoint). `configPath` (only for a
  /// checkpoint) and `tokenizerPath` may be empty.
  static llvm::Expected<std::unique_ptr<Variant>>
  open(llvm::StringRef path, llvm::StringRef configPath = "",
       llvm::StringRef tokenizerPath = "");

  const ModelConfig &model() const { return model_; }
  const VariantConfig *config() const {
    return config_ ? &*config_ : nullptr;
  }
  const std::string &path() const { return path_; }
  const std::string &tokenizerPath() const { return tokenizerPath_; }

  /// A base tensor: the variant's weights file first, then the checkpoint.
  llvm::Expected<std::vector<float>> readWeight(llvm::StringRef name) const;
  /// An adapter tensor by PEFT name from the adapter file (see
  /// setAdapterFile) or the variant's weights; empty if absent.
  llvm::Expected<std::vector<float>> readAdapter(llvm::StringRef name) const;
  /// Loads adapters from `path` (a PEFT adapter_model.safetensors or a
  /// directory holding one) instead of initialising them.
  llvm::Error setAdapterFile(llvm::StringRef path);

  /// Opens the tokenizer (errors say how to name one when none is found).
  llvm::Expected<std::unique_ptr<Tokenizer>> openTokenizer() const;

  /// The packed base of linear `name` [out, in] stored by the compiler
  /// (mixq-opt --mixq-materialize-quant) in the variant's weights file, or
  /// null when it has none. An error names the file and the tensor when the
  /// packed tensor's format or shape disagrees with `spec` / [out, in].
  llvm::Expected<std::unique_ptr<kernels::QuantizedTensor>>
  readPrequantized(llvm::StringRef name, int64_t out, int64_t in,
                   const QuantSpec &spec) const;
  /// Linears whose packed base came from the weights file in the last
  /// buildModel (the others were quantized at load).
  int64_t numPrequantized() const { return numPrequantized_; }

  /// Builds the executable model (packed bases from the weights file when
  /// present, else quantized from the checkpoint's f32 weights).
  llvm::Expected<std::unique_ptr<Model>> buildModel(MemoryTracker &mem,
                                                    const ModelOptions &opts)
      const;

private:
  std::string path_;
  ModelConfig model_;
  std::optional<VariantConfig> config_;
  std::unique_ptr<Checkpoint> base_;
  std::unique_ptr<Checkpoint> overrides_;
  std::string overridesPath_;
  std::unique_ptr<methods::QuantizedWeightsReader> packed_;
  mutable int64_t numPrequantized_ = 0;
  std::unique_ptr<Checkpoint> adapterFile_;
  std::string tokenizerPath_;
};

} // namespace runtime
} // namespace mixq

#endif // MIXQ_RUNTIME_VARIANT_H
