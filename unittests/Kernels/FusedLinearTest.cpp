//===- FusedLinearTest.cpp - Fused kernels vs the scalar reference -*- C++ -*-===//
//
// Every ISA path (scalar, AVX2, AVX-512 where the CPU has them) and precision
// against a double-precision reference built from the dequantized weight;
// gradients against the analytic reference and central finite differences.
//
// Tolerances (docs/kernels.md): f32 paths |y - ref| <= 1e-5 * sum|x||w| + 1e-6
// (only the summation order differs: the dequantized values are
// bit-identical); bf16 path 1e-2 * sum|x||w| (both operands rounded to 8-bit
// mantissas).
//
//===----------------------------------------------------------------------===//

#include "mixq/Kernels/FusedLinear.h"

#include "gtest/gtest.h"

#include <cmath>
#include <random>

using namespace mixq;
using namespace mixq::kernels;

namespace {

std::vector<float> randn(int64_t n, uint32_t seed, float sigma = 1.0f) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> d(0.0f, sigma);
  std::vector<float> v(n);
  for (float &x : v)
    x = d(gen);
  return v;
}

QuantSpec spec(QuantFormat f, bool dq = false, int64_t tr = 1,
               int64_t tc = 64) {
  QuantSpec s;
  s.format = f;
  s.doubleQuant = dq;
  s.tileRows = tr;
  s.tileCols = tc;
  return s;
}

QuantizedTensor quant(const std::vector<float> &w, int64_t out, int64_t in,
                      const QuantSpec &s) {
  llvm::Expected<QuantizedTensor> q = quantize(w.data(), out, in, s);
  if (!q) {
    ADD_FAILURE() << llvm::toString(q.takeError());
    return QuantizedTensor();
  }
  return std::move(*q);
}

void expectOk(llvm::Error e) {
  if (e)
    ADD_FAILURE() << llvm::toString(std::move(e));
}

const char *kindLabel(AdapterKind k) {
  switch (k) {
  case AdapterKind::LoRA:
    return "lora";
  case AdapterKind::QBLoRA:
    return "qblora";
  case AdapterKind::QABLoRA:
    return "qablora";
  default:
    return "none";
  }
}

std::string errorText(llvm::Error e) {
  return e ? llvm::toString(std::move(e)) : std::string();
}

/// The ISAs this CPU runs (resolveISA falls back, so dedupe).
std::vector<KernelISA> isas() {
  std::vector<KernelISA> out;
  for (KernelISA isa :
       {KernelISA::Scalar, KernelISA::AVX2, KernelISA::AVX512}) {
    KernelOptions o;
    o.isa = isa;
    if (resolveISA(o) == isa)
      out.push_back(isa);
  }
  return out;
}

/// Double-precision reference of the whole forward, and sum |x||w| per output
/// (the scale of the rounding error).
struct Reference {
  std::vector<double> y, mag;
};

/// Dense adapter delta (out x in) of the definitions in FusedLinear.h.
std::vector<double> deltaW(const AdapterView &ad, int64_t out, int64_t in) {
  std::vector<double> d(out * in, 0.0);
  if (ad.kind == AdapterKind::None)
    return d;
  const int64_t p = ad.poolIn, q = ad.repeatOut, inP = in / p;
  for (int64_t o = 0; o < out; ++o)
    for (int64_t i = 0; i < in; ++i) {
      double v = 0;
      if (ad.kind == AdapterKind::QABLoRA)
        v = ad.H[(o / q) * inP + i / p];
      else
        for (int64_t r = 0; r < ad.rank; ++r)
          v += double(ad.B[(o / q) * ad.rank + r]) * ad.A[r * inP + i / p];
      d[o * in + i] = ad.scale * v / p;
    }
  return d;
}

Reference reference(const QuantizedTensor &w, const AdapterView &ad,
                    const std::vector<float> &x, int64_t m) {
  std::vector<float> wd(w.rows * w.cols);
  dequantize(w, wd.data());
  std::vector<double> dw = deltaW(ad, w.rows, w.cols);
  Reference ref;
  ref.y.assign(m * w.rows, 0.0);
  ref.mag.assign(m * w.rows, 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t o = 0; o < w.rows; ++o)
      for (int64_t k = 0; k < w.cols; ++k) {
        double xv = x[i * w.cols + k];
        double wv = double(wd[o * w.cols + k]) + dw[o * w.cols + k];
        ref.y[i * w.rows + o] += xv * wv;
        ref.mag[i * w.rows + o] += std::fabs(xv * wv);
      }
  return ref;
}

void expectClose(const std::vector<float> &got, const Reference &ref,
                 double rel, const std::string &what) {
  ASSERT_EQ(got.size(), ref.y.size());
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], ref.y[i], rel * ref.mag[i] + 1e-6)
        << what << " at " << i;
}

struct Shape {
  int64_t m, out, in;
};

} // namespace

//===----------------------------------------------------------------------===//
// Base GEMM, every format x ISA x precision
//===----------------------------------------------------------------------===//

TEST(QuantMatmul, AllFormatsAllPathsMatchReference) {
  // Aligned (SIMD dequant), unaligned (partial blocks) and k > one k block.
  // m <= 4 with in % 32 == 0 takes the fused small-m path on AVX-512.
  const Shape shapes[] = {{5, 50, 256}, {3, 37, 200}, {2, 20, 1100},
                          {9, 130, 128}, {4, 21, 320}, {1, 9, 64},
                          {3, 11, 128}, {2, 300, 128}, {2, 10, 96}};
  const QuantSpec specs[] = {
      spec(QuantFormat::NF4),        spec(QuantFormat::NF4, true),
      spec(QuantFormat::FP4),        spec(QuantFormat::Int8),
      spec(QuantFormat::Int4, false, 1, 64), spec(QuantFormat::Int4, false, 8, 8),
      spec(QuantFormat::Int3, false, 4, 32), spec(QuantFormat::Int2),
      spec(QuantFormat::Int3, false, 1, 64), spec(QuantFormat::Int2, false, 2, 16),
      spec(QuantFormat::BF16),       spec(QuantFormat::F32)};
  uint32_t seed = 10;
  for (const Shape &s : shapes) {
    std::vector<float> w = randn(s.out * s.in, ++seed, 0.05f);
    std::vector<float> x = randn(s.m * s.in, ++seed);
    for (const QuantSpec &qs : specs) {
      QuantizedTensor q = quant(w, s.out, s.in, qs);
      Reference ref = reference(q, AdapterView(), x, s.m);
      for (KernelISA isa : isas())
        for (ComputePrecision prec :
             {ComputePrecision::F32, ComputePrecision::BF16})
          for (int threads : {1, 2}) {
            KernelOptions o;
            o.isa = isa;
            o.precision = prec;
            o.threads = threads;
            std::vector<float> y(s.m * s.out, 7.0f);
            expectOk(quantMatmul(q, x.data(), s.m, y.data(), false, o));
            bool bf16 = prec == ComputePrecision::BF16 &&
                        isa == KernelISA::AVX512 && cpuHasAVX512BF16();
            expectClose(y, ref, bf16 ? 1e-2 : 1e-5,
                        std::string(formatLabel(qs.format)) + "/" +
                            isaName(isa) + (bf16 ? "/bf16" : "/f32"));
          }
    }
  }
}

TEST(QuantMatmul, TransposedMatchesReferenceAndAccumulates) {
  const int64_t m = 6, out = 70, in = 192;
  std::vector<float> w = randn(out * in, 30, 0.05f);
  std::vector<float> dy = randn(m * out, 31);
  for (QuantSpec qs : {spec(QuantFormat::NF4, true), spec(QuantFormat::Int3),
                       spec(QuantFormat::Int8)}) {
    QuantizedTensor q = quant(w, out, in, qs);
    std::vector<float> wd(out * in);
    dequantize(q, wd.data());
    for (KernelISA isa : isas()) {
      KernelOptions o;
      o.isa = isa;
      std::vector<float> dx(m * in, 1.0f);
      expectOk(quantMatmulTransposed(q, dy.data(), m, dx.data(), true, o));
      for (int64_t i = 0; i < m; ++i)
        for (int64_t k = 0; k < in; ++k) {
          double ref = 1.0, mag = 1.0;
          for (int64_t j = 0; j < out; ++j) {
            ref += double(dy[i * out + j]) * wd[j * in + k];
            mag += std::fabs(double(dy[i * out + j]) * wd[j * in + k]);
          }
          ASSERT_NEAR(dx[i * in + k], ref, 1e-5 * mag) << isaName(isa);
        }
    }
  }
}

TEST(QuantMatmul, SimdDequantIsBitIdenticalToReference) {
  // With one input feature set to 1 and the rest 0, y is a column of the
  // dequantized weight: exact on every path.
  const int64_t out = 24, in = 256;
  std::vector<float> w = randn(out * in, 40, 0.1f);
  for (QuantSpec qs :
       {spec(QuantFormat::NF4, true), spec(QuantFormat::FP4),
        spec(QuantFormat::Int8), spec(QuantFormat::Int4),
        spec(QuantFormat::Int3, false, 2, 64), spec(QuantFormat::Int2),
        spec(QuantFormat::Int3, false, 1, 16), spec(QuantFormat::BF16)}) {
    QuantizedTensor q = quant(w, out, in, qs);
    std::vector<float> wd(out * in);
    dequantize(q, wd.data());
    // m = 1 takes the fused small-m path, m = 6 the panel path.
    for (int64_t m : {1, 6}) {
      std::vector<float> x(m * in, 0.0f);
      for (int64_t i = 0; i < m; ++i)
        x[i * in + 77 + 13 * i] = 1.0f;
      for (KernelISA isa : isas())
        for (ComputePrecision prec :
             {ComputePrecision::F32, ComputePrecision::BF16}) {
          KernelOptions o;
          o.isa = isa;
          o.precision = prec;
          // bf16 operands are rounded (panel path): not bit-identical. The
          // small-m path (m <= 4, 32-aligned groups) keeps f32 products.
          if (prec == ComputePrecision::BF16 && cpuHasAVX512BF16() &&
              (m > 4 || qs.tileCols % 32 != 0))
            continue;
          std::vector<float> y(m * out);
          expectOk(quantMatmul(q, x.data(), m, y.data(), false, o));
          for (int64_t i = 0; i < m; ++i)
            for (int64_t j = 0; j < out; ++j)
              ASSERT_EQ(y[i * out + j], wd[j * in + 77 + 13 * i])
                  << formatLabel(qs.format) << " " << isaName(isa) << " m="
                  << m;
        }
    }
  }
}

//===----------------------------------------------------------------------===//
// Adapters
//===----------------------------------------------------------------------===//

namespace {

struct AdapterData {
  AdapterView view;
  std::vector<float> a, b, h;
};

AdapterData makeAdapter(AdapterKind kind, int64_t out, int64_t in, int64_t r,
                        int64_t pool, int64_t repeat, uint32_t seed) {
  AdapterData d;
  d.view.kind = kind;
  d.view.rank = r;
  d.view.poolIn = pool;
  d.view.repeatOut = repeat;
  d.view.scale = 0.5f;
  if (kind == AdapterKind::QABLoRA) {
    d.h = randn((out / repeat) * (in / pool), seed, 0.1f);
    d.view.H = d.h.data();
  } else {
    d.a = randn(r * (in / pool), seed, 0.1f);
    d.b = randn((out / repeat) * r, seed + 1, 0.1f);
    d.view.A = d.a.data();
    d.view.B = d.b.data();
  }
  return d;
}

std::vector<AdapterData> allAdapters(int64_t out, int64_t in) {
  std::vector<AdapterData> v;
  v.push_back(makeAdapter(AdapterKind::LoRA, out, in, 4, 1, 1, 50));
  v.push_back(makeAdapter(AdapterKind::QBLoRA, out, in, 2 * 3, 2, 2, 51));
  v.push_back(makeAdapter(AdapterKind::QABLoRA, out, in, 0, 8, 4, 52));
  return v;
}

} // namespace

TEST(FusedLinear, ForwardMatchesReferenceForEveryAdapter) {
  const int64_t m = 7, out = 48, in = 128;
  std::vector<float> w = randn(out * in, 60, 0.05f);
  std::vector<float> x = randn(m * in, 61);
  QuantizedTensor q = quant(w, out, in, spec(QuantFormat::NF4, true));
  for (AdapterData &ad : allAdapters(out, in)) {
    Reference ref = reference(q, ad.view, x, m);
    for (KernelISA isa : isas()) {
      KernelOptions o;
      o.isa = isa;
      std::vector<float> y(m * out);
      expectOk(fusedLinearForward(q, ad.view, x.data(), m, y.data(), o));
      expectClose(y, ref, 1e-5, std::string(kindLabel(ad.view.kind)) +
                                    "/" + isaName(isa));
    }
  }
}

namespace {

/// L = sum G .* Y of the fused forward, in double.
double lossOf(const QuantizedTensor &q, const AdapterView &ad,
              const std::vector<float> &x, const std::vector<float> &g,
              int64_t m) {
  std::vector<float> y(m * q.rows);
  expectOk(fusedLinearForward(q, ad, x.data(), m, y.data()));
  double l = 0;
  for (size_t i = 0; i < y.size(); ++i)
    l += double(g[i]) * y[i];
  return l;
}

/// Central finite differences of lossOf in `param` at a few entries.
void checkFiniteDifferences(const QuantizedTensor &q, AdapterData &ad,
                            std::vector<float> &param,
                            const std::vector<float> &grad,
                            const std::vector<float> &x,
                            const std::vector<float> &g, int64_t m,
                            const char *name) {
  ASSERT_EQ(param.size(), grad.size()) << name;
  const float eps = 1e-2f;
  for (size_t idx = 0; idx < param.size(); idx += param.size() / 7 + 1) {
    float saved = param[idx];
    param[idx] = saved + eps;
    double lp = lossOf(q, ad.view, x, g, m);
    param[idx] = saved - eps;
    double lm = lossOf(q, ad.view, x, g, m);
    param[idx] = saved;
    double fd = (lp - lm) / (2.0 * eps);
    EXPECT_NEAR(grad[idx], fd, 2e-3 * (1.0 + std::fabs(fd)))
        << name << "[" << idx << "] " << kindLabel(ad.view.kind);
  }
}

} // namespace

TEST(FusedLinear, BackwardMatchesFiniteDifferences) {
  const int64_t m = 5, out = 32, in = 64;
  std::vector<float> w = randn(out * in, 70, 0.05f);
  std::vector<float> x = randn(m * in, 71);
  std::vector<float> g = randn(m * out, 72);
  QuantizedTensor q = quant(w, out, in, spec(QuantFormat::Int4, false, 4, 8));
  std::vector<float> wd(out * in);
  dequantize(q, wd.data());
  for (AdapterData &ad : allAdapters(out, in)) {
    std::vector<float> dX(m * in), dA(ad.a.size()), dB(ad.b.size()),
        dH(ad.h.size());
    LinearGrads grads;
    grads.dX = dX.data();
    grads.dA = dA.data();
    grads.dB = dB.data();
    grads.dH = dH.data();
    expectOk(fusedLinearBackward(q, ad.view, x.data(), g.data(), m, grads));
    // dX = G (W + DeltaW), exactly linear: compare with the reference.
    std::vector<double> dw = deltaW(ad.view, out, in);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t k = 0; k < in; ++k) {
        double ref = 0, mag = 0;
        for (int64_t o = 0; o < out; ++o) {
          double t = double(g[i * out + o]) * (wd[o * in + k] + dw[o * in + k]);
          ref += t;
          mag += std::fabs(t);
        }
        ASSERT_NEAR(dX[i * in + k], ref, 1e-5 * mag + 1e-6)
            << kindLabel(ad.view.kind);
      }
    checkFiniteDifferences(q, ad, x, dX, x, g, m, "dX");
    if (ad.view.kind == AdapterKind::QABLoRA) {
      checkFiniteDifferences(q, ad, ad.h, dH, x, g, m, "dH");
    } else {
      checkFiniteDifferences(q, ad, ad.a, dA, x, g, m, "dA");
      checkFiniteDifferences(q, ad, ad.b, dB, x, g, m, "dB");
    }
  }
}

TEST(FusedLinear, SeparateAdapterInputAndAccumulation) {
  const int64_t m = 4, out = 16, in = 32;
  std::vector<float> w = randn(out * in, 80, 0.1f);
  std::vector<float> x = randn(m * in, 81), g = randn(m * out, 82);
  std::vector<float> xa = x; // a "dropout" of x
  for (size_t i = 0; i < xa.size(); i += 3)
    xa[i] = 0.0f;
  QuantizedTensor q = quant(w, out, in, spec(QuantFormat::F32));
  AdapterData ad = makeAdapter(AdapterKind::LoRA, out, in, 4, 1, 1, 83);
  // Forward: base on x, adapter on xa.
  std::vector<float> y(m * out), yBase(m * out), yAd(m * out);
  expectOk(fusedLinearForward(q, ad.view, x.data(), m, y.data(), {}, xa.data()));
  expectOk(quantMatmul(q, x.data(), m, yBase.data()));
  AdapterView none;
  std::vector<float> zero(out * in, 0.0f);
  QuantizedTensor q0 = quant(zero, out, in, spec(QuantFormat::F32));
  expectOk(fusedLinearForward(q0, ad.view, xa.data(), m, yAd.data()));
  for (int64_t i = 0; i < m * out; ++i)
    ASSERT_NEAR(y[i], yBase[i] + yAd[i], 1e-5);
  // Backward: dX is the base path only, dXAdapter the adapter path.
  std::vector<float> dX(m * in), dXa(m * in), dA(ad.a.size(), 0.0f),
      dB(ad.b.size(), 0.0f), dA1(ad.a.size());
  LinearGrads grads;
  grads.dX = dX.data();
  grads.dXAdapter = dXa.data();
  grads.dA = dA.data();
  grads.dB = dB.data();
  grads.accumulate = true;
  expectOk(fusedLinearBackward(q, ad.view, x.data(), g.data(), m, grads, {},
                               xa.data()));
  expectOk(fusedLinearBackward(q, ad.view, x.data(), g.data(), m, grads, {},
                               xa.data()));
  LinearGrads once;
  once.dA = dA1.data();
  expectOk(fusedLinearBackward(q, ad.view, x.data(), g.data(), m, once, {},
                               xa.data()));
  for (size_t i = 0; i < dA.size(); ++i)
    ASSERT_NEAR(dA[i], 2.0f * dA1[i], 1e-5 * (1 + std::fabs(dA1[i])));
  std::vector<double> dw = deltaW(ad.view, out, in);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t k = 0; k < in; ++k) {
      double base = 0, adp = 0;
      for (int64_t o = 0; o < out; ++o) {
        base += double(g[i * out + o]) * w[o * in + k];
        adp += double(g[i * out + o]) * dw[o * in + k];
      }
      ASSERT_NEAR(dX[i * in + k], base, 1e-4);
      ASSERT_NEAR(dXa[i * in + k], adp, 1e-5);
    }
}

TEST(FusedLinear, MergesAreEquivalentToTheAdapter) {
  const int64_t m = 3, out = 32, in = 64;
  std::vector<float> w = randn(out * in, 90, 0.05f);
  std::vector<float> x = randn(m * in, 91);
  // LoRA / Q-BLoRA into a dense W.
  for (AdapterData &ad : allAdapters(out, in)) {
    std::vector<float> merged = w;
    expectOk(mergeAdapterDense(ad.view, merged.data(), out, in));
    QuantizedTensor qw = quant(w, out, in, spec(QuantFormat::F32));
    QuantizedTensor qm = quant(merged, out, in, spec(QuantFormat::F32));
    std::vector<float> y1(m * out), y2(m * out);
    expectOk(fusedLinearForward(qw, ad.view, x.data(), m, y1.data()));
    expectOk(quantMatmul(qm, x.data(), m, y2.data()));
    for (int64_t i = 0; i < m * out; ++i)
      ASSERT_NEAR(y1[i], y2[i], 1e-4) << kindLabel(ad.view.kind);
  }
  // QA-BLoRA into the zero points of an int3 tensor with tile 4 x 8.
  AdapterData qa = makeAdapter(AdapterKind::QABLoRA, out, in, 0, 8, 4, 92);
  QuantizedTensor q = quant(w, out, in, spec(QuantFormat::Int3, false, 4, 8));
  std::vector<float> y1(m * out), y2(m * out);
  expectOk(fusedLinearForward(q, qa.view, x.data(), m, y1.data()));
  QuantizedTensor merged = q;
  expectOk(mergeQABLoRAIntoZeros(merged, qa.view));
  EXPECT_EQ(merged.codes, q.codes); // still the same low-bit codes
  expectOk(quantMatmul(merged, x.data(), m, y2.data()));
  for (int64_t i = 0; i < m * out; ++i)
    ASSERT_NEAR(y1[i], y2[i], 1e-4);
  // A tile that does not match is refused.
  QuantizedTensor other = quant(w, out, in, spec(QuantFormat::Int3, false, 8, 8));
  EXPECT_NE(errorText(mergeQABLoRAIntoZeros(other, qa.view)).find("tile"),
            std::string::npos);
}

TEST(FusedLinear, BadShapesAreErrors) {
  const int64_t out = 30, in = 64;
  std::vector<float> w = randn(out * in, 95);
  std::vector<float> x(in), y(out);
  QuantizedTensor q = quant(w, out, in, spec(QuantFormat::NF4));
  AdapterData qb = makeAdapter(AdapterKind::QBLoRA, 32, in, 4, 4, 4, 96);
  // out = 30 is not divisible by repeat 4.
  EXPECT_NE(errorText(fusedLinearForward(q, qb.view, x.data(), 1, y.data()))
                .find("divisible"),
            std::string::npos);
  AdapterView noData;
  noData.kind = AdapterKind::LoRA;
  noData.rank = 4;
  EXPECT_NE(errorText(fusedLinearForward(q, noData, x.data(), 1, y.data())), "");
  AdapterView pooledLora = noData;
  pooledLora.poolIn = 2;
  EXPECT_FALSE(static_cast<bool>(adapterShapes(pooledLora, in, 32)) );
  llvm::consumeError(adapterShapes(pooledLora, in, 32).takeError());
  QuantizedTensor broken = q;
  broken.codes.pop_back();
  EXPECT_NE(errorText(quantMatmul(broken, x.data(), 1, y.data())), "");
}

TEST(FusedLinear, AdapterViewFromSpec) {
  AdapterSpec s;
  s.kind = AdapterKind::QBLoRA;
  s.rank = 8;
  s.alpha = 16;
  s.lambda = 2;
  AdapterView v = adapterViewFromSpec(s);
  EXPECT_EQ(v.rank, 16);
  EXPECT_EQ(v.poolIn, 2);
  EXPECT_EQ(v.repeatOut, 2);
  EXPECT_FLOAT_EQ(v.scale, 2.0f);
  llvm::Expected<AdapterShapes> sh = adapterShapes(v, 4096, 11008);
  ASSERT_TRUE(static_cast<bool>(sh));
  EXPECT_EQ(sh->aRows, 16);
  EXPECT_EQ(sh->aCols, 2048);
  EXPECT_EQ(sh->bRows, 5504);
  EXPECT_EQ(sh->bCols, 16);
}
