//===- OpsTest.cpp - finite-difference checks of every op's backward -------===//
//
// Each op's backward is compared with central finite differences (computed
// in double by re-running the f32 forward) of a random linear functional
// L = sum(forward(x) * R).
//
//===----------------------------------------------------------------------===//

#include "mixq/Runtime/Ops.h"
#include "mixq/Runtime/Random.h"

#include "gtest/gtest.h"

#include <cmath>
#include <functional>
#include <vector>

using namespace mixq::runtime;

namespace {

std::vector<float> randomVec(Rng &rng, size_t n, float scale = 1.0f) {
  std::vector<float> v(n);
  for (float &x : v)
    x = scale * rng.normal();
  return v;
}

double dot(const std::vector<float> &a, const std::vector<float> &b) {
  double s = 0.0;
  for (size_t i = 0; i < a.size(); ++i)
    s += double(a[i]) * double(b[i]);
  return s;
}

/// Checks analytic gradient `grad` of L(x) = f(x) against central
/// differences at every element of `x` (or a sample of at most 64).
void checkGradient(std::vector<float> &x, const std::vector<float> &grad,
                   const std::function<double()> &f, double eps = 1e-2,
                   double tol = 2e-2) {
  ASSERT_EQ(x.size(), grad.size());
  size_t stride = std::max<size_t>(1, x.size() / 64);
  for (size_t i = 0; i < x.size(); i += stride) {
    float saved = x[i];
    x[i] = saved + float(eps);
    double up = f();
    x[i] = saved - float(eps);
    double down = f();
    x[i] = saved;
    double fd = (up - down) / (2 * eps);
    EXPECT_NEAR(grad[i], fd, tol * std::max(1.0, std::fabs(fd)))
        << "element " << i;
  }
}

TEST(Ops, EmbeddingBackwardScattersRows) {
  Rng rng(1);
  const int64_t vocab = 5, dim = 3;
  std::vector<float> table = randomVec(rng, vocab * dim);
  std::vector<int> ids = {2, 0, 2, 4};
  std::vector<float> r = randomVec(rng, ids.size() * dim);
  std::vector<float> dTable(vocab * dim, 0.0f);
  ops::embeddingBackward(r.data(), dim, ids.data(), ids.size(), dTable.data());
  std::vector<float> out(ids.size() * dim);
  checkGradient(table, dTable, [&] {
    ops::embeddingForward(table.data(), dim, ids.data(), ids.size(),
                          out.data());
    return dot(out, r);
  });
  // Row 3 is not used: its gradient is exactly zero.
  for (int j = 0; j < dim; ++j)
    EXPECT_EQ(dTable[3 * dim + j], 0.0f);
}

TEST(Ops, RMSNormBackward) {
  Rng rng(2);
  const int64_t n = 3, dim = 8;
  std::vector<float> x = randomVec(rng, n * dim), w = randomVec(rng, dim);
  std::vector<float> r = randomVec(rng, n * dim), y(n * dim), rinv(n);
  ops::rmsNormForward(x.data(), w.data(), n, dim, 1e-5f, y.data(),
                      rinv.data());
  std::vector<float> dx(n * dim), dw(dim, 0.0f);
  ops::rmsNormBackward(x.data(), w.data(), rinv.data(), r.data(), n, dim,
                       dx.data(), false, dw.data());
  auto f = [&] {
    ops::rmsNormForward(x.data(), w.data(), n, dim, 1e-5f, y.data(),
                        rinv.data());
    return dot(y, r);
  };
  checkGradient(x, dx, f, 1e-3);
  checkGradient(w, dw, f, 1e-3);
}

TEST(Ops, RMSNormForwardValues) {
  std::vector<float> x = {3.0f, 4.0f}, w = {1.0f, 2.0f}, y(2), rinv(1);
  ops::rmsNormForward(x.data(), w.data(), 1, 2, 0.0f, y.data(), rinv.data());
  float rms = std::sqrt((9.0f + 16.0f) / 2.0f);
  EXPECT_NEAR(y[0], 3.0f / rms, 1e-6);
  EXPECT_NEAR(y[1], 8.0f / rms, 1e-6);
}

TEST(Ops, RopeRotateHalfPairsAndInverse) {
  // Position 1, head dim 4: pairs (0,2) and (1,3) rotate by 1 and 0.01 rad.
  std::vector<float> x = {1.0f, 0.0f, 0.0f, 1.0f};
  int pos = 1;
  ops::rope(x.data(), 1, 1, 4, &pos, 10000.0);
  EXPECT_NEAR(x[0], std::cos(1.0), 1e-6);
  EXPECT_NEAR(x[2], std::sin(1.0), 1e-6);
  EXPECT_NEAR(x[1], -std::sin(0.01), 1e-6);
  EXPECT_NEAR(x[3], std::cos(0.01), 1e-6);
  ops::rope(x.data(), 1, 1, 4, &pos, 10000.0, /*inverse=*/true);
  EXPECT_NEAR(x[0], 1.0f, 1e-6);
  EXPECT_NEAR(x[3], 1.0f, 1e-6);
}

TEST(Ops, RopeBackwardIsInverseRotation) {
  Rng rng(3);
  const int64_t n = 4, heads = 2, hd = 8;
  std::vector<float> x = randomVec(rng, n * heads * hd);
  std::vector<float> r = randomVec(rng, x.size());
  std::vector<int> pos = {0, 3, 7, 100};
  std::vector<float> grad = r;
  ops::rope(grad.data(), n, heads, hd, pos.data(), 10000.0, true);
  checkGradient(x, grad, [&] {
    std::vector<float> y = x;
    ops::rope(y.data(), n, heads, hd, pos.data(), 10000.0);
    return dot(y, r);
  });
}

TEST(Ops, AttentionBackwardGroupedQuery) {
  Rng rng(4);
  const int64_t n = 5, h = 4, g = 2, hd = 4;
  std::vector<float> q = randomVec(rng, n * h * hd),
                     k = randomVec(rng, n * g * hd),
                     v = randomVec(rng, n * g * hd);
  std::vector<float> r = randomVec(rng, n * h * hd), out(n * h * hd),
                     probs(h * n * n);
  ops::attentionForward(q.data(), k.data(), v.data(), g * hd, 0, n, h, g, hd,
                        out.data(), probs.data());
  std::vector<float> dq(q.size()), dk(k.size()), dv(v.size()),
      scratch(n * n);
  ops::attentionBackward(q.data(), k.data(), v.data(), probs.data(), r.data(),
                         n, h, g, hd, dq.data(), dk.data(), dv.data(),
                         scratch.data());
  auto f = [&] {
    std::vector<float> sc(n * n);
    ops::attentionForward(q.data(), k.data(), v.data(), g * hd, 0, n, h, g,
                          hd, out.data(), nullptr, sc.data());
    return dot(out, r);
  };
  checkGradient(q, dq, f, 1e-2);
  checkGradient(k, dk, f, 1e-2);
  checkGradient(v, dv, f, 1e-2);
}

TEST(Ops, AttentionIsCausalAndCachedMatchesFull) {
  Rng rng(5);
  const int64_t n = 6, h = 2, g = 1, hd = 4;
  std::vector<float> q = randomVec(rng, n * h * hd),
                     k = randomVec(rng, n * g * hd),
                     v = randomVec(rng, n * g * hd);
  std::vector<float> full(n * h * hd), probs(h * n * n);
  ops::attentionForward(q.data(), k.data(), v.data(), g * hd, 0, n, h, g, hd,
                        full.data(), probs.data());
  for (int64_t hh = 0; hh < h; ++hh)
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = i + 1; j < n; ++j)
        EXPECT_EQ(probs[(hh * n + i) * n + j], 0.0f);
  // The last two queries against a cache of all six keys.
  std::vector<float> part(2 * h * hd), sc(2 * n);
  ops::attentionForward(q.data() + 4 * h * hd, k.data(), v.data(), g * hd, 4,
                        2, h, g, hd, part.data(), nullptr, sc.data());
  for (int64_t i = 0; i < 2 * h * hd; ++i)
    EXPECT_NEAR(part[i], full[4 * h * hd + i], 1e-6);
}

TEST(Ops, SwiGLUBackward) {
  Rng rng(6);
  const int64_t count = 16;
  std::vector<float> gate = randomVec(rng, count, 2.0f),
                     up = randomVec(rng, count), r = randomVec(rng, count);
  std::vector<float> out(count), dg(count), du(count);
  ops::swigluBackward(gate.data(), up.data(), r.data(), count, dg.data(),
                      du.data());
  auto f = [&] {
    ops::swigluForward(gate.data(), up.data(), count, out.data());
    return dot(out, r);
  };
  checkGradient(gate, dg, f, 1e-3);
  checkGradient(up, du, f, 1e-3);
}

TEST(Ops, LinearBackward) {
  Rng rng(7);
  const int64_t n = 3, in = 5, out = 4;
  std::vector<float> x = randomVec(rng, n * in), w = randomVec(rng, out * in),
                     r = randomVec(rng, n * out), y(n * out);
  std::vector<float> dx(n * in), dw(out * in);
  ops::linearBackwardInput(r.data(), w.data(), n, in, out, dx.data());
  ops::linearBackwardWeight(r.data(), x.data(), n, in, out, dw.data());
  auto f = [&] {
    ops::linearForward(x.data(), w.data(), n, in, out, y.data());
    return dot(y, r);
  };
  checkGradient(x, dx, f, 1e-2, 1e-3);
  checkGradient(w, dw, f, 1e-2, 1e-3);
}

TEST(Ops, CrossEntropyBackwardAndIgnoredRows) {
  Rng rng(8);
  const int64_t n = 3, vocab = 7;
  std::vector<float> logits = randomVec(rng, n * vocab);
  std::vector<int> targets = {2, -1, 6};
  std::vector<float> grad(n * vocab);
  double loss = ops::crossEntropy(logits.data(), n, vocab, targets.data(),
                                  grad.data(), 1.0f);
  double expect = -ops::logProb(logits.data(), vocab, 2) -
                  ops::logProb(logits.data() + 2 * vocab, vocab, 6);
  EXPECT_NEAR(loss, expect, 1e-9);
  for (int64_t j = 0; j < vocab; ++j)
    EXPECT_EQ(grad[vocab + j], 0.0f);
  checkGradient(logits, grad, [&] {
    return ops::crossEntropy(logits.data(), n, vocab, targets.data(), nullptr,
                             1.0f);
  }, 1e-3, 1e-3);
}

} // namespace
