//===- Ops.cpp - forward and backward of the decoder's operations -*- C++ -*-===//

#include "mixq/Runtime/Ops.h"

#include <Eigen/Core>

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

void attentionForward(const float *q, const float *k, const float *v,
                      int64_t kvStride, int64_t p0, int64_t n, int64_t h,
                      int64_t g, int64_t hd, float *out, float *probs,
                      float *scratch) {
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

void swigluForward(const float *gate, const float *up, int64_t count,
                   float *out) {
  for (int64_t i = 0; i < count; ++i)
    out[i] = gate[i] * sigmoid(gate[i]) * up[i];
}

void swigluBackward(const float *gate, const float *up, const float *dOut,
                    int64_t count, float *dGate, float *dUp) {
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
