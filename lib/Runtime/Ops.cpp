//===- Ops.cpp - forward and backward of the decoder's operations -*- C++ -*-===//

#include "mixq/Runtime/Ops.h"
#include "mixq/Kernels/FusedLinear.h"

#include <Eigen/Core>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
// GCC 12 flags the _mm512_undefined_*() placeholders inside the intrinsic
// headers as uninitialized (a false positive; see KernelsAVX512.cpp).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define MIXQ_OPS_HAVE_AVX512 1
#define MIXQ_OPS_AVX512                                                        \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))
#endif

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace mixq {
namespace runtime {
namespace ops {

using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic,
                             Eigen::RowMajor>;
using MapC = Eigen::Map<const RowMat>;
using Map = Eigen::Map<RowMat>;

void embeddingForward(const float *table, int64_t dim, const int *ids,
                      int64_t n, float *out) {
  for (int64_t i = 0; i < n; ++i)
    std::memcpy(out + i * dim, table + int64_t(ids[i]) * dim,
                sizeof(float) * dim);
}

void embeddingBackward(const float *dOut, int64_t dim, const int *ids,
                       int64_t n, float *dTable) {
  for (int64_t i = 0; i < n; ++i) {
    float *row = dTable + int64_t(ids[i]) * dim;
    for (int64_t j = 0; j < dim; ++j)
      row[j] += dOut[i * dim + j];
  }
}

void rmsNormForward(const float *x, const float *w, int64_t n, int64_t dim,
                    float eps, float *y, float *rinv) {
  for (int64_t i = 0; i < n; ++i) {
    const float *xr = x + i * dim;
    float ss = 0.0f;
    for (int64_t j = 0; j < dim; ++j)
      ss += xr[j] * xr[j];
    float r = 1.0f / std::sqrt(ss / float(dim) + eps);
    if (rinv)
      rinv[i] = r;
    float *yr = y + i * dim;
    for (int64_t j = 0; j < dim; ++j)
      yr[j] = w[j] * (xr[j] * r);
  }
}

void rmsNormBackward(const float *x, const float *w, const float *rinv,
                     const float *dy, int64_t n, int64_t dim, float *dx,
                     bool accumulate, float *dw) {
  for (int64_t i = 0; i < n; ++i) {
    const float *xr = x + i * dim, *dyr = dy + i * dim;
    float r = rinv[i];
    float dot = 0.0f;
    for (int64_t j = 0; j < dim; ++j)
      dot += dyr[j] * w[j] * xr[j];
    float c = dot * r * r * r / float(dim);
    float *dxr = dx + i * dim;
    for (int64_t j = 0; j < dim; ++j) {
      float g = r * w[j] * dyr[j] - c * xr[j];
      dxr[j] = accumulate ? dxr[j] + g : g;
    }
    if (dw)
      for (int64_t j = 0; j < dim; ++j)
        dw[j] += dyr[j] * xr[j] * r;
  }
}

void rope(float *x, int64_t n, int64_t heads, int64_t headDim,
          const int *positions, double theta, bool inverse) {
  const int64_t half = headDim / 2;
  std::vector<float> cosv(half), sinv(half);
  // Hugging Face computes inv_freq and the angles in f32.
  std::vector<float> invFreq(half);
  for (int64_t i = 0; i < half; ++i)
    invFreq[i] = float(1.0 / std::pow(theta, double(2 * i) / double(headDim)));
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t i = 0; i < half; ++i) {
      float ang = float(positions[t]) * invFreq[i];
      cosv[i] = std::cos(ang);
      sinv[i] = inverse ? -std::sin(ang) : std::sin(ang);
    }
    for (int64_t hh = 0; hh < heads; ++hh) {
      float *p = x + (t * heads + hh) * headDim;
      for (int64_t i = 0; i < half; ++i) {
        float a = p[i], b = p[i + half];
        p[i] = a * cosv[i] - b * sinv[i];
        p[i + half] = b * cosv[i] + a * sinv[i];
      }
    }
  }
}

using StridedC = Eigen::Map<const RowMat, 0, Eigen::OuterStride<>>;
using Strided = Eigen::Map<RowMat, 0, Eigen::OuterStride<>>;

#ifdef MIXQ_OPS_HAVE_AVX512
//===----------------------------------------------------------------------===//
// AVX-512 attention
//===----------------------------------------------------------------------===//
//
// Heads are narrow (8 values in stories260K), so a GEMM per head spends its
// time packing. These loops keep one head's K and V transposed ([hd][len],
// zero padded to 16), score 16 keys per vector (sum over d of q[d] * Kt[d]),
// run the softmax on the causal part only with a polynomial exp, and
// accumulate dK / dV transposed. Every sum has a fixed order: results do not
// depend on threads.

namespace {

bool useAVX512() {
  static const bool yes =
      kernels::detectISA() == kernels::KernelISA::AVX512;
  return yes;
}

/// exp(x) for x <= 0 (Cephes' expf polynomial; 2^n via scalef), within a few
/// ulp of std::exp.
MIXQ_OPS_AVX512 inline __m512 exp512(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.3f));
  x = _mm512_min_ps(x, _mm512_set1_ps(88.3f));
  __m512 nn = _mm512_roundscale_ps(
      _mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(nn, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(nn, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500E-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507E-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073E-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894E-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459E-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201E-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r),
                      _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, nn);
}

inline __mmask16 tailMask(int64_t j, int64_t end) {
  int64_t left = end - j;
  return left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1u);
}

int64_t pad16(int64_t v) { return (v + 15) / 16 * 16; }

/// dst [hd][tp] = column block [0, hd) of rows 0..len of src (row stride
/// `stride`), zero for len <= j < tp.
void transposeHead(const float *src, int64_t stride, int64_t len, int64_t hd,
                   int64_t tp, float *dst) {
  for (int64_t d = 0; d < hd; ++d) {
    float *row = dst + d * tp;
    for (int64_t j = 0; j < len; ++j)
      row[j] = src[j * stride + d];
    std::fill(row + len, row + tp, 0.0f);
  }
}

MIXQ_OPS_AVX512 void attentionForward512(const float *q, const float *k,
                                         const float *v, int64_t kvStride,
                                         int64_t p0, int64_t n, int64_t h,
                                         int64_t g, int64_t hd, float *out,
                                         float *probs) {
  const int64_t total = p0 + n, rep = h / g, tp = pad16(total);
  const __m512 scale = _mm512_set1_ps(1.0f / std::sqrt(float(hd)));
  thread_local std::vector<float> kt, vt, rowBuf;
  kt.resize(size_t(hd * tp));
  vt.resize(size_t(hd * tp));
  rowBuf.resize(size_t(tp));
  for (int64_t hh = 0; hh < h; ++hh) {
    const int64_t kvh = hh / rep;
    if (hh % rep == 0) {
      transposeHead(k + kvh * hd, kvStride, total, hd, tp, kt.data());
      transposeHead(v + kvh * hd, kvStride, total, hd, tp, vt.data());
    }
    for (int64_t i = 0; i < n; ++i) {
      const int64_t cnt = p0 + i + 1;
      float *pr = probs ? probs + (hh * n + i) * total : rowBuf.data();
      const float *qi = q + i * h * hd + hh * hd;
      __m512 vmax = _mm512_set1_ps(-INFINITY);
      for (int64_t j = 0; j < cnt; j += 16) {
        const __mmask16 m = tailMask(j, cnt);
        __m512 sc = _mm512_setzero_ps();
        for (int64_t d = 0; d < hd; ++d)
          sc = _mm512_fmadd_ps(_mm512_set1_ps(qi[d]),
                               _mm512_loadu_ps(kt.data() + d * tp + j), sc);
        sc = _mm512_mul_ps(sc, scale);
        _mm512_mask_storeu_ps(pr + j, m, sc);
        vmax = _mm512_mask_max_ps(vmax, m, vmax, sc);
      }
      const __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
      __m512 vsum = _mm512_setzero_ps();
      for (int64_t j = 0; j < cnt; j += 16) {
        const __mmask16 m = tailMask(j, cnt);
        __m512 e = _mm512_maskz_mov_ps(
            m, exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, pr + j), mx)));
        _mm512_mask_storeu_ps(pr + j, m, e);
        vsum = _mm512_add_ps(vsum, e);
      }
      const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(vsum));
      for (int64_t j = 0; j < cnt; j += 16) {
        const __mmask16 m = tailMask(j, cnt);
        _mm512_mask_storeu_ps(
            pr + j, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, pr + j), inv));
      }
      std::fill(pr + cnt, pr + total, 0.0f);
      float *oi = out + i * h * hd + hh * hd;
      for (int64_t d = 0; d < hd; ++d) {
        __m512 acc = _mm512_setzero_ps();
        for (int64_t j = 0; j < cnt; j += 16)
          acc = _mm512_fmadd_ps(
              _mm512_maskz_loadu_ps(tailMask(j, cnt), pr + j),
              _mm512_loadu_ps(vt.data() + d * tp + j), acc);
        oi[d] = _mm512_reduce_add_ps(acc);
      }
    }
  }
}

MIXQ_OPS_AVX512 void attentionBackward512(const float *q, const float *k,
                                          const float *v, const float *probs,
                                          const float *dOut, int64_t n,
                                          int64_t h, int64_t g, int64_t hd,
                                          float *dq, float *dk, float *dv) {
  const int64_t rep = h / g, kvw = g * hd, tp = pad16(n);
  const __m512 scale = _mm512_set1_ps(1.0f / std::sqrt(float(hd)));
  thread_local std::vector<float> kt, vt, dkt, dvt, ds;
  kt.resize(size_t(hd * tp));
  vt.resize(size_t(hd * tp));
  dkt.resize(size_t(hd * tp));
  dvt.resize(size_t(hd * tp));
  ds.resize(size_t(tp));
  for (int64_t kvh = 0; kvh < g; ++kvh) {
    transposeHead(k + kvh * hd, kvw, n, hd, tp, kt.data());
    transposeHead(v + kvh * hd, kvw, n, hd, tp, vt.data());
    std::fill(dkt.begin(), dkt.end(), 0.0f);
    std::fill(dvt.begin(), dvt.end(), 0.0f);
    for (int64_t hh = kvh * rep; hh < (kvh + 1) * rep; ++hh) {
      for (int64_t i = 0; i < n; ++i) {
        const int64_t cnt = i + 1;
        const float *pr = probs + (hh * n + i) * n;
        const float *dOi = dOut + i * h * hd + hh * hd;
        const float *qi = q + i * h * hd + hh * hd;
        // dS[j] = dO[i] . V[j]; dot = sum_j P[j] dS[j].
        __m512 vdot = _mm512_setzero_ps();
        for (int64_t j = 0; j < cnt; j += 16) {
          const __mmask16 m = tailMask(j, cnt);
          __m512 sc = _mm512_setzero_ps();
          for (int64_t d = 0; d < hd; ++d)
            sc = _mm512_fmadd_ps(_mm512_set1_ps(dOi[d]),
                                 _mm512_loadu_ps(vt.data() + d * tp + j), sc);
          _mm512_storeu_ps(ds.data() + j, sc);
          vdot = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, pr + j), sc, vdot);
        }
        const __m512 dot = _mm512_set1_ps(_mm512_reduce_add_ps(vdot));
        // ds = P (dS - dot) scale; dV^T += P dO[i]; dK^T += ds q[i].
        for (int64_t j = 0; j < cnt; j += 16) {
          const __mmask16 m = tailMask(j, cnt);
          __m512 p = _mm512_maskz_loadu_ps(m, pr + j);
          __m512 r = _mm512_mul_ps(
              _mm512_mul_ps(p, _mm512_sub_ps(
                                   _mm512_loadu_ps(ds.data() + j), dot)),
              scale);
          _mm512_storeu_ps(ds.data() + j, r);
          for (int64_t d = 0; d < hd; ++d) {
            float *dvr = dvt.data() + d * tp + j, *dkr = dkt.data() + d * tp + j;
            _mm512_storeu_ps(dvr, _mm512_fmadd_ps(_mm512_set1_ps(dOi[d]), p,
                                                  _mm512_loadu_ps(dvr)));
            _mm512_storeu_ps(dkr, _mm512_fmadd_ps(_mm512_set1_ps(qi[d]), r,
                                                  _mm512_loadu_ps(dkr)));
          }
        }
        // dQ[i] = sum_j ds[j] K[j].
        float *dqi = dq + i * h * hd + hh * hd;
        for (int64_t d = 0; d < hd; ++d) {
          __m512 acc = _mm512_setzero_ps();
          for (int64_t j = 0; j < cnt; j += 16)
            acc = _mm512_fmadd_ps(_mm512_loadu_ps(ds.data() + j),
                                  _mm512_loadu_ps(kt.data() + d * tp + j), acc);
          dqi[d] = _mm512_reduce_add_ps(acc);
        }
      }
    }
    for (int64_t j = 0; j < n; ++j)
      for (int64_t d = 0; d < hd; ++d) {
        dk[j * kvw + kvh * hd + d] = dkt[d * tp + j];
        dv[j * kvw + kvh * hd + d] = dvt[d * tp + j];
      }
  }
}

} // namespace
#endif // MIXQ_OPS_HAVE_AVX512

void attentionForward(const float *q, const float *k, const float *v,
                      int64_t kvStride, int64_t p0, int64_t n, int64_t h,
                      int64_t g, int64_t hd, float *out, float *probs,
                      float *scratch) {
#ifdef MIXQ_OPS_HAVE_AVX512
  if (useAVX512()) {
    attentionForward512(q, k, v, kvStride, p0, n, h, g, hd, out, probs);
    return;
  }
#endif
  const int64_t total = p0 + n, rep = h / g;
  const float scale = 1.0f / std::sqrt(float(hd));
  for (int64_t hh = 0; hh < h; ++hh) {
    const int64_t kvh = hh / rep;
    float *pr = probs ? probs + hh * n * total : scratch;
    StridedC Q(q + hh * hd, n, hd, Eigen::OuterStride<>(h * hd));
    StridedC K(k + kvh * hd, total, hd, Eigen::OuterStride<>(kvStride));
    StridedC V(v + kvh * hd, total, hd, Eigen::OuterStride<>(kvStride));
    Map P(pr, n, total);
    P.noalias() = scale * (Q * K.transpose());
    for (int64_t i = 0; i < n; ++i) {
      float *row = pr + i * total;
      const int64_t last = p0 + i; // inclusive
      float mx = *std::max_element(row, row + last + 1);
      float sum = 0.0f;
      for (int64_t j = 0; j <= last; ++j) {
        row[j] = std::exp(row[j] - mx);
        sum += row[j];
      }
      float inv = 1.0f / sum;
      for (int64_t j = 0; j <= last; ++j)
        row[j] *= inv;
      std::fill(row + last + 1, row + total, 0.0f);
    }
    Strided O(out + hh * hd, n, hd, Eigen::OuterStride<>(h * hd));
    O.noalias() = P * V;
  }
}

void attentionBackward(const float *q, const float *k, const float *v,
                       const float *probs, const float *dOut, int64_t n,
                       int64_t h, int64_t g, int64_t hd, float *dq, float *dk,
                       float *dv, float *scratch) {
#ifdef MIXQ_OPS_HAVE_AVX512
  if (useAVX512()) {
    attentionBackward512(q, k, v, probs, dOut, n, h, g, hd, dq, dk, dv);
    return;
  }
#endif
  const int64_t rep = h / g, kvw = g * hd;
  const float scale = 1.0f / std::sqrt(float(hd));
  std::fill(dk, dk + n * kvw, 0.0f);
  std::fill(dv, dv + n * kvw, 0.0f);
  for (int64_t hh = 0; hh < h; ++hh) {
    const int64_t kvh = hh / rep;
    MapC P(probs + hh * n * n, n, n);
    StridedC Q(q + hh * hd, n, hd, Eigen::OuterStride<>(h * hd));
    StridedC K(k + kvh * hd, n, hd, Eigen::OuterStride<>(kvw));
    StridedC V(v + kvh * hd, n, hd, Eigen::OuterStride<>(kvw));
    StridedC dO(dOut + hh * hd, n, hd, Eigen::OuterStride<>(h * hd));
    Strided dQ(dq + hh * hd, n, hd, Eigen::OuterStride<>(h * hd));
    Strided dK(dk + kvh * hd, n, hd, Eigen::OuterStride<>(kvw));
    Strided dV(dv + kvh * hd, n, hd, Eigen::OuterStride<>(kvw));
    dV.noalias() += P.transpose() * dO;
    Map dS(scratch, n, n);
    dS.noalias() = dO * V.transpose();
    for (int64_t i = 0; i < n; ++i) {
      const float *pr = probs + hh * n * n + i * n;
      float *ds = scratch + i * n;
      float dot = 0.0f;
      for (int64_t j = 0; j <= i; ++j)
        dot += pr[j] * ds[j];
      for (int64_t j = 0; j <= i; ++j)
        ds[j] = pr[j] * (ds[j] - dot) * scale;
      std::fill(ds + i + 1, ds + n, 0.0f);
    }
    dQ.noalias() = dS * K;
    dK.noalias() += dS.transpose() * Q;
  }
}

static inline float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

#ifdef MIXQ_OPS_HAVE_AVX512
namespace {

MIXQ_OPS_AVX512 inline __m512 sigmoid512(__m512 x) {
  const __m512 one = _mm512_set1_ps(1.0f);
  return _mm512_div_ps(
      one, _mm512_add_ps(one, exp512(_mm512_sub_ps(_mm512_setzero_ps(), x))));
}

MIXQ_OPS_AVX512 void swigluForward512(const float *gate, const float *up,
                                      int64_t count, float *out) {
  for (int64_t i = 0; i < count; i += 16) {
    const __mmask16 m = tailMask(i, count);
    __m512 gv = _mm512_maskz_loadu_ps(m, gate + i);
    __m512 silu = _mm512_mul_ps(gv, sigmoid512(gv));
    _mm512_mask_storeu_ps(
        out + i, m, _mm512_mul_ps(silu, _mm512_maskz_loadu_ps(m, up + i)));
  }
}

MIXQ_OPS_AVX512 void swigluBackward512(const float *gate, const float *up,
                                       const float *dOut, int64_t count,
                                       float *dGate, float *dUp) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t i = 0; i < count; i += 16) {
    const __mmask16 m = tailMask(i, count);
    __m512 gv = _mm512_maskz_loadu_ps(m, gate + i);
    __m512 uv = _mm512_maskz_loadu_ps(m, up + i);
    __m512 dv = _mm512_maskz_loadu_ps(m, dOut + i);
    __m512 sg = sigmoid512(gv);
    _mm512_mask_storeu_ps(dUp + i, m, _mm512_mul_ps(dv, _mm512_mul_ps(gv, sg)));
    // dOut * up * s * (1 + gate * (1 - s))
    __m512 t = _mm512_fmadd_ps(gv, _mm512_sub_ps(one, sg), one);
    _mm512_mask_storeu_ps(
        dGate + i, m,
        _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(dv, uv), sg), t));
  }
}

MIXQ_OPS_AVX512 void dropoutApply512(const float *x, const uint8_t *mask,
                                     float scale, int64_t count, float *out,
                                     bool accumulate) {
  const __m512 sv = _mm512_set1_ps(scale);
  for (int64_t i = 0; i < count; i += 16) {
    const __mmask16 m = tailMask(i, count);
    __m128i mb = _mm_maskz_loadu_epi8(m, mask + i);
    const __mmask16 keep = _mm_test_epi8_mask(mb, mb);
    __m512 v = _mm512_maskz_mul_ps(keep, _mm512_maskz_loadu_ps(m, x + i), sv);
    if (accumulate)
      v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, out + i), v);
    _mm512_mask_storeu_ps(out + i, m, v);
  }
}

} // namespace
#endif // MIXQ_OPS_HAVE_AVX512

void swigluForward(const float *gate, const float *up, int64_t count,
                   float *out) {
#ifdef MIXQ_OPS_HAVE_AVX512
  if (useAVX512()) {
    swigluForward512(gate, up, count, out);
    return;
  }
#endif
  for (int64_t i = 0; i < count; ++i)
    out[i] = gate[i] * sigmoid(gate[i]) * up[i];
}

void swigluBackward(const float *gate, const float *up, const float *dOut,
                    int64_t count, float *dGate, float *dUp) {
#ifdef MIXQ_OPS_HAVE_AVX512
  if (useAVX512()) {
    swigluBackward512(gate, up, dOut, count, dGate, dUp);
    return;
  }
#endif
  for (int64_t i = 0; i < count; ++i) {
    float s = sigmoid(gate[i]);
    float silu = gate[i] * s;
    dUp[i] = dOut[i] * silu;
    dGate[i] = dOut[i] * up[i] * s * (1.0f + gate[i] * (1.0f - s));
  }
}

void linearForward(const float *x, const float *w, int64_t n, int64_t in,
                   int64_t out, float *y, bool accumulate) {
  MapC X(x, n, in), W(w, out, in);
  Map Y(y, n, out);
  if (accumulate)
    Y.noalias() += X * W.transpose();
  else
    Y.noalias() = X * W.transpose();
}

void linearBackwardInput(const float *dy, const float *w, int64_t n,
                         int64_t in, int64_t out, float *dx,
                         bool accumulate) {
  MapC DY(dy, n, out), W(w, out, in);
  Map DX(dx, n, in);
  if (accumulate)
    DX.noalias() += DY * W;
  else
    DX.noalias() = DY * W;
}

void linearBackwardWeight(const float *dy, const float *x, int64_t n,
                          int64_t in, int64_t out, float *dw,
                          bool accumulate) {
  MapC DY(dy, n, out), X(x, n, in);
  Map DW(dw, out, in);
  if (accumulate)
    DW.noalias() += DY.transpose() * X;
  else
    DW.noalias() = DY.transpose() * X;
}

double crossEntropy(const float *logits, int64_t n, int64_t vocab,
                    const int *targets, float *dLogits, float gradScale) {
  double total = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const float *lr = logits + i * vocab;
    float *dr = dLogits ? dLogits + i * vocab : nullptr;
    if (targets[i] < 0) {
      if (dr)
        std::fill(dr, dr + vocab, 0.0f);
      continue;
    }
    float mx = *std::max_element(lr, lr + vocab);
    double sum = 0.0;
    for (int64_t j = 0; j < vocab; ++j)
      sum += std::exp(double(lr[j] - mx));
    double lse = double(mx) + std::log(sum);
    total += lse - double(lr[targets[i]]);
    if (dr) {
      for (int64_t j = 0; j < vocab; ++j)
        dr[j] = float(std::exp(double(lr[j]) - lse)) * gradScale;
      dr[targets[i]] -= gradScale;
    }
  }
  return total;
}

void dropoutApply(const float *x, const uint8_t *mask, float scale,
                  int64_t count, float *out, bool accumulate) {
#ifdef MIXQ_OPS_HAVE_AVX512
  if (useAVX512()) {
    dropoutApply512(x, mask, scale, count, out, accumulate);
    return;
  }
#endif
  for (int64_t i = 0; i < count; ++i) {
    float v = mask[i] ? x[i] * scale : 0.0f;
    out[i] = accumulate ? out[i] + v : v;
  }
}

double logProb(const float *lr, int64_t vocab, int target) {
  float mx = *std::max_element(lr, lr + vocab);
  double sum = 0.0;
  for (int64_t j = 0; j < vocab; ++j)
    sum += std::exp(double(lr[j] - mx));
  return double(lr[target]) - (double(mx) + std::log(sum));
}

} // namespace ops
} // namespace runtime
} // namespace mixq
