//===- DeviceOps.h - the decoder's operations on a CUDA device ---*- C++
//-*-===//
//
// Device counterparts of include/mixq/Runtime/Ops.h for the CUDA executor
// (Executor.cpp): the same math on row-major f32 device arrays, one row per
// token. Every function only enqueues work on `stream` and returns the
// launch status. The sources (DeviceOps.cu) compile with nvcc and, as C++
// with -DMIXQ_CUDA_EMU, against the CPU emulator (docs/cuda.md).
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_RUNTIME_CUDA_DEVICEOPS_H
#define MIXQ_RUNTIME_CUDA_DEVICEOPS_H

#include <cuda_runtime.h>

#include <cstdint>

namespace mixq {
namespace runtime {
namespace cudaops {

/// out[i, :] = table[ids[i], :].
cudaError_t embeddingForward(const float *table, int64_t dim, const int *ids,
                             int64_t n, float *out, cudaStream_t stream);
/// dTable[ids[i], :] += dOut[i, :] (atomic adds: repeated ids accumulate).
cudaError_t embeddingBackward(const float *dOut, int64_t dim, const int *ids,
                              int64_t n, float *dTable, cudaStream_t stream);

/// y = x * rinv * w, rinv = 1 / sqrt(mean(x^2) + eps) (saved when non-null).
cudaError_t rmsNormForward(const float *x, const float *w, int64_t n,
                           int64_t dim, float eps, float *y, float *rinv,
                           cudaStream_t stream);
/// dx (+)= dy through the norm; dw += sum over rows (null: not computed).
cudaError_t rmsNormBackward(const float *x, const float *w, const float *rinv,
                            const float *dy, int64_t n, int64_t dim, float *dx,
                            bool accumulate, float *dw, cudaStream_t stream);

/// Rotates each head of x [n, heads * headDim] in place (rotate_half layout)
/// by positions[i] * invFreq[j] (invFreq [headDim / 2], computed on the host
/// as Ops.cpp does); `inverse` rotates back.
cudaError_t rope(float *x, int64_t n, int64_t heads, int64_t headDim,
                 const int *positions, const float *invFreq, bool inverse,
                 cudaStream_t stream);

/// Packed sequences for attention: sequence s holds rows
/// seqStart[s] .. seqStart[s + 1] and its probabilities start at
/// probOffset[s] (h * len * len floats each). Both arrays on the device.
struct PackedSeqs {
  const int64_t *seqStart = nullptr;
  const int64_t *probOffset = nullptr;
  int64_t numSeqs = 0;
};

/// Causal grouped-query attention of every sequence (positions from 0):
/// q, out [n, h*hd], k, v [n, g*hd]; probs receives the softmax [h, len, len]
/// of each sequence (zero above the diagonal). One block per
/// (sequence, head), softmax in f32.
cudaError_t attentionForward(const float *q, const float *k, const float *v,
                             PackedSeqs seqs, int64_t h, int64_t g, int64_t hd,
                             float *out, float *probs, cudaStream_t stream);
/// Incremental (KV-cache) causal GQA attention: n new query rows q
/// [n, h*hd] at positions p0 .. p0 + n - 1 against the cached keys and
/// values kCache, vCache [p0 + n, g*hd] (rows 0 .. p0 + n - 1 filled; row
/// p0 + i is query i's own). out [n, h*hd]; scores is scratch of
/// n * h * (p0 + n) floats. One block per (query row, head), threads over
/// the key positions: a 1-token decode step still spreads over h blocks.
cudaError_t attentionCached(const float *q, const float *kCache,
                            const float *vCache, int64_t p0, int64_t n,
                            int64_t h, int64_t g, int64_t hd, float *out,
                            float *scores, cudaStream_t stream);
/// Backward given the saved probs: dq [n, h*hd], dk, dv [n, g*hd]
/// (overwritten). dsScratch has as many floats as probs. One block per
/// (sequence, kv head): the kv head's dk / dv rows are written by that block
/// only, so no atomics.
cudaError_t attentionBackward(const float *q, const float *k, const float *v,
                              const float *probs, const float *dOut,
                              PackedSeqs seqs, int64_t h, int64_t g, int64_t hd,
                              float *dq, float *dk, float *dv, float *dsScratch,
                              cudaStream_t stream);

/// out = silu(gate) * up.
cudaError_t swigluForward(const float *gate, const float *up, int64_t count,
                          float *out, cudaStream_t stream);
cudaError_t swigluBackward(const float *gate, const float *up,
                           const float *dOut, int64_t count, float *dGate,
                           float *dUp, cudaStream_t stream);

/// out[i] (+)= mask[i] ? x[i] * scale : 0.
cudaError_t dropoutApply(const float *x, const uint8_t *mask, float scale,
                         int64_t count, float *out, bool accumulate,
                         cudaStream_t stream);

/// AdamW on n values, f32, in the Trainer's order of operations:
/// m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g g; w *= decay;
/// w -= stepSize m / (sqrt(v) invSqrtC2 + eps).
cudaError_t adamw(float *w, const float *g, float *m, float *v, int64_t n,
                  float b1, float b2, float stepSize, float decay,
                  float invSqrtC2, float eps, cudaStream_t stream);

/// y[i] += x[i].
cudaError_t addInPlace(float *y, const float *x, int64_t count,
                       cudaStream_t stream);

/// out[i, :] = x[rows[i], :] for i < nr.
cudaError_t gatherRows(const float *x, const int *rows, int64_t nr, int64_t dim,
                       float *out, cudaStream_t stream);
/// dst[rows[i], :] = src[i, :] (rows distinct).
cudaError_t scatterRows(const float *src, const int *rows, int64_t nr,
                        int64_t dim, float *dst, cudaStream_t stream);

/// Cross-entropy of logits [n, vocab] against targets (all >= 0 here):
/// rowLoss[i] = logsumexp - logit[target] (f64, as Ops.cpp). With wantGrad,
/// logits are overwritten with gradScale * (softmax - onehot).
cudaError_t crossEntropy(float *logits, int64_t n, int64_t vocab,
                         const int *targets, double *rowLoss, float gradScale,
                         bool wantGrad, cudaStream_t stream);

} // namespace cudaops
} // namespace runtime
} // namespace mixq

#endif // MIXQ_RUNTIME_CUDA_DEVICEOPS_H
