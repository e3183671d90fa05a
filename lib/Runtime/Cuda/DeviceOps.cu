//===- DeviceOps.cu - the decoder's operations on a CUDA device -----------===//
//
// Straightforward, correct kernels (see DeviceOps.h): elementwise ops use a
// grid-stride loop, row ops one block per row with a shared-memory tree
// reduction, attention one block per (sequence, head) forward and per
// (sequence, kv head) backward. Launched through mixq::cuda::launch only, so
// the file runs unchanged on the CPU emulator.
//
//===----------------------------------------------------------------------===//

#include "DeviceOps.h"

#include "mixq/Cuda/Launch.h"

#include <cmath>

namespace mixq {
namespace runtime {
namespace cudaops {

namespace {

/// Threads of the row kernels (a power of two: tree reductions).
constexpr int kRowThreads = 128;
/// Threads and most blocks of the elementwise kernels.
constexpr int kEltThreads = 256;
constexpr int64_t kMaxEltBlocks = 4096;
/// Threads of the attention kernels.
constexpr int kAttnThreads = 64;

dim3 eltGrid(int64_t count) {
  int64_t b = (count + kEltThreads - 1) / kEltThreads;
  return dim3(unsigned(b < 1 ? 1 : (b > kMaxEltBlocks ? kMaxEltBlocks : b)));
}

__device__ __forceinline__ int64_t globalThread() {
  return int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t gridThreads() {
  return int64_t(gridDim.x) * blockDim.x;
}

/// Sum of v over the block (blockDim.x a power of two <= kRowThreads).
template <typename T> __device__ T blockSum(T v, T *sh) {
  const int t = threadIdx.x;
  sh[t] = v;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (t < s)
      sh[t] += sh[t + s];
    __syncthreads();
  }
  T r = sh[0];
  __syncthreads();
  return r;
}

/// scale * (q . k) over one head of width hd: one attention score.
__device__ __forceinline__ float scaledScore(const float *qi, const float *kj,
                                             int64_t hd, float scale) {
  float sc = 0.0f;
  for (int64_t d = 0; d < hd; ++d)
    sc += qi[d] * kj[d];
  return scale * sc;
}

__device__ float blockMax(float v, float *sh) {
  const int t = threadIdx.x;
  sh[t] = v;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (t < s)
      sh[t] = fmaxf(sh[t], sh[t + s]);
    __syncthreads();
  }
  float r = sh[0];
  __syncthreads();
  return r;
}

//===----------------------------------------------------------------------===//
// Kernels
//===----------------------------------------------------------------------===//

__global__ void embeddingForwardKernel(const float *table, int64_t dim,
                                       const int *ids, int64_t n, float *out) {
  for (int64_t i = globalThread(); i < n * dim; i += gridThreads())
    out[i] = table[int64_t(ids[i / dim]) * dim + i % dim];
}

__global__ void embeddingBackwardKernel(const float *dOut, int64_t dim,
                                        const int *ids, int64_t n,
                                        float *dTable) {
  for (int64_t i = globalThread(); i < n * dim; i += gridThreads())
    atomicAdd(dTable + int64_t(ids[i / dim]) * dim + i % dim, dOut[i]);
}

__global__ void rmsNormForwardKernel(const float *x, const float *w,
                                     int64_t dim, float eps, float *y,
                                     float *rinv) {
  __shared__ float sh[kRowThreads];
  const int64_t row = blockIdx.x;
  const float *xr = x + row * dim;
  float ss = 0.0f;
  for (int64_t j = threadIdx.x; j < dim; j += blockDim.x)
    ss += xr[j] * xr[j];
  ss = blockSum(ss, sh);
  const float r = 1.0f / sqrtf(ss / float(dim) + eps);
  if (rinv && threadIdx.x == 0)
    rinv[row] = r;
  float *yr = y + row * dim;
  for (int64_t j = threadIdx.x; j < dim; j += blockDim.x)
    yr[j] = w[j] * (xr[j] * r);
}

__global__ void rmsNormBackwardKernel(const float *x, const float *w,
                                      const float *rinv, const float *dy,
                                      int64_t dim, float *dx, int accumulate,
                                      float *dw) {
  __shared__ float sh[kRowThreads];
  const int64_t row = blockIdx.x;
  const float *xr = x + row * dim, *dyr = dy + row * dim;
  const float r = rinv[row];
  float dot = 0.0f;
  for (int64_t j = threadIdx.x; j < dim; j += blockDim.x)
    dot += dyr[j] * w[j] * xr[j];
  dot = blockSum(dot, sh);
  const float c = dot * r * r * r / float(dim);
  float *dxr = dx + row * dim;
  for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) {
    float g = r * w[j] * dyr[j] - c * xr[j];
    dxr[j] = accumulate ? dxr[j] + g : g;
    if (dw)
      atomicAdd(dw + j, dyr[j] * xr[j] * r);
  }
}

__global__ void ropeKernel(float *x, int64_t n, int64_t heads, int64_t headDim,
                           const int *positions, const float *invFreq,
                           int inverse) {
  const int64_t half = headDim / 2;
  for (int64_t e = globalThread(); e < n * heads * half; e += gridThreads()) {
    const int64_t i = e % half, th = e / half, t = th / heads;
    const float ang = float(positions[t]) * invFreq[i];
    const float c = cosf(ang), s = inverse ? -sinf(ang) : sinf(ang);
    float *p = x + th * headDim;
    const float a = p[i], b = p[i + half];
    p[i] = a * c - b * s;
    p[i + half] = b * c + a * s;
  }
}

__global__ void attentionForwardKernel(const float *q, const float *k,
                                       const float *v, const int64_t *seqStart,
                                       const int64_t *probOffset, int64_t h,
                                       int64_t g, int64_t hd, float *out,
                                       float *probs) {
  const int64_t s = blockIdx.x / h, hh = blockIdx.x % h, kvh = hh / (h / g);
  const int64_t o = seqStart[s], len = seqStart[s + 1] - o;
  const float scale = 1.0f / sqrtf(float(hd));
  const int64_t qw = h * hd, kw = g * hd;
  for (int64_t i = threadIdx.x; i < len; i += blockDim.x) {
    float *pr = probs + probOffset[s] + (hh * len + i) * len;
    const float *qi = q + (o + i) * qw + hh * hd;
    float mx = -INFINITY;
    for (int64_t j = 0; j <= i; ++j) {
      const float sc = scaledScore(qi, k + (o + j) * kw + kvh * hd, hd, scale);
      pr[j] = sc;
      mx = fmaxf(mx, sc);
    }
    float sum = 0.0f;
    for (int64_t j = 0; j <= i; ++j) {
      pr[j] = expf(pr[j] - mx);
      sum += pr[j];
    }
    const float inv = 1.0f / sum;
    for (int64_t j = 0; j <= i; ++j)
      pr[j] *= inv;
    for (int64_t j = i + 1; j < len; ++j)
      pr[j] = 0.0f;
    float *oi = out + (o + i) * qw + hh * hd;
    for (int64_t d = 0; d < hd; ++d) {
      float acc = 0.0f;
      for (int64_t j = 0; j <= i; ++j)
        acc += pr[j] * v[(o + j) * kw + kvh * hd + d];
      oi[d] = acc;
    }
  }
}

__global__ void attentionBackwardKernel(const float *q, const float *k,
                                        const float *v, const float *probs,
                                        const float *dOut,
                                        const int64_t *seqStart,
                                        const int64_t *probOffset, int64_t h,
                                        int64_t g, int64_t hd, float *dq,
                                        float *dk, float *dv, float *dsBuf) {
  const int64_t rep = h / g;
  const int64_t s = blockIdx.x / g, kvh = blockIdx.x % g;
  const int64_t o = seqStart[s], len = seqStart[s + 1] - o;
  const float scale = 1.0f / sqrtf(float(hd));
  const int64_t qw = h * hd, kw = g * hd;
  const float *P = probs + probOffset[s];
  float *DS = dsBuf + probOffset[s];
  // Query rows: dS = P (dO V^T - rowdot) scale, dQ = dS K.
  for (int64_t hh = kvh * rep; hh < (kvh + 1) * rep; ++hh) {
    for (int64_t i = threadIdx.x; i < len; i += blockDim.x) {
      const float *pr = P + (hh * len + i) * len;
      float *ds = DS + (hh * len + i) * len;
      const float *dOi = dOut + (o + i) * qw + hh * hd;
      float dot = 0.0f;
      for (int64_t j = 0; j <= i; ++j) {
        const float *vj = v + (o + j) * kw + kvh * hd;
        float acc = 0.0f;
        for (int64_t d = 0; d < hd; ++d)
          acc += dOi[d] * vj[d];
        ds[j] = acc;
        dot += pr[j] * acc;
      }
      for (int64_t j = 0; j <= i; ++j)
        ds[j] = pr[j] * (ds[j] - dot) * scale;
      float *dqi = dq + (o + i) * qw + hh * hd;
      for (int64_t d = 0; d < hd; ++d) {
        float acc = 0.0f;
        for (int64_t j = 0; j <= i; ++j)
          acc += ds[j] * k[(o + j) * kw + kvh * hd + d];
        dqi[d] = acc;
      }
    }
  }
  __syncthreads();
  // Key rows of this kv head: dV = P^T dO, dK = dS^T Q over its query heads.
  for (int64_t j = threadIdx.x; j < len; j += blockDim.x) {
    float *dkj = dk + (o + j) * kw + kvh * hd;
    float *dvj = dv + (o + j) * kw + kvh * hd;
    for (int64_t d = 0; d < hd; ++d) {
      float accV = 0.0f, accK = 0.0f;
      for (int64_t hh = kvh * rep; hh < (kvh + 1) * rep; ++hh)
        for (int64_t i = j; i < len; ++i) {
          const int64_t pi = (hh * len + i) * len + j;
          accV += P[pi] * dOut[(o + i) * qw + hh * hd + d];
          accK += DS[pi] * q[(o + i) * qw + hh * hd + d];
        }
      dvj[d] = accV;
      dkj[d] = accK;
    }
  }
}

/// One block per (new query row i, head): scores against the cached keys
/// 0 .. p0 + i (threads over key positions), block max and sum, the
/// normalised probabilities, then the output (threads over head dims).
__global__ void attentionCachedKernel(const float *q, const float *kCache,
                                      const float *vCache, int64_t p0,
                                      int64_t n, int64_t h, int64_t g,
                                      int64_t hd, float *out, float *scores) {
  __shared__ float red[kAttnThreads];
  const int64_t i = blockIdx.x / h, hh = blockIdx.x % h, kvh = hh / (h / g);
  const int64_t total = p0 + n, cnt = p0 + i + 1, kw = g * hd;
  const float scale = 1.0f / sqrtf(float(hd));
  float *pr = scores + (i * h + hh) * total;
  const float *qi = q + i * h * hd + hh * hd;
  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < cnt; j += blockDim.x) {
    const float sc = scaledScore(qi, kCache + j * kw + kvh * hd, hd, scale);
    pr[j] = sc;
    mx = fmaxf(mx, sc);
  }
  mx = blockMax(mx, red);
  float sum = 0.0f;
  for (int64_t j = threadIdx.x; j < cnt; j += blockDim.x) {
    const float e = expf(pr[j] - mx);
    pr[j] = e;
    sum += e;
  }
  const float inv = 1.0f / blockSum(sum, red);
  for (int64_t j = threadIdx.x; j < cnt; j += blockDim.x)
    pr[j] *= inv;
  __syncthreads();
  float *oi = out + i * h * hd + hh * hd;
  for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) {
    float acc = 0.0f;
    for (int64_t j = 0; j < cnt; ++j)
      acc += pr[j] * vCache[j * kw + kvh * hd + d];
    oi[d] = acc;
  }
}

__global__ void adamwKernel(float *w, const float *g, float *m, float *v,
                            int64_t n, float b1, float b2, float stepSize,
                            float decay, float invSqrtC2, float eps) {
  for (int64_t i = globalThread(); i < n; i += gridThreads()) {
    const float mi = b1 * m[i] + (1.0f - b1) * g[i];
    const float vi = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
    m[i] = mi;
    v[i] = vi;
    float wi = w[i] * decay;
    wi -= stepSize * mi / (sqrtf(vi) * invSqrtC2 + eps);
    w[i] = wi;
  }
}

__device__ __forceinline__ float sigmoidf(float x) {
  return 1.0f / (1.0f + expf(-x));
}

__global__ void swigluForwardKernel(const float *gate, const float *up,
                                    int64_t count, float *out) {
  for (int64_t i = globalThread(); i < count; i += gridThreads())
    out[i] = gate[i] * sigmoidf(gate[i]) * up[i];
}

__global__ void swigluBackwardKernel(const float *gate, const float *up,
                                     const float *dOut, int64_t count,
                                     float *dGate, float *dUp) {
  for (int64_t i = globalThread(); i < count; i += gridThreads()) {
    const float s = sigmoidf(gate[i]), silu = gate[i] * s;
    dUp[i] = dOut[i] * silu;
    dGate[i] = dOut[i] * up[i] * s * (1.0f + gate[i] * (1.0f - s));
  }
}

__global__ void dropoutKernel(const float *x, const uint8_t *mask, float scale,
                              int64_t count, float *out, int accumulate) {
  for (int64_t i = globalThread(); i < count; i += gridThreads()) {
    const float v = mask[i] ? x[i] * scale : 0.0f;
    out[i] = accumulate ? out[i] + v : v;
  }
}

__global__ void addKernel(float *y, const float *x, int64_t count) {
  for (int64_t i = globalThread(); i < count; i += gridThreads())
    y[i] += x[i];
}

__global__ void gatherRowsKernel(const float *x, const int *rows, int64_t nr,
                                 int64_t dim, float *out) {
  for (int64_t i = globalThread(); i < nr * dim; i += gridThreads())
    out[i] = x[int64_t(rows[i / dim]) * dim + i % dim];
}

__global__ void scatterRowsKernel(const float *src, const int *rows, int64_t nr,
                                  int64_t dim, float *dst) {
  for (int64_t i = globalThread(); i < nr * dim; i += gridThreads())
    dst[int64_t(rows[i / dim]) * dim + i % dim] = src[i];
}

__global__ void crossEntropyKernel(float *logits, int64_t vocab,
                                   const int *targets, double *rowLoss,
                                   float gradScale, int wantGrad) {
  __shared__ float shf[kRowThreads];
  __shared__ double shd[kRowThreads];
  const int64_t row = blockIdx.x;
  float *lr = logits + row * vocab;
  const int t = targets[row];
  const float target = lr[t];
  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x)
    mx = fmaxf(mx, lr[j]);
  mx = blockMax(mx, shf);
  double sum = 0.0;
  for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x)
    sum += exp(double(lr[j] - mx));
  sum = blockSum(sum, shd);
  const double lse = double(mx) + log(sum);
  if (threadIdx.x == 0)
    rowLoss[row] = lse - double(target);
  if (!wantGrad)
    return;
  for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) {
    float d = float(exp(double(lr[j]) - lse)) * gradScale;
    if (j == t)
      d -= gradScale;
    lr[j] = d;
  }
}

} // namespace

//===----------------------------------------------------------------------===//
// Host wrappers
//===----------------------------------------------------------------------===//

using mixq::cuda::launch;

cudaError_t embeddingForward(const float *table, int64_t dim, const int *ids,
                             int64_t n, float *out, cudaStream_t stream) {
  if (n * dim == 0)
    return cudaSuccess;
  return launch(embeddingForwardKernel, eltGrid(n * dim), dim3(kEltThreads), 0,
                stream, table, dim, ids, n, out);
}

cudaError_t embeddingBackward(const float *dOut, int64_t dim, const int *ids,
                              int64_t n, float *dTable, cudaStream_t stream) {
  if (n * dim == 0)
    return cudaSuccess;
  return launch(embeddingBackwardKernel, eltGrid(n * dim), dim3(kEltThreads), 0,
                stream, dOut, dim, ids, n, dTable);
}

cudaError_t rmsNormForward(const float *x, const float *w, int64_t n,
                           int64_t dim, float eps, float *y, float *rinv,
                           cudaStream_t stream) {
  if (n == 0)
    return cudaSuccess;
  return launch(rmsNormForwardKernel, dim3(unsigned(n)), dim3(kRowThreads), 0,
                stream, x, w, dim, eps, y, rinv);
}

cudaError_t rmsNormBackward(const float *x, const float *w, const float *rinv,
                            const float *dy, int64_t n, int64_t dim, float *dx,
                            bool accumulate, float *dw, cudaStream_t stream) {
  if (n == 0)
    return cudaSuccess;
  return launch(rmsNormBackwardKernel, dim3(unsigned(n)), dim3(kRowThreads), 0,
                stream, x, w, rinv, dy, dim, dx, int(accumulate), dw);
}

cudaError_t rope(float *x, int64_t n, int64_t heads, int64_t headDim,
                 const int *positions, const float *invFreq, bool inverse,
                 cudaStream_t stream) {
  const int64_t count = n * heads * (headDim / 2);
  if (count == 0)
    return cudaSuccess;
  return launch(ropeKernel, eltGrid(count), dim3(kEltThreads), 0, stream, x, n,
                heads, headDim, positions, invFreq, int(inverse));
}

cudaError_t attentionForward(const float *q, const float *k, const float *v,
                             PackedSeqs seqs, int64_t h, int64_t g, int64_t hd,
                             float *out, float *probs, cudaStream_t stream) {
  if (seqs.numSeqs == 0 || h == 0)
    return cudaSuccess;
  if (g <= 0 || h % g != 0)
    return cudaErrorInvalidValue;
  return launch(attentionForwardKernel, dim3(unsigned(seqs.numSeqs * h)),
                dim3(kAttnThreads), 0, stream, q, k, v, seqs.seqStart,
                seqs.probOffset, h, g, hd, out, probs);
}

cudaError_t adamw(float *w, const float *g, float *m, float *v, int64_t n,
                  float b1, float b2, float stepSize, float decay,
                  float invSqrtC2, float eps, cudaStream_t stream) {
  if (n == 0)
    return cudaSuccess;
  return launch(adamwKernel, eltGrid(n), dim3(kEltThreads), 0, stream, w, g, m,
                v, n, b1, b2, stepSize, decay, invSqrtC2, eps);
}

cudaError_t attentionCached(const float *q, const float *kCache,
                            const float *vCache, int64_t p0, int64_t n,
                            int64_t h, int64_t g, int64_t hd, float *out,
                            float *scores, cudaStream_t stream) {
  if (n == 0 || h == 0)
    return cudaSuccess;
  if (g <= 0 || h % g != 0 || p0 < 0)
    return cudaErrorInvalidValue;
  return launch(attentionCachedKernel, dim3(unsigned(n * h)),
                dim3(kAttnThreads), 0, stream, q, kCache, vCache, p0, n, h, g,
                hd, out, scores);
}

cudaError_t attentionBackward(const float *q, const float *k, const float *v,
                              const float *probs, const float *dOut,
                              PackedSeqs seqs, int64_t h, int64_t g, int64_t hd,
                              float *dq, float *dk, float *dv, float *dsScratch,
                              cudaStream_t stream) {
  if (seqs.numSeqs == 0 || h == 0)
    return cudaSuccess;
  if (g <= 0 || h % g != 0)
    return cudaErrorInvalidValue;
  return launch(attentionBackwardKernel, dim3(unsigned(seqs.numSeqs * g)),
                dim3(kAttnThreads), 0, stream, q, k, v, probs, dOut,
                seqs.seqStart, seqs.probOffset, h, g, hd, dq, dk, dv,
                dsScratch);
}

cudaError_t swigluForward(const float *gate, const float *up, int64_t count,
                          float *out, cudaStream_t stream) {
  if (count == 0)
    return cudaSuccess;
  return launch(swigluForwardKernel, eltGrid(count), dim3(kEltThreads), 0,
                stream, gate, up, count, out);
}

cudaError_t swigluBackward(const float *gate, const float *up,
                           const float *dOut, int64_t count, float *dGate,
                           float *dUp, cudaStream_t stream) {
  if (count == 0)
    return cudaSuccess;
  return launch(swigluBackwardKernel, eltGrid(count), dim3(kEltThreads), 0,
                stream, gate, up, dOut, count, dGate, dUp);
}

cudaError_t dropoutApply(const float *x, const uint8_t *mask, float scale,
                         int64_t count, float *out, bool accumulate,
                         cudaStream_t stream) {
  if (count == 0)
    return cudaSuccess;
  return launch(dropoutKernel, eltGrid(count), dim3(kEltThreads), 0, stream, x,
                mask, scale, count, out, int(accumulate));
}

cudaError_t addInPlace(float *y, const float *x, int64_t count,
                       cudaStream_t stream) {
  if (count == 0)
    return cudaSuccess;
  return launch(addKernel, eltGrid(count), dim3(kEltThreads), 0, stream, y, x,
                count);
}

cudaError_t gatherRows(const float *x, const int *rows, int64_t nr, int64_t dim,
                       float *out, cudaStream_t stream) {
  if (nr * dim == 0)
    return cudaSuccess;
  return launch(gatherRowsKernel, eltGrid(nr * dim), dim3(kEltThreads), 0,
                stream, x, rows, nr, dim, out);
}

cudaError_t scatterRows(const float *src, const int *rows, int64_t nr,
                        int64_t dim, float *dst, cudaStream_t stream) {
  if (nr * dim == 0)
    return cudaSuccess;
  return launch(scatterRowsKernel, eltGrid(nr * dim), dim3(kEltThreads), 0,
                stream, src, rows, nr, dim, dst);
}

cudaError_t crossEntropy(float *logits, int64_t n, int64_t vocab,
                         const int *targets, double *rowLoss, float gradScale,
                         bool wantGrad, cudaStream_t stream) {
  if (n == 0)
    return cudaSuccess;
  return launch(crossEntropyKernel, dim3(unsigned(n)), dim3(kRowThreads), 0,
                stream, logits, vocab, targets, rowLoss, gradScale,
                int(wantGrad));
}

} // namespace cudaops
} // namespace runtime
} // namespace mixq
