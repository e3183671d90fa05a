//===- AdapterInit.cpp - gaussian, LoftQ and PiSSA initialisation -*- C++ -*-===//

#include "mixq/Methods/AdapterInit.h"

#include "mixq/Kernels/FusedLinear.h"

#include "llvm/Support/FormatVariadic.h"

#include <Eigen/Dense>
#include <Eigen/SVD>

#include <cmath>

using namespace mixq;
using namespace mixq::methods;
using llvm::Error;
using llvm::Expected;

static Error initError(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
}

double methods::frobeniusDistance(const float *a, const float *b, int64_t n) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    double d = double(a[i]) - double(b[i]);
    sum += d * d;
  }
  return std::sqrt(sum);
}

std::vector<float> methods::expandDelta(const std::vector<float> &ba,
                                        int64_t out, int64_t in,
                                        int64_t repeat, int64_t pool) {
  std::vector<float> d(out * in);
  int64_t cols = in / pool;
  for (int64_t i = 0; i < out; ++i)
    for (int64_t j = 0; j < in; ++j)
      d[i * in + j] = ba[(i / repeat) * cols + j / pool] / float(pool);
  return d;
}

//===----------------------------------------------------------------------===//
// Random numbers (splitmix64: the same stream on every platform)
//===----------------------------------------------------------------------===//

namespace {

class SplitMix {
public:
  explicit SplitMix(uint64_t seed) : state(seed) {}
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  /// Uniform in (0, 1).
  double uniform() { return (double(next() >> 11) + 0.5) * 0x1.0p-53; }
  /// Standard normal (Box-Muller).
  double normal() {
    double u = uniform(), v = uniform();
    return std::sqrt(-2.0 * std::log(u)) * std::cos(2.0 * M_PI * v);
  }

private:
  uint64_t state;
};

/// The adapter's space: M [out/repeat, in/pool] of rank <= rank, DeltaW =
/// expandDelta(M).
struct AdapterSpace {
  int64_t out, in, repeat, pool, rank;
  float scale;
};

} // namespace

//===----------------------------------------------------------------------===//
// Low-rank approximation in the adapter's space
//===----------------------------------------------------------------------===//

/// The best s * expand(B A) approximation of R [out, in]: B A = truncated SVD
/// of the block sums of R / repeat, split as B = U sqrt(S/s), A = sqrt(S/s)
/// V^T.
static void lowRankFit(const std::vector<double> &r, const AdapterSpace &sp,
                       std::vector<float> &A, std::vector<float> &B) {
  int64_t rows = sp.out / sp.repeat, cols = sp.in / sp.pool;
  Eigen::MatrixXd m = Eigen::MatrixXd::Zero(rows, cols);
  for (int64_t i = 0; i < sp.out; ++i)
    for (int64_t j = 0; j < sp.in; ++j)
      m(i / sp.repeat, j / sp.pool) += r[i * sp.in + j];
  m /= double(sp.repeat);
  Eigen::BDCSVD<Eigen::MatrixXd> svd(m, Eigen::ComputeThinU |
                                            Eigen::ComputeThinV);
  const Eigen::VectorXd &s = svd.singularValues();
  A.assign(sp.rank * cols, 0.0f);
  B.assign(rows * sp.rank, 0.0f);
  int64_t k = std::min<int64_t>(sp.rank, s.size());
  for (int64_t t = 0; t < k; ++t) {
    double root = std::sqrt(s(t) / double(sp.scale));
    for (int64_t j = 0; j < cols; ++j)
      A[t * cols + j] = float(root * svd.matrixV()(j, t));
    for (int64_t i = 0; i < rows; ++i)
      B[i * sp.rank + t] = float(root * svd.matrixU()(i, t));
  }
}

/// s * expand(B A) [out, in] in double.
static std::vector<double> denseDelta(const std::vector<float> &A,
                                      const std::vector<float> &B,
                                      const AdapterSpace &sp) {
  int64_t rows = sp.out / sp.repeat, cols = sp.in / sp.pool;
  std::vector<double> ba(rows * cols, 0.0);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t t = 0; t < sp.rank; ++t) {
      double b = B[i * sp.rank + t];
      for (int64_t j = 0; j < cols; ++j)
        ba[i * cols + j] += b * A[t * cols + j];
    }
  std::vector<double> d(sp.out * sp.in);
  for (int64_t i = 0; i < sp.out; ++i)
    for (int64_t j = 0; j < sp.in; ++j)
      d[i * sp.in + j] = sp.scale * ba[(i / sp.repeat) * cols + j / sp.pool] /
                         double(sp.pool);
  return d;
}

//===----------------------------------------------------------------------===//
// Initialisations
//===----------------------------------------------------------------------===//

/// base = W - delta (f32) and its quantization.
static Error quantizeBase(const float *w, const std::vector<double> &delta,
                          int64_t n, const LinearSpec &spec, int64_t out,
                          int64_t in, AdapterInitResult &res) {
  res.base.resize(n);
  for (int64_t i = 0; i < n; ++i)
    res.base[i] = float(double(w[i]) - (delta.empty() ? 0.0 : delta[i]));
  auto q = kernels::quantize(res.base.data(), out, in, spec.quant);
  if (!q)
    return q.takeError();
  res.quant = std::move(*q);
  return Error::success();
}

/// W - dequant(Q) in double.
static std::vector<double> residual(const float *w,
                                    const kernels::QuantizedTensor &q) {
  std::vector<float> deq(q.rows * q.cols);
  kernels::dequantize(q, deq.data());
  std::vector<double> r(deq.size());
  for (size_t i = 0; i < deq.size(); ++i)
    r[i] = double(w[i]) - double(deq[i]);
  return r;
}

static void initGaussian(const AdapterSpec &a, const AdapterSpace &sp,
                         uint64_t seed, GaussianKind kind,
                         std::vector<float> &A) {
  SplitMix rng(seed);
  int64_t fanIn = sp.in / sp.pool;
  double bound = 1.0 / std::sqrt(double(fanIn));
  double std = 1.0 / double(std::max<int64_t>(a.rank, 1));
  for (float &x : A)
    x = kind == GaussianKind::Normal
            ? float(std * rng.normal())
            : float(bound * (2.0 * rng.uniform() - 1.0));
}

/// ||W - dequant(Q) - s * DeltaW||_F with DeltaW merged by the kernels.
static Expected<double> reconstructionError(const float *w,
                                            const AdapterInitResult &res,
                                            kernels::AdapterView view) {
  std::vector<float> merged(res.quant.rows * res.quant.cols);
  kernels::dequantize(res.quant, merged.data());
  view.A = res.A.empty() ? nullptr : res.A.data();
  view.B = res.B.empty() ? nullptr : res.B.data();
  view.H = res.H.empty() ? nullptr : res.H.data();
  if (view.kind != AdapterKind::None)
    if (Error e = kernels::mergeAdapterDense(view, merged.data(),
                                             res.quant.rows, res.quant.cols))
      return std::move(e);
  return frobeniusDistance(w, merged.data(), int64_t(merged.size()));
}

Expected<AdapterInitResult>
methods::initAdapter(const float *w, int64_t out, int64_t in,
                     const LinearSpec &spec, uint64_t seed,
                     GaussianKind gaussian) {
  int64_t n = out * in;
  AdapterInitResult res;
  kernels::AdapterView view = kernels::adapterViewFromSpec(spec.adapter);
  if (Error e = quantizeBase(w, {}, n, spec, out, in, res))
    return std::move(e);
  {
    std::vector<float> deq(n);
    kernels::dequantize(res.quant, deq.data());
    res.qloraError = frobeniusDistance(w, deq.data(), n);
  }
  res.error = res.qloraError;
  if (view.kind == AdapterKind::None)
    return res;
  auto shapes = kernels::adapterShapes(view, in, out);
  if (!shapes)
    return shapes.takeError();
  res.aRows = shapes->aRows, res.aCols = shapes->aCols;
  res.bRows = shapes->bRows, res.bCols = shapes->bCols;
  res.hRows = shapes->hRows, res.hCols = shapes->hCols;
  res.A.assign(res.aRows * res.aCols, 0.0f);
  res.B.assign(res.bRows * res.bCols, 0.0f);
  res.H.assign(res.hRows * res.hCols, 0.0f);
  const AdapterSpec &a = spec.adapter;
  // QA-BLoRA's H starts at zero: the layer starts as its quantized base.
  if (view.kind == AdapterKind::QABLoRA)
    return res;
  AdapterSpace sp{out, in, view.repeatOut, view.poolIn, view.rank,
                  view.scale};
  if (a.init == AdapterInit::Gaussian) {
    initGaussian(a, sp, seed, gaussian, res.A);
    return res;
  }
  if (!(view.scale > 0.0f))
    return initError(llvm::formatv("{0} init needs alpha > 0 (scale "
                                   "alpha / r), got alpha = {1}",
                                   adapterInitName(a.init), a.alpha));
  if (a.init == AdapterInit::PiSSA) {
    std::vector<double> wd(w, w + n);
    lowRankFit(wd, sp, res.A, res.B);
    if (Error e = quantizeBase(w, denseDelta(res.A, res.B, sp), n, spec, out,
                               in, res))
      return std::move(e);
  } else {
    if (a.initIters < 1)
      return initError(llvm::formatv("loftq needs init_iters >= 1, got {0}",
                                     a.initIters));
    for (int64_t t = 0; t < a.initIters; ++t) {
      if (t > 0)
        if (Error e = quantizeBase(w, denseDelta(res.A, res.B, sp), n, spec,
                                   out, in, res))
          return std::move(e);
      lowRankFit(residual(w, res.quant), sp, res.A, res.B);
    }
  }
  Expected<double> err = reconstructionError(w, res, view);
  if (!err)
    return err.takeError();
  res.error = *err;
  return res;
}
