//===- MemoryModel.cpp - static fine-tuning memory estimate -------*- C++ -*-===//

#include "mixq/Config/MemoryModel.h"
#include "mixq/Kernels/Quant.h"

#include <algorithm>

using namespace llvm;

namespace mixq {


json::Object MemoryBreakdown::toJSON() const {
  return json::Object{{"total", total()},         {"weights", weights},
                      {"adapters", adapters},     {"optimizer", optimizer},
                      {"gradients", gradients},   {"activations", activations},
                      {"workspace", workspace}};
}

int64_t adapterParams(int64_t rows, int64_t cols, const AdapterSpec &a) {
  switch (a.kind) {
  case AdapterKind::None:
    return 0;
  case AdapterKind::LoRA:
    return a.rank * (rows + cols);
  case AdapterKind::QBLoRA: // A: [rank*l, in/l], B: [out/l, rank*l]
    return a.rank * a.lambda * (cols / a.lambda + rows / a.lambda);
  case AdapterKind::QABLoRA: // H: [out/lr, in/lc]
    return (rows / a.lambdaRows) * (cols / a.lambdaCols);
  case AdapterKind::AdaLoRA: // Q [r, in], lambda [r], P [out, r]
    return a.rank * (rows + cols + 1);
  }
  return 0;
}

int64_t adapterSavedWidth(int64_t rows, int64_t cols, const AdapterSpec &a) {
  (void)rows;
  switch (a.kind) {
  case AdapterKind::None:
    return 0;
  case AdapterKind::LoRA: // X·A^T
    return a.rank;
  case AdapterKind::QBLoRA: // pooled X and its projection
    return cols / a.lambda + a.rank * a.lambda;
  case AdapterKind::QABLoRA: // pooled X
    return cols / a.lambdaCols;
  case AdapterKind::AdaLoRA: // X·Q^T, as LoRA
    return a.rank;
  }
  return 0;
}

namespace {
/// Accumulates the per-linear categories.
struct LinearTally {
  MemoryBreakdown &m;
  const MemoryOptions &opts;
  int64_t tokens;
  int64_t maxPanel = 0;

  void add(int64_t rows, int64_t cols, const LinearSpec &s) {
    m.weights += kernels::quantizedBytes(s.quant, rows, cols);
    int64_t p = adapterParams(rows, cols, s.adapter);
    m.adapters += 4 * p;
    m.gradients += 4 * p;
    m.optimizer += 4 * p * opts.optimizerStates;
    m.activations += 4 * tokens * adapterSavedWidth(rows, cols, s.adapter);
    if (s.adapter.kind != AdapterKind::None && s.adapter.dropout > 0.0)
      m.activations += tokens * cols; // u8 dropout mask
    maxPanel = std::max(maxPanel, cols);
  }
};
} // namespace

MemoryBreakdown estimateFineTuneMemory(const ModelConfig &model,
                                       LinearSpecFn spec,
                                       const MemoryOptions &opts) {
  MemoryBreakdown m;
  const int64_t b = opts.batch, t = opts.seqLen, n = b * t;
  const int64_t d = model.hiddenSize, hd = model.headDim, v = model.vocabSize;
  LinearTally tally{m, opts, n};

  // Embedding and final norm (f32); lm_head unless tied.
  m.weights += 4 * v * d + 4 * d;
  int64_t maxWidth = d, maxHeads = 0;
  for (int64_t l = 0; l < model.numLayers; ++l) {
    const LayerShape &ls = model.layers[l];
    const int64_t h = ls.numHeads, g = ls.numKVHeads, f = ls.intermediateSize;
    maxWidth = std::max({maxWidth, f, h * hd});
    maxHeads = std::max(maxHeads, h);
    m.weights += 2 * 4 * d; // two RMSNorm weights
    if (opts.trainNorms) {
      m.adapters += 2 * 4 * d;
      m.gradients += 2 * 4 * d;
      m.optimizer += 2 * 4 * d * opts.optimizerStates;
    }
    tally.add(h * hd, d, spec(l, "q_proj"));
    tally.add(g * hd, d, spec(l, "k_proj"));
    tally.add(g * hd, d, spec(l, "v_proj"));
    tally.add(d, h * hd, spec(l, "o_proj"));
    tally.add(f, d, spec(l, "gate_proj"));
    tally.add(f, d, spec(l, "up_proj"));
    tally.add(d, f, spec(l, "down_proj"));
    // Saved for backward (f32): block input, normed input + 1/rms, q k v
    // after RoPE, attention probabilities, attention output, mid residual,
    // normed + 1/rms, gate, up, silu(gate)*up.
    int64_t saved = n * d + (n * d + n) + n * (h + 2 * g) * hd +
                    b * h * t * t + n * h * hd + n * d + (n * d + n) +
                    3 * n * f;
    m.activations += 4 * saved;
  }
  if (!model.tiedEmbeddings)
    tally.add(v, d, spec(-1, "lm_head"));
  // Final norm input, normed + 1/rms, logits.
  m.activations += 4 * (n * d + n * d + n + n * v);
  // Transients of backward: dlogits, four activation-gradient buffers of the
  // widest layer, the attention-probability gradient of one layer, and one
  // dequantized [64, in] panel per thread.
  m.workspace = 4 * (n * v + 4 * n * maxWidth + b * maxHeads * t * t +
                     opts.numThreads * 64 * tally.maxPanel);
  return m;
}

} // namespace mixq
