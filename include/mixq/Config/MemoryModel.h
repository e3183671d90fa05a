//===- MemoryModel.h - static fine-tuning memory estimate --------*- C++ -*-===//
//
// The static model of a fine-tuning step's peak memory, by category, that
// `--mixq-estimate-memory` annotates and the runtime's measured peak is checked
// against (within 3%). The model is documented in docs/memory-model.md; keep
// the two in sync. MLIR-free.
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_CONFIG_MEMORYMODEL_H
#define MIXQ_CONFIG_MEMORYMODEL_H

#include "mixq/Config/VariantConfig.h"
#include "mixq/Import/ModelConfig.h"

#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/Support/JSON.h"

#include <cstdint>
#include <vector>

namespace mixq {

struct MemoryOptions {
  /// Without `seqLens`: `batch` sequences of `seqLen` tokens (the padded
  /// shape).
  int64_t batch = 4;
  int64_t seqLen = 256;
  /// The real micro-batch, when known: the lengths of its sequences (the
  /// runtime packs them without padding, so activations grow with the
  /// number of tokens and attention with the sum of squared lengths).
  std::vector<int64_t> seqLens;
  /// Tokens that carry a loss (the final norm and the LM head run on these
  /// rows only); -1: every token.
  int64_t lossTokens = -1;
  bool trainNorms = false;      ///< RMSNorm weights trainable too
  int64_t optimizerStates = 2;  ///< AdamW: m and v
};

struct MemoryBreakdown {
  int64_t weights = 0;     ///< frozen base incl. quantization metadata
  int64_t adapters = 0;    ///< trainable parameters
  int64_t optimizer = 0;   ///< optimizer state
  int64_t gradients = 0;   ///< parameter gradients
  int64_t activations = 0; ///< tensors saved for backward
  int64_t workspace = 0;   ///< largest transient buffers of a step
  int64_t total() const {
    return weights + adapters + optimizer + gradients + activations +
           workspace;
  }
  llvm::json::Object toJSON() const;
};

// A weight's bytes in its format are kernels::quantizedBytes (Quant.h): the
// kernels' storage layout is the one source of truth.
/// Trainable parameters of the adapter of a [rows=out, cols=in] linear.
int64_t adapterParams(int64_t rows, int64_t cols, const AdapterSpec &a);
/// Whether the runtime runs this linear densely in Eigen (an f32 base with no
/// adapter or a LoRA adapter); every other linear runs through the fused
/// kernels, which recompute the adapter's intermediates in backward.
bool runsDense(const LinearSpec &s);
/// Bytes a [rows=out, cols=in] linear keeps from forward to backward for
/// `tokens` rows: the u8 adapter-dropout mask [tokens, in] when dropout > 0,
/// and for a dense LoRA X·Aᵀ [tokens, r] (f32).
int64_t linearSavedBytes(int64_t rows, int64_t cols, const LinearSpec &s,
                         int64_t tokens);
/// The largest transient bytes of the linear's backward: with dropout the
/// dropped input and its gradient [tokens, in] (f32 each); for a dense LoRA
/// also dY·B [tokens, r].
int64_t linearBackwardTransientBytes(int64_t rows, int64_t cols,
                                     const LinearSpec &s, int64_t tokens);

using LinearSpecFn =
    llvm::function_ref<LinearSpec(int64_t layer, llvm::StringRef role)>;

/// Estimates the peak of one fine-tuning step of `model` whose linears are
/// configured by `spec` (layer -1 = lm_head): the larger of the two moments
/// the runtime peaks at (the LM-head backward, with every layer's saved
/// tensors and the logits live; the backward of a decoder layer, with the
/// saved tensors of it and the layers below and the backward buffers).
MemoryBreakdown estimateFineTuneMemory(const ModelConfig &model,
                                       LinearSpecFn spec,
                                       const MemoryOptions &opts);

} // namespace mixq

#endif // MIXQ_CONFIG_MEMORYMODEL_H
