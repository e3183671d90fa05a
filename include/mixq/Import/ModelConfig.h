//===- ModelConfig.h - LLaMA-family model shape description ------*- C++ -*-===//
//
// The shape of a LLaMA-family decoder as MixQ sees it: global sizes plus
// per-layer head counts and MLP widths (structurally pruned models differ
// layer by layer). MLIR-free; shared by import, runtime and search.
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_IMPORT_MODELCONFIG_H
#define MIXQ_IMPORT_MODELCONFIG_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/JSON.h"

#include <cstdint>
#include <string>
#include <vector>

namespace mixq {

/// Per-layer shape; equal for every layer of an unpruned model.
struct LayerShape {
  int64_t numHeads = 0;
  int64_t numKVHeads = 0;
  int64_t intermediateSize = 0;
};

/// The seven configurable projections of a decoder layer, in checkpoint order.
inline constexpr const char *kProjectionRoles[] = {
    "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
    "down_proj"};
inline constexpr int kNumProjectionRoles = 7;

struct ModelConfig {
  std::string architecture = "LlamaForCausalLM";
  int64_t hiddenSize = 0;
  int64_t intermediateSize = 0;
  int64_t numLayers = 0;
  int64_t numHeads = 0;
  int64_t numKVHeads = 0;
  int64_t headDim = 0; ///< hiddenSize / numHeads unless config says otherwise
  int64_t vocabSize = 0;
  int64_t maxSeqLen = 0;
  double rmsNormEps = 1e-5;
  double ropeTheta = 10000.0;
  bool tiedEmbeddings = false;
  /// One entry per layer (always numLayers entries once validated).
  std::vector<LayerShape> layers;

  /// Parses a Hugging Face `config.json`. Accepts the optional MixQ extension
  /// `"mixq_layers": [{num_heads, num_key_value_heads, intermediate_size}]`
  /// for pruned models. Errors name `path` and the offending key.
  static llvm::Expected<ModelConfig> fromHFConfigFile(llvm::StringRef path);
  static llvm::Expected<ModelConfig> fromJSON(const llvm::json::Value &v,
                                              llvm::StringRef origin);
  /// Writes the HF config.json form (with `mixq_layers` when per-layer shapes
  /// differ from the global ones).
  llvm::json::Value toJSON() const;

  /// Fills `layers` from the global sizes when empty and checks consistency
  /// (positive sizes, heads divisible by KV heads, ...).
  llvm::Error validate(llvm::StringRef origin);

  /// Input and output features of projection `role` in layer `layer`.
  std::pair<int64_t, int64_t> projectionShape(int64_t layer,
                                              llvm::StringRef role) const;
  /// Total parameter count (embedding counted once when tied).
  int64_t numParameters() const;
};

} // namespace mixq

#endif // MIXQ_IMPORT_MODELCONFIG_H
