//===- FusedLinear.cpp - Fused quantized linear + adapter fwd/bwd -*- C++ -*-===//
//
// LoRA is handled as Q-BLoRA with l = 1 (no pooling, no repeat); QA-BLoRA is
// the single-matrix variant. Every product goes through detail::gemm, so the
// adapter shares the ISA, the threads and the precision of the base GEMM.
//
//===----------------------------------------------------------------------===//

#include "KernelsInternal.h"

#include "llvm/Support/FormatVariadic.h"

#include <algorithm>
#include <vector>

namespace mixq {
namespace kernels {

using detail::BSource;
using detail::MatView;

static llvm::Error kernelError(const llvm::Twine &msg) {
  return llvm::createStringError("fused linear: " + msg);
}

//===----------------------------------------------------------------------===//
// Adapter shapes
//===----------------------------------------------------------------------===//

llvm::Expected<AdapterShapes> adapterShapes(const AdapterView &ad, int64_t in,
                                            int64_t out) {
  AdapterShapes s;
  if (ad.kind == AdapterKind::None)
    return s;
  if (ad.poolIn < 1 || ad.repeatOut < 1)
    return kernelError(llvm::formatv("pooling factors must be >= 1, got {0} "
                                     "and {1}",
                                     ad.poolIn, ad.repeatOut));
  if (ad.kind == AdapterKind::LoRA && (ad.poolIn != 1 || ad.repeatOut != 1))
    return kernelError("LoRA takes no pooling (use Q-BLoRA)");
  if (in % ad.poolIn || out % ad.repeatOut)
    return kernelError(llvm::formatv("layer [{0}, {1}] is not divisible by the "
                                     "pooling {2} x {3}",
                                     out, in, ad.repeatOut, ad.poolIn));
  if (ad.kind == AdapterKind::QABLoRA) {
    s.hRows = out / ad.repeatOut;
    s.hCols = in / ad.poolIn;
    return s;
  }
  if (ad.rank < 1)
    return kernelError(llvm::formatv("rank must be positive, got {0}", ad.rank));
  s.aRows = ad.rank;
  s.aCols = in / ad.poolIn;
  s.bRows = out / ad.repeatOut;
  s.bCols = ad.rank;
  return s;
}

AdapterView adapterViewFromSpec(const AdapterSpec &spec) {
  AdapterView v;
  v.kind = spec.kind;
  // QA-BLoRA has no rank: its single matrix H is scaled by alpha itself.
  if (spec.kind == AdapterKind::QABLoRA)
    v.scale = static_cast<float>(spec.alpha);
  else
    v.scale = spec.rank > 0 ? static_cast<float>(spec.alpha / spec.rank)
                            : 0.0f;
  if (spec.kind == AdapterKind::LoRA) {
    v.rank = spec.rank;
  } else if (spec.kind == AdapterKind::QBLoRA) {
    v.rank = spec.lambda * spec.rank;
    v.poolIn = v.repeatOut = spec.lambda;
  } else if (spec.kind == AdapterKind::QABLoRA) {
    v.poolIn = spec.lambdaCols;
    v.repeatOut = spec.lambdaRows;
  }
  return v;
}

//===----------------------------------------------------------------------===//
// Base products
//===----------------------------------------------------------------------===//

static llvm::Error checkWeight(const QuantizedTensor &w, int64_t m) {
  if (m < 0)
    return kernelError(llvm::formatv("negative row count {0}", m));
  if (llvm::Error e = w.verify())
    return e;
  return llvm::Error::success();
}

llvm::Error quantMatmul(const QuantizedTensor &w, const float *x, int64_t m,
                        float *y, bool accumulate, const KernelOptions &opts) {
  if (llvm::Error e = checkWeight(w, m))
    return e;
  BSource b;
  b.kind = BSource::Quant;
  b.q = &w;
  detail::gemm(MatView{x, w.cols, 1}, b, m, w.rows, w.cols, y, w.rows,
               accumulate, opts);
  return llvm::Error::success();
}

llvm::Error quantMatmulTransposed(const QuantizedTensor &w, const float *dy,
                                  int64_t m, float *dx, bool accumulate,
                                  const KernelOptions &opts) {
  if (llvm::Error e = checkWeight(w, m))
    return e;
  BSource b;
  b.kind = BSource::QuantT;
  b.q = &w;
  detail::gemm(MatView{dy, w.rows, 1}, b, m, w.cols, w.rows, dx, w.cols,
               accumulate, opts);
  return llvm::Error::success();
}

//===----------------------------------------------------------------------===//
// Adapter helpers
//===----------------------------------------------------------------------===//

namespace {

/// C [m, n] (+)= A * B^T for dense views.
void dense(const MatView &a, const MatView &b, int64_t m, int64_t n, int64_t k,
           float *c, bool accumulate, const KernelOptions &opts) {
  BSource src;
  src.dense = b;
  detail::gemm(a, src, m, n, k, c, n, accumulate, opts);
}

/// out [m, in/p] = AvgPool_p over groups of p consecutive columns of x.
void avgPool(const float *x, int64_t m, int64_t in, int64_t p, float *out) {
  const int64_t w = in / p;
  const float inv = 1.0f / static_cast<float>(p);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < w; ++j) {
      float s = 0.0f;
      for (int64_t t = 0; t < p; ++t)
        s += x[i * in + j * p + t];
      out[i * w + j] = s * inv;
    }
}

/// Checks the adapter against the layer and its data pointers.
llvm::Expected<AdapterShapes> checkAdapter(const AdapterView &ad,
                                           const QuantizedTensor &w) {
  llvm::Expected<AdapterShapes> s = adapterShapes(ad, w.cols, w.rows);
  if (!s)
    return s.takeError();
  if (ad.kind == AdapterKind::QABLoRA && !ad.H)
    return kernelError("QA-BLoRA adapter without H");
  if ((ad.kind == AdapterKind::LoRA || ad.kind == AdapterKind::QBLoRA) &&
      (!ad.A || !ad.B))
    return kernelError("adapter without A or B");
  return s;
}

/// The pooled adapter input: xa itself when p == 1, else a pooled copy.
const float *pooledInput(const float *xa, int64_t m, int64_t in, int64_t p,
                         std::vector<float> &buf) {
  if (p == 1)
    return xa;
  buf.resize(m * (in / p));
  avgPool(xa, m, in, p, buf.data());
  return buf.data();
}

} // namespace

//===----------------------------------------------------------------------===//
// Forward
//===----------------------------------------------------------------------===//

llvm::Error fusedLinearForward(const QuantizedTensor &w, const AdapterView &ad,
                               const float *x, int64_t m, float *y,
                               const KernelOptions &opts,
                               const float *adapterX) {
  llvm::Expected<AdapterShapes> shapes = checkAdapter(ad, w);
  if (!shapes)
    return shapes.takeError();
  if (llvm::Error e = quantMatmul(w, x, m, y, false, opts))
    return e;
  if (ad.kind == AdapterKind::None || m == 0)
    return llvm::Error::success();
  const int64_t in = w.cols, out = w.rows, p = ad.poolIn, q = ad.repeatOut;
  const int64_t inP = in / p, outQ = out / q;
  std::vector<float> poolBuf, t, z;
  const float *xp = pooledInput(adapterX ? adapterX : x, m, in, p, poolBuf);
  // z [m, out/q] = s * adapter product on the pooled input.
  const bool direct = q == 1;
  float *zPtr = y;
  if (!direct) {
    z.assign(m * outQ, 0.0f);
    zPtr = z.data();
  }
  if (ad.kind == AdapterKind::QABLoRA) {
    std::vector<float> xs(xp, xp + m * inP);
    for (float &v : xs)
      v *= ad.scale;
    dense(MatView{xs.data(), inP, 1}, MatView{ad.H, inP, 1}, m, outQ, inP,
          zPtr, direct, opts);
  } else {
    const int64_t r = ad.rank;
    t.resize(m * r);
    dense(MatView{xp, inP, 1}, MatView{ad.A, inP, 1}, m, r, inP, t.data(),
          false, opts);
    for (float &v : t)
      v *= ad.scale;
    dense(MatView{t.data(), r, 1}, MatView{ad.B, r, 1}, m, outQ, r, zPtr,
          direct, opts);
  }
  if (!direct)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t o = 0; o < out; ++o)
        y[i * out + o] += z[i * outQ + o / q];
  return llvm::Error::success();
}

//===----------------------------------------------------------------------===//
// Backward
//===----------------------------------------------------------------------===//

namespace {

/// dZ [m, out/q] = s * sum over each group of q consecutive columns of dy.
std::vector<float> groupSum(const float *dy, int64_t m, int64_t out, int64_t q,
                            float s) {
  const int64_t w = out / q;
  std::vector<float> dz(m * w, 0.0f);
  if (q == 1) {
    for (int64_t i = 0; i < m * out; ++i)
      dz[i] = dy[i] * s;
    return dz;
  }
  for (int64_t i = 0; i < m; ++i)
    for (int64_t o = 0; o < out; ++o)
      dz[i * w + o / q] += dy[i * out + o];
  for (float &v : dz)
    v *= s;
  return dz;
}

/// Writes (or adds) dXp [m, in/p] expanded by 1/p into dst [m, in].
void expandPooled(const float *dxp, int64_t m, int64_t in, int64_t p,
                  float *dst, bool add) {
  const int64_t w = in / p;
  const float inv = 1.0f / static_cast<float>(p);
  if (p == 1) { // no pooling: a copy or a sum, no index division
    for (int64_t i = 0; i < m * in; ++i)
      dst[i] = add ? dst[i] + dxp[i] : dxp[i];
    return;
  }
  for (int64_t i = 0; i < m; ++i)
    for (int64_t c = 0; c < in; ++c) {
      float v = dxp[i * w + c / p] * inv;
      dst[i * in + c] = add ? dst[i * in + c] + v : v;
    }
}

} // namespace

llvm::Error fusedLinearBackward(const QuantizedTensor &w, const AdapterView &ad,
                                const float *x, const float *dy, int64_t m,
                                const LinearGrads &g, const KernelOptions &opts,
                                const float *adapterX) {
  llvm::Expected<AdapterShapes> shapes = checkAdapter(ad, w);
  if (!shapes)
    return shapes.takeError();
  if (g.dX)
    if (llvm::Error e = quantMatmulTransposed(w, dy, m, g.dX, false, opts))
      return e;
  if (ad.kind == AdapterKind::None)
    return llvm::Error::success();
  const int64_t in = w.cols, out = w.rows, p = ad.poolIn, q = ad.repeatOut;
  const int64_t inP = in / p, outQ = out / q;
  std::vector<float> poolBuf;
  const float *xp = pooledInput(adapterX ? adapterX : x, m, in, p, poolBuf);
  std::vector<float> dz = groupSum(dy, m, out, q, ad.scale);
  // dXp [m, in/p]: gradient wrt the pooled adapter input.
  std::vector<float> dxp(m * inP, 0.0f);
  const bool wantDx = g.dX || g.dXAdapter;
  if (ad.kind == AdapterKind::QABLoRA) {
    if (g.dH) // dH [out/q, in/p] = dZ^T Xp
      dense(MatView{dz.data(), 1, outQ}, MatView{xp, 1, inP}, outQ, inP, m,
            g.dH, g.accumulate, opts);
    if (wantDx) // dXp = dZ H
      dense(MatView{dz.data(), outQ, 1}, MatView{ad.H, 1, inP}, m, inP, outQ,
            dxp.data(), false, opts);
  } else {
    const int64_t r = ad.rank;
    std::vector<float> t(m * r), dt(m * r);
    dense(MatView{xp, inP, 1}, MatView{ad.A, inP, 1}, m, r, inP, t.data(),
          false, opts);
    if (g.dB) // dB [out/q, r] = dZ^T T
      dense(MatView{dz.data(), 1, outQ}, MatView{t.data(), 1, r}, outQ, r, m,
            g.dB, g.accumulate, opts);
    // dT [m, r] = dZ B
    dense(MatView{dz.data(), outQ, 1}, MatView{ad.B, 1, r}, m, r, outQ,
          dt.data(), false, opts);
    if (g.dA) // dA [r, in/p] = dT^T Xp
      dense(MatView{dt.data(), 1, r}, MatView{xp, 1, inP}, r, inP, m, g.dA,
            g.accumulate, opts);
    if (wantDx) // dXp = dT A
      dense(MatView{dt.data(), r, 1}, MatView{ad.A, 1, inP}, m, inP, r,
            dxp.data(), false, opts);
  }
  if (g.dXAdapter)
    expandPooled(dxp.data(), m, in, p, g.dXAdapter, false);
  else if (g.dX)
    expandPooled(dxp.data(), m, in, p, g.dX, true);
  return llvm::Error::success();
}

//===----------------------------------------------------------------------===//
// Merging
//===----------------------------------------------------------------------===//

llvm::Error mergeAdapterDense(const AdapterView &ad, float *w, int64_t out,
                              int64_t in) {
  llvm::Expected<AdapterShapes> s = adapterShapes(ad, in, out);
  if (!s)
    return s.takeError();
  if (ad.kind == AdapterKind::None)
    return llvm::Error::success();
  const int64_t p = ad.poolIn, q = ad.repeatOut, inP = in / p;
  const float f = ad.scale / static_cast<float>(p);
  for (int64_t o = 0; o < out; ++o)
    for (int64_t i = 0; i < in; ++i) {
      float d;
      if (ad.kind == AdapterKind::QABLoRA) {
        d = ad.H[(o / q) * inP + i / p];
      } else {
        d = 0.0f;
        for (int64_t r = 0; r < ad.rank; ++r)
          d += ad.B[(o / q) * ad.rank + r] * ad.A[r * inP + i / p];
      }
      w[o * in + i] += f * d;
    }
  return llvm::Error::success();
}

llvm::Error mergeQABLoRAIntoZeros(QuantizedTensor &w, const AdapterView &ad) {
  if (ad.kind != AdapterKind::QABLoRA || !ad.H)
    return kernelError("merge into zero points needs a QA-BLoRA adapter");
  if (llvm::Error e = w.verify())
    return e;
  if (w.spec.format != QuantFormat::Int4 &&
      w.spec.format != QuantFormat::Int3 && w.spec.format != QuantFormat::Int2)
    return kernelError(llvm::formatv("QA-BLoRA merges into int2/3/4 tiles, "
                                     "not {0}",
                                     formatLabel(w.spec.format)));
  if (w.spec.tileRows != ad.repeatOut || w.spec.tileCols != ad.poolIn)
    return kernelError(llvm::formatv("QA-BLoRA l2 x l1 = {0} x {1} must equal "
                                     "the quant tile {2} x {3}",
                                     ad.repeatOut, ad.poolIn, w.spec.tileRows,
                                     w.spec.tileCols));
  llvm::Expected<AdapterShapes> s = adapterShapes(ad, w.cols, w.rows);
  if (!s)
    return s.takeError();
  const float f = ad.scale / static_cast<float>(ad.poolIn);
  for (int64_t i = 0; i < s->hRows * s->hCols; ++i)
    w.zeros[i] += f * ad.H[i];
  return llvm::Error::success();
}

} // namespace kernels
} // namespace mixq
