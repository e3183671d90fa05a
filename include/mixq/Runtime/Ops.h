//===- Ops.h - forward and backward of the decoder's operations ---*- C++ -*-===//
//
// The math of a LLaMA-family decoder on raw row-major f32 arrays, one row per
// token: embedding, RMSNorm, rotary position embedding in Hugging Face's
// rotate_half layout (pairs (i, i + headDim/2)), grouped-query causal
// attention, SwiGLU, dense linear, cross-entropy. Every op has its backward;
// all loops run in a fixed order so results never depend on thread timing.
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_RUNTIME_OPS_H
#define MIXQ_RUNTIME_OPS_H

#include <cstdint>

namespace mixq {
namespace runtime {
namespace ops {

/// out[i, :] = table[ids[i], :], table [vocab, dim].
void embeddingForward(const float *table, int64_t dim, const int *ids,
                      int64_t n, float *out);
/// dTable[ids[i], :] += dOut[i, :].
void embeddingBackward(const float *dOut, int64_t dim, const int *ids,
                       int64_t n, float *dTable);

/// y = x * rinv * w with rinv = 1 / sqrt(mean(x^2) + eps); rinv [n] saved.
void rmsNormForward(const float *x, const float *w, int64_t n, int64_t dim,
                    float eps, float *y, float *rinv);
/// dx (+)= d y/d x ^T dy; dw += sum over rows (null: not computed).
void rmsNormBackward(const float *x, const float *w, const float *rinv,
                     const float *dy, int64_t n, int64_t dim, float *dx,
                     bool accumulate, float *dw);

/// Rotates each head of x [n, heads * headDim] in place by the angles of
/// positions[i] (rotate_half layout); `inverse` rotates back (the backward).
void rope(float *x, int64_t n, int64_t heads, int64_t headDim,
          const int *positions, double theta, bool inverse = false);

/// Causal grouped-query attention of one sequence. q [n, h*hd] holds the
/// queries of positions p0 .. p0+n-1; k, v [p0+n, g*hd] the keys and values
/// of positions 0 .. p0+n-1 (rows strided by kvStride floats). Query head j
/// reads kv head j / (h / g). out [n, h*hd]. probs (optional) receives the
/// softmax [h, n, p0+n] (zero above the diagonal); without probs, scratch
/// must hold n * (p0+n) floats.
void attentionForward(const float *q, const float *k, const float *v,
                      int64_t kvStride, int64_t p0, int64_t n, int64_t h,
                      int64_t g, int64_t hd, float *out, float *probs,
                      float *scratch = nullptr);
/// Backward of attentionForward with p0 = 0 given the saved probs: writes
/// dq [n, h*hd], dk, dv [n, g*hd] (overwritten). scratch: n * n floats.
void attentionBackward(const float *q, const float *k, const float *v,
                       const float *probs, const float *dOut, int64_t n,
                       int64_t h, int64_t g, int64_t hd, float *dq, float *dk,
                       float *dv, float *scratch);

/// out = silu(gate) * up, elementwise over count values.
void swigluForward(const float *gate, const float *up, int64_t count,
                   float *out);
void swigluBackward(const float *gate, const float *up, const float *dOut,
                    int64_t count, float *dGate, float *dUp);

/// Inverted dropout with a given keep mask: out[i] (+)= mask[i] ? x[i] *
/// scale : 0 over count values (the add in accumulate mode is out + value).
void dropoutApply(const float *x, const uint8_t *mask, float scale,
                  int64_t count, float *out, bool accumulate = false);

/// y [n, out] = x [n, in] * w^T (+ y), w [out, in].
void linearForward(const float *x, const float *w, int64_t n, int64_t in,
                   int64_t out, float *y, bool accumulate = false);
/// dx [n, in] (+)= dy * w.
void linearBackwardInput(const float *dy, const float *w, int64_t n,
                         int64_t in, int64_t out, float *dx,
                         bool accumulate = false);
/// dw [out, in] (+)= dy^T * x.
void linearBackwardWeight(const float *dy, const float *x, int64_t n,
                          int64_t in, int64_t out, float *dw,
                          bool accumulate = false);

/// Cross-entropy of logits [n, vocab] against targets (-1 = ignored). Returns
/// the summed loss over counted rows. dLogits (optional, may alias logits) =
/// gradScale * (softmax - onehot) for counted rows, 0 for ignored ones.
double crossEntropy(const float *logits, int64_t n, int64_t vocab,
                    const int *targets, float *dLogits, float gradScale);

/// log softmax(logits row)[target].
double logProb(const float *logitsRow, int64_t vocab, int target);

} // namespace ops
} // namespace runtime
} // namespace mixq

#endif // MIXQ_RUNTIME_OPS_H
