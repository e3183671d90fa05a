//===- DeviceOpsTest.cpp - the executor's device ops vs the CPU ops ------===//
//
// Each op of lib/Runtime/Cuda/DeviceOps.cu, run on the CUDA CPU emulator, is
// compared with its CPU counterpart (include/mixq/Runtime/Ops.h) on small
// random shapes, forward and backward. The tolerances allow for summation
// order only (the device reduces in a tree, the CPU in a line or with
// AVX-512): 2e-5 relative to the largest reference value.
//
//===----------------------------------------------------------------------===//

#include "DeviceOps.h"

#include "mixq/Runtime/Ops.h"
#include "mixq/Runtime/Random.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

using namespace mixq::runtime;
namespace dops = mixq::runtime::cudaops;

namespace {

/// A device copy of a host vector.
template <typename T> class Dev {
public:
  explicit Dev(const std::vector<T> &host) : n_(host.size()) {
    EXPECT_EQ(cudaMalloc(reinterpret_cast<void **>(&p_),
                         sizeof(T) * std::max<size_t>(n_, 1)),
              cudaSuccess);
    if (n_) {
      EXPECT_EQ(
          cudaMemcpy(p_, host.data(), sizeof(T) * n_, cudaMemcpyHostToDevice),
          cudaSuccess);
    }
  }
  explicit Dev(size_t n) : Dev(std::vector<T>(n)) {}
  ~Dev() { cudaFree(p_); }
  Dev(const Dev &) = delete;
  Dev &operator=(const Dev &) = delete;
  T *get() { return p_; }
  std::vector<T> host() const {
    std::vector<T> h(n_);
    if (n_) {
      EXPECT_EQ(
          cudaMemcpy(h.data(), p_, sizeof(T) * n_, cudaMemcpyDeviceToHost),
          cudaSuccess);
    }
    return h;
  }

private:
  T *p_ = nullptr;
  size_t n_;
};

std::vector<float> randomVec(Rng &rng, size_t n, float scale = 1.0f) {
  std::vector<float> v(n);
  for (float &x : v)
    x = scale * rng.normal();
  return v;
}

/// Every element within tol * max|ref| (and at least 1e-30) of ref.
void expectClose(const std::vector<float> &got, const std::vector<float> &ref,
                 double tol, const char *what) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  double mx = 1e-30;
  for (float r : ref)
    mx = std::max(mx, double(std::fabs(r)));
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < ref.size(); ++i)
    if (!(std::fabs(double(got[i]) - double(ref[i])) <= tol * mx)) {
      if (!bad)
        first = i;
      ++bad;
    }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << ref.size()
                     << " differ; first at " << first << ": got "
                     << (bad ? got[first] : 0.0f) << ", want "
                     << (bad ? ref[first] : 0.0f) << " (max |ref| " << mx
                     << ")";
}

constexpr double kTol = 2e-5;

TEST(DeviceOps, Embedding) {
  Rng rng(1);
  const int64_t vocab = 11, dim = 7, n = 9;
  std::vector<float> table = randomVec(rng, vocab * dim);
  std::vector<int> ids = {3, 0, 10, 3, 5, 3, 7, 0, 1}; // repeats accumulate
  std::vector<float> ref(n * dim);
  ops::embeddingForward(table.data(), dim, ids.data(), n, ref.data());
  Dev<float> dTable(table), out{size_t(n * dim)};
  Dev<int> dIds(ids);
  ASSERT_EQ(
      dops::embeddingForward(dTable.get(), dim, dIds.get(), n, out.get(), 0),
      cudaSuccess);
  expectClose(out.host(), ref, 0.0, "embedding forward");

  std::vector<float> dOut = randomVec(rng, n * dim);
  std::vector<float> gradRef(vocab * dim, 0.5f);
  ops::embeddingBackward(dOut.data(), dim, ids.data(), n, gradRef.data());
  Dev<float> dG(std::vector<float>(vocab * dim, 0.5f)), dDOut(dOut);
  ASSERT_EQ(
      dops::embeddingBackward(dDOut.get(), dim, dIds.get(), n, dG.get(), 0),
      cudaSuccess);
  expectClose(dG.host(), gradRef, kTol, "embedding backward");
}

TEST(DeviceOps, RMSNorm) {
  Rng rng(2);
  const int64_t n = 5, dim = 200; // dim > threads: strided rows
  const float eps = 1e-5f;
  std::vector<float> x = randomVec(rng, n * dim), w = randomVec(rng, dim),
                     dy = randomVec(rng, n * dim);
  std::vector<float> y(n * dim), rinv(n);
  ops::rmsNormForward(x.data(), w.data(), n, dim, eps, y.data(), rinv.data());
  Dev<float> dx(x), dw(w), dY{size_t(n * dim)}, dR{size_t(n)}, dDy(dy);
  ASSERT_EQ(dops::rmsNormForward(dx.get(), dw.get(), n, dim, eps, dY.get(),
                                 dR.get(), 0),
            cudaSuccess);
  expectClose(dY.host(), y, kTol, "rmsnorm y");
  expectClose(dR.host(), rinv, kTol, "rmsnorm rinv");

  // Accumulating dx and a weight gradient.
  std::vector<float> gx(n * dim, 0.25f), gw(dim, -1.0f);
  ops::rmsNormBackward(x.data(), w.data(), rinv.data(), dy.data(), n, dim,
                       gx.data(), true, gw.data());
  Dev<float> dGx(std::vector<float>(n * dim, 0.25f)),
      dGw(std::vector<float>(dim, -1.0f));
  ASSERT_EQ(dops::rmsNormBackward(dx.get(), dw.get(), dR.get(), dDy.get(), n,
                                  dim, dGx.get(), true, dGw.get(), 0),
            cudaSuccess);
  expectClose(dGx.host(), gx, kTol, "rmsnorm dx (accumulate)");
  expectClose(dGw.host(), gw, kTol, "rmsnorm dw");
  // Overwriting dx.
  std::vector<float> gx2(n * dim);
  ops::rmsNormBackward(x.data(), w.data(), rinv.data(), dy.data(), n, dim,
                       gx2.data(), false, nullptr);
  Dev<float> dGx2(std::vector<float>(n * dim, 7.0f));
  ASSERT_EQ(dops::rmsNormBackward(dx.get(), dw.get(), dR.get(), dDy.get(), n,
                                  dim, dGx2.get(), false, nullptr, 0),
            cudaSuccess);
  expectClose(dGx2.host(), gx2, kTol, "rmsnorm dx");
}

TEST(DeviceOps, RoPE) {
  Rng rng(3);
  const int64_t n = 6, heads = 3, hd = 8;
  const double theta = 10000.0;
  std::vector<float> x = randomVec(rng, n * heads * hd);
  std::vector<int> pos = {0, 1, 2, 0, 1, 17}; // two packed sequences
  std::vector<float> invFreq(hd / 2);
  for (int64_t i = 0; i < hd / 2; ++i)
    invFreq[i] = float(1.0 / std::pow(theta, double(2 * i) / double(hd)));
  for (bool inverse : {false, true}) {
    std::vector<float> ref = x;
    ops::rope(ref.data(), n, heads, hd, pos.data(), theta, inverse);
    Dev<float> dx(x), dF(invFreq);
    Dev<int> dPos(pos);
    ASSERT_EQ(
        dops::rope(dx.get(), n, heads, hd, dPos.get(), dF.get(), inverse, 0),
        cudaSuccess);
    expectClose(dx.host(), ref, kTol, inverse ? "rope inverse" : "rope");
  }
}

/// Packed multi-sequence GQA attention, forward and backward, against the
/// CPU op run per sequence.
TEST(DeviceOps, PackedGQAAttention) {
  Rng rng(4);
  const int64_t h = 4, g = 2, hd = 8;
  const std::vector<int64_t> lens = {5, 1, 9, 70}; // 70 > threads per block
  std::vector<int64_t> start = {0};
  for (int64_t l : lens)
    start.push_back(start.back() + l);
  const int64_t n = start.back(), S = int64_t(lens.size());
  std::vector<float> q = randomVec(rng, n * h * hd),
                     k = randomVec(rng, n * g * hd),
                     v = randomVec(rng, n * g * hd),
                     dOut = randomVec(rng, n * h * hd);
  std::vector<int64_t> off = {0};
  for (int64_t l : lens)
    off.push_back(off.back() + h * l * l);
  // CPU reference per sequence.
  std::vector<float> out(n * h * hd), probs(off.back()), dq(n * h * hd),
      dk(n * g * hd), dv(n * g * hd);
  for (int64_t s = 0; s < S; ++s) {
    const int64_t o = start[s], len = lens[s];
    std::vector<float> scratch(len * len);
    ops::attentionForward(q.data() + o * h * hd, k.data() + o * g * hd,
                          v.data() + o * g * hd, g * hd, 0, len, h, g, hd,
                          out.data() + o * h * hd, probs.data() + off[s]);
    ops::attentionBackward(q.data() + o * h * hd, k.data() + o * g * hd,
                           v.data() + o * g * hd, probs.data() + off[s],
                           dOut.data() + o * h * hd, len, h, g, hd,
                           dq.data() + o * h * hd, dk.data() + o * g * hd,
                           dv.data() + o * g * hd, scratch.data());
  }
  Dev<float> dQ(q), dK(k), dV(v), dO(dOut), dOutD{size_t(n * h * hd)},
      dP(std::vector<float>(off.back(), -3.0f)), gq{size_t(n * h * hd)},
      gk(std::vector<float>(n * g * hd, 9.0f)),
      gv(std::vector<float>(n * g * hd, 9.0f)), ds(size_t(off.back()));
  Dev<int64_t> dStart(start), dOff(off);
  dops::PackedSeqs seqs{dStart.get(), dOff.get(), S};
  ASSERT_EQ(dops::attentionForward(dQ.get(), dK.get(), dV.get(), seqs, h, g, hd,
                                   dOutD.get(), dP.get(), 0),
            cudaSuccess);
  expectClose(dOutD.host(), out, kTol, "attention out");
  expectClose(dP.host(), probs, kTol, "attention probs");
  ASSERT_EQ(dops::attentionBackward(dQ.get(), dK.get(), dV.get(), dP.get(),
                                    dO.get(), seqs, h, g, hd, gq.get(),
                                    gk.get(), gv.get(), ds.get(), 0),
            cudaSuccess);
  expectClose(gq.host(), dq, kTol, "attention dq");
  expectClose(gk.host(), dk, kTol, "attention dk");
  expectClose(gv.host(), dv, kTol, "attention dv");
  // h not a multiple of g is refused.
  EXPECT_EQ(dops::attentionForward(dQ.get(), dK.get(), dV.get(), seqs, 3, 2, hd,
                                   dOutD.get(), dP.get(), 0),
            cudaErrorInvalidValue);
}

/// Incremental attention against a KV cache (prefill, multi-row and
/// 1-token decode steps at positions past a block's thread count) vs the
/// CPU op with the same p0.
TEST(DeviceOps, CachedGQAAttention) {
  Rng rng(6);
  const int64_t h = 4, g = 2, hd = 8, kw = g * hd;
  for (auto [p0, n] :
       {std::pair<int64_t, int64_t>{0, 5}, {75, 3}, {130, 1}, {0, 1}}) {
    const int64_t total = p0 + n;
    std::vector<float> q = randomVec(rng, n * h * hd),
                       k = randomVec(rng, total * kw),
                       v = randomVec(rng, total * kw);
    std::vector<float> out(n * h * hd), scratch(n * total);
    ops::attentionForward(q.data(), k.data(), v.data(), kw, p0, n, h, g, hd,
                          out.data(), nullptr, scratch.data());
    Dev<float> dQ(q), dK(k), dV(v), dOut(std::vector<float>(n * h * hd, 7.0f)),
        dS(size_t(n * h * total));
    ASSERT_EQ(dops::attentionCached(dQ.get(), dK.get(), dV.get(), p0, n, h, g,
                                    hd, dOut.get(), dS.get(), 0),
              cudaSuccess);
    expectClose(dOut.host(), out, kTol,
                ("cached attention p0=" + std::to_string(p0) +
                 " n=" + std::to_string(n))
                    .c_str());
  }
  Dev<float> dQ(size_t(8)), dOut(size_t(8)), dS(size_t(8));
  EXPECT_EQ(dops::attentionCached(dQ.get(), dQ.get(), dQ.get(), 0, 1, 3, 2, 2,
                                  dOut.get(), dS.get(), 0),
            cudaErrorInvalidValue);
}

/// AdamW (the Trainer's device optimizer) bit for bit against the Trainer's
/// host loop (lib/Runtime/Trainer.cpp, the same f32 operations in the same
/// order; the emulator build does not contract to FMA), over three steps.
TEST(DeviceOps, AdamWMatchesTheTrainerBitForBit) {
  Rng rng(8);
  const int64_t n = 3000; // more than one block
  std::vector<float> w = randomVec(rng, n), m(n, 0.0f), v(n, 0.0f);
  Dev<float> dW(w), dM(m), dV(v);
  const float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
  for (int t = 1; t <= 3; ++t) {
    std::vector<float> g = randomVec(rng, n, 0.1f);
    Dev<float> dG(g);
    const double lr = 3e-3 * t, c1 = 1.0 - std::pow(0.9, t),
                 c2 = 1.0 - std::pow(0.999, t);
    const float stepSize = float(lr / c1), decay = float(1.0 - lr * 0.01),
                invSqrtC2 = float(1.0 / std::sqrt(c2));
    for (int64_t j = 0; j < n; ++j) {
      m[j] = b1 * m[j] + (1.0f - b1) * g[j];
      v[j] = b2 * v[j] + (1.0f - b2) * g[j] * g[j];
      w[j] *= decay;
      w[j] -= stepSize * m[j] / (std::sqrt(v[j]) * invSqrtC2 + eps);
    }
    ASSERT_EQ(dops::adamw(dW.get(), dG.get(), dM.get(), dV.get(), n, b1, b2,
                          stepSize, decay, invSqrtC2, eps, 0),
              cudaSuccess);
  }
  EXPECT_EQ(dW.host(), w);
  EXPECT_EQ(dM.host(), m);
  EXPECT_EQ(dV.host(), v);
}

TEST(DeviceOps, SwiGLUDropoutAdd) {
  Rng rng(5);
  const int64_t count = 1000;
  std::vector<float> gate = randomVec(rng, count, 3.0f),
                     up = randomVec(rng, count), dOut = randomVec(rng, count);
  std::vector<float> out(count), dG(count), dU(count);
  ops::swigluForward(gate.data(), up.data(), count, out.data());
  ops::swigluBackward(gate.data(), up.data(), dOut.data(), count, dG.data(),
                      dU.data());
  Dev<float> g(gate), u(up), d(dOut), o{size_t(count)}, gg{size_t(count)},
      gu{size_t(count)};
  ASSERT_EQ(dops::swigluForward(g.get(), u.get(), count, o.get(), 0),
            cudaSuccess);
  ASSERT_EQ(dops::swigluBackward(g.get(), u.get(), d.get(), count, gg.get(),
                                 gu.get(), 0),
            cudaSuccess);
  expectClose(o.host(), out, kTol, "swiglu");
  expectClose(gg.host(), dG, kTol, "swiglu dgate");
  expectClose(gu.host(), dU, kTol, "swiglu dup");

  std::vector<uint8_t> mask(count);
  for (auto &m : mask)
    m = rng.uniform() >= 0.3f;
  std::vector<float> drop(count), acc = up;
  ops::dropoutApply(gate.data(), mask.data(), 1.0f / 0.7f, count, drop.data());
  ops::dropoutApply(gate.data(), mask.data(), 1.0f / 0.7f, count, acc.data(),
                    true);
  Dev<uint8_t> dm(mask);
  Dev<float> dd{size_t(count)}, da(up);
  ASSERT_EQ(dops::dropoutApply(g.get(), dm.get(), 1.0f / 0.7f, count, dd.get(),
                               false, 0),
            cudaSuccess);
  ASSERT_EQ(dops::dropoutApply(g.get(), dm.get(), 1.0f / 0.7f, count, da.get(),
                               true, 0),
            cudaSuccess);
  expectClose(dd.host(), drop, 0.0, "dropout");
  expectClose(da.host(), acc, 0.0, "dropout accumulate");

  std::vector<float> sum(count);
  for (int64_t i = 0; i < count; ++i)
    sum[i] = up[i] + gate[i];
  ASSERT_EQ(dops::addInPlace(u.get(), g.get(), count, 0), cudaSuccess);
  expectClose(u.host(), sum, 0.0, "add");
}

TEST(DeviceOps, GatherScatterRows) {
  Rng rng(6);
  const int64_t n = 8, dim = 5;
  std::vector<float> x = randomVec(rng, n * dim);
  std::vector<int> rows = {6, 1, 3};
  std::vector<float> ref(rows.size() * dim), back(n * dim, 0.0f);
  for (size_t i = 0; i < rows.size(); ++i)
    for (int64_t j = 0; j < dim; ++j) {
      ref[i * dim + j] = x[rows[i] * dim + j];
      back[rows[i] * dim + j] = x[rows[i] * dim + j];
    }
  Dev<float> dx(x), g(ref.size()), s{size_t(n * dim)};
  Dev<int> dr(rows);
  ASSERT_EQ(dops::gatherRows(dx.get(), dr.get(), int64_t(rows.size()), dim,
                             g.get(), 0),
            cudaSuccess);
  expectClose(g.host(), ref, 0.0, "gather");
  ASSERT_EQ(dops::scatterRows(g.get(), dr.get(), int64_t(rows.size()), dim,
                              s.get(), 0),
            cudaSuccess);
  expectClose(s.host(), back, 0.0, "scatter");
}

TEST(DeviceOps, CrossEntropy) {
  Rng rng(7);
  const int64_t n = 4, vocab = 300;
  std::vector<float> logits = randomVec(rng, n * vocab, 4.0f);
  std::vector<int> tgt = {0, 299, 17, 17};
  std::vector<float> grad(n * vocab);
  const float scale = 0.125f;
  double ref = ops::crossEntropy(logits.data(), n, vocab, tgt.data(),
                                 grad.data(), scale);
  Dev<float> dl(logits);
  Dev<int> dt(tgt);
  Dev<double> rows{size_t(n)};
  ASSERT_EQ(dops::crossEntropy(dl.get(), n, vocab, dt.get(), rows.get(), scale,
                               true, 0),
            cudaSuccess);
  double sum = 0.0;
  for (double r : rows.host())
    sum += r;
  EXPECT_NEAR(sum, ref, 1e-9 * std::fabs(ref));
  expectClose(dl.host(), grad, kTol, "cross-entropy gradient");
  // Loss only: the logits stay.
  Dev<float> dl2(logits);
  ASSERT_EQ(dops::crossEntropy(dl2.get(), n, vocab, dt.get(), rows.get(), scale,
                               false, 0),
            cudaSuccess);
  expectClose(dl2.host(), logits, 0.0, "logits kept without gradient");
}

} // namespace
