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

namespace mixq {

struct MemoryOptions {
  int64_t batch = 4;
  int64_t seqLen = 256;
  bool trainNorms = false;      ///< RMSNorm weights trainable too
  int64_t optimizerStates = 2;  ///< AdamW: m and v
  int64_t numThreads = 2;       ///< kernel workspace panels
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
/// Width of the adapter's saved intermediate (X pooled / projected) per token.
int64_t adapterSavedWidth(int64_t rows, int64_t cols, const AdapterSpec &a);

using LinearSpecFn =
    llvm::function_ref<LinearSpec(int64_t layer, llvm::StringRef role)>;

/// Estimates the peak of one fine-tuning step of `model` whose linears are
/// configured by `spec` (layer -1 = lm_head).
MemoryBreakdown estimateFineTuneMemory(const ModelConfig &model,
                                       LinearSpecFn spec,
                                       const MemoryOptions &opts);

} // namespace mixq

#endif // MIXQ_CONFIG_MEMORYMODEL_H
