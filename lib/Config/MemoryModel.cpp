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

bool runsDense(const LinearSpec &s) {
  return s.quant.format == QuantFormat::F32 &&
         (s.adapter.kind == AdapterKind::None ||
          s.adapter.kind == AdapterKind::LoRA ||
          s.adapter.kind == AdapterKind::AdaLoRA);
}

int64_t linearSavedBytes(int64_t rows, int64_t cols, const LinearSpec &s,
                         int64_t tokens) {
  (void)rows;
  if (s.adapter.kind == AdapterKind::None)
    return 0;
  int64_t bytes = s.adapter.dropout > 0.0 ? tokens * cols : 0; // u8 mask
  if (runsDense(s)) // X·A^T
    bytes += 4 * tokens * s.adapter.rank;
  return bytes;
}

int64_t linearBackwardTransientBytes(int64_t rows, int64_t cols,
                                     const LinearSpec &s, int64_t tokens) {
  if (s.adapter.kind == AdapterKind::None)
    return 0;
  // Dropped input and the gradient with respect to it.
  int64_t bytes = s.adapter.dropout > 0.0 ? 2 * 4 * tokens * cols : 0;
  if (runsDense(s)) // dY·B
    bytes += 4 * tokens * s.adapter.rank;
  if (s.adapter.kind == AdapterKind::AdaLoRA) // gradient of P diag(lambda)
    bytes += 4 * rows * s.adapter.rank;
  return bytes;
}

namespace {
/// Accumulates the per-linear categories.
struct LinearTally {
  MemoryBreakdown &m;
  const MemoryOptions &opts;
  int64_t tokens;
  int64_t saved = 0;     ///< bytes kept for backward by the linears tallied
  int64_t transient = 0; ///< largest backward transient among them

  void add(int64_t rows, int64_t cols, const LinearSpec &s) {
    m.weights += kernels::quantizedBytes(s.quant, rows, cols);
    int64_t p = adapterParams(rows, cols, s.adapter);
    m.adapters += 4 * p;
    m.gradients += 4 * p;
    m.optimizer += 4 * p * opts.optimizerStates;
    if (s.adapter.kind == AdapterKind::AdaLoRA) {
      // P diag(lambda), rank mask; the rank allocator's sensitivity and
      // uncertainty averages of every adapter entry.
      m.workspace += 4 * (rows * s.adapter.rank + s.adapter.rank);
      m.optimizer += 2 * 4 * p;
    }
    saved += linearSavedBytes(rows, cols, s, tokens);
    transient = std::max(transient,
                         linearBackwardTransientBytes(rows, cols, s, tokens));
  }
};
} // namespace

MemoryBreakdown estimateFineTuneMemory(const ModelConfig &model,
                                       LinearSpecFn spec,
                                       const MemoryOptions &opts) {
  MemoryBreakdown m;
  std::vector<int64_t> lens = opts.seqLens;
  if (lens.empty())
    lens.assign(size_t(std::max<int64_t>(opts.batch, 0)), opts.seqLen);
  int64_t n = 0, sumSq = 0, maxLen = 0;
  for (int64_t len : lens) {
    n += len;
    sumSq += len * len;
    maxLen = std::max(maxLen, len);
  }
  const int64_t nt = opts.lossTokens < 0 ? n : std::min(opts.lossTokens, n);
  const int64_t d = model.hiddenSize, hd = model.headDim, v = model.vocabSize;

  // Embedding and final norm (f32); lm_head unless tied.
  m.weights += 4 * v * d + 4 * d;
  int64_t maxWidth = d;
  // Per layer: bytes saved for backward, and the largest transient of its
  // linears' backward.
  std::vector<int64_t> saved, transient;
  for (int64_t l = 0; l < model.numLayers; ++l) {
    const LayerShape &ls = model.layers[l];
    const int64_t h = ls.numHeads, g = ls.numKVHeads, f = ls.intermediateSize;
    maxWidth = std::max({maxWidth, f, h * hd});
    if (opts.trainNorms) { // two RMSNorm weights, trained
      m.adapters += 2 * 4 * d;
      m.gradients += 2 * 4 * d;
      m.optimizer += 2 * 4 * d * opts.optimizerStates;
    } else {
      m.weights += 2 * 4 * d;
    }
    LinearTally tally{m, opts, n};
    tally.add(h * hd, d, spec(l, "q_proj"));
    tally.add(g * hd, d, spec(l, "k_proj"));
    tally.add(g * hd, d, spec(l, "v_proj"));
    tally.add(d, h * hd, spec(l, "o_proj"));
    tally.add(f, d, spec(l, "gate_proj"));
    tally.add(f, d, spec(l, "up_proj"));
    tally.add(d, f, spec(l, "down_proj"));
    // Saved for backward (f32): block input, normed input + 1/rms, q k v
    // after RoPE, attention probabilities (h·len² per sequence), attention
    // output, mid residual, normed + 1/rms, gate, up, silu(gate)*up.
    int64_t values = n * d + (n * d + n) + n * (h + 2 * g) * hd +
                     h * sumSq + n * h * hd + n * d + (n * d + n) + 3 * n * f;
    saved.push_back(4 * values + tally.saved);
    transient.push_back(tally.transient);
  }
  if (!model.tiedEmbeddings) {
    // Its input is not kept: the lm_head's adapter is not trained, and its
    // backward (input gradient only) allocates nothing.
    LinearTally tally{m, opts, 0};
    tally.add(v, d, spec(-1, "lm_head"));
  }
  const int64_t persistentWorkspace = m.workspace;
  int64_t allSaved = 0;
  for (int64_t s : saved)
    allSaved += s;

  // Moment 1, the LM-head backward: every layer's saved tensors, the last
  // residual [n, d], the final-norm output + 1/rms and the logits (turned
  // into dlogits in place) of the loss rows; the residual gradient [n, d]
  // and the final-norm output's gradient [nt, d].
  int64_t act1 = allSaved + 4 * (n * d + nt * d + nt + nt * v);
  int64_t ws1 = 4 * (n * d + nt * d);
  // Moment 2, the backward of layer l (its saved tensors and those of the
  // layers below it are live; the layers above are freed): the residual
  // gradient [n, d], four buffers [n, widest], one [maxLen, maxLen]
  // attention scratch, and the layer's largest linear-backward transient.
  int64_t act2 = 0, ws2 = 0, below = 0;
  for (size_t l = 0; l < saved.size(); ++l) {
    below += saved[l];
    int64_t ws = 4 * (n * d + 4 * n * maxWidth + maxLen * maxLen) +
                 transient[l];
    if (below + ws > act2 + ws2) {
      act2 = below;
      ws2 = ws;
    }
  }
  if (act1 + ws1 >= act2 + ws2) {
    m.activations = act1;
    m.workspace = persistentWorkspace + ws1;
  } else {
    m.activations = act2;
    m.workspace = persistentWorkspace + ws2;
  }
  return m;
}

} // namespace mixq
