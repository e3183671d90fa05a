//===- AdaLoRATest.cpp - AdaLoRA gradients, regulariser, budget schedule ---===//

#include "mixq/Runtime/AdaLoRA.h"
#include "mixq/Runtime/Trainer.h"
#include "mixq/Runtime/Variant.h"

#include "mixq/Import/Checkpoint.h"
#include "mixq/Kernels/FusedLinear.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

#include "TinyModel.h"

#include "gtest/gtest.h"

#include <cmath>

using namespace mixq;
using namespace mixq::runtime;

namespace {

using tinytest::TinyModelOptions;
using tinytest::TinyRandomModel;
using tinytest::unwrap;

std::vector<float> randomVec(Rng &rng, int64_t n, float scale) {
  std::vector<float> v(static_cast<size_t>(n));
  for (float &x : v)
    x = scale * rng.normal();
  return v;
}

TEST(AdaLoRA, BudgetScheduleIsCubicBetweenTinitAndTfinal) {
  AdaLoRASchedule s;
  s.initBudget = 48; // 4 linears of rank 12
  s.targetBudget = 32;
  s.tinit = 2;
  s.tfinal = 3;
  s.deltaT = 2;
  s.totalSteps = 15;
  auto at = [&](int64_t t) { return adaloraBudget(s, t); };
  // Warm-up: the initial budget, no masking.
  EXPECT_EQ(at(1).budget, 48);
  EXPECT_FALSE(at(1).mask);
  EXPECT_EQ(at(2).budget, 48);
  EXPECT_FALSE(at(2).mask);
  // 16 * (1 - (t - 2) / 10)^3 + 32, truncated; masks on multiples of 2.
  EXPECT_EQ(at(3).budget, 43); // 16 * 0.729 = 11.66
  EXPECT_FALSE(at(3).mask);
  EXPECT_EQ(at(4).budget, 40); // 16 * 0.512 = 8.19
  EXPECT_TRUE(at(4).mask);
  EXPECT_EQ(at(7).budget, 34); // 16 * 0.125 = 2
  EXPECT_FALSE(at(7).mask);
  EXPECT_EQ(at(11).budget, 32); // 16 * 0.001
  // T - tfinal = 12: forced allocation at the target, then kept.
  EXPECT_EQ(at(12).budget, 32);
  EXPECT_TRUE(at(12).mask);
  EXPECT_EQ(at(15).budget, 32);
  // Monotone non-increasing.
  for (int64_t t = 2; t <= 15; ++t)
    EXPECT_LE(at(t).budget, at(t - 1).budget) << t;
}

/// L = sum(G .* Y), Y = X W^T + s X Q^T diag(lambda) P^T through the kernels
/// (B = P diag(lambda)) and the gradient mapping, versus central differences.
/// L is linear in every single entry, so differences are exact up to f32.
void checkMapping(QuantFormat format) {
  const int64_t m = 5, in = 32, out = 24, r = 4;
  Rng rng(5);
  std::vector<float> W = randomVec(rng, out * in, 0.3f),
                     X = randomVec(rng, m * in, 1.0f),
                     G = randomVec(rng, m * out, 1.0f),
                     Q = randomVec(rng, r * in, 0.3f),
                     P = randomVec(rng, out * r, 0.3f),
                     L = randomVec(rng, r, 1.0f);
  QuantSpec qs;
  qs.format = format;
  qs.block = 16;
  auto wq = unwrap(kernels::quantize(W.data(), out, in, qs));
  kernels::AdapterView v;
  v.kind = AdapterKind::LoRA;
  v.rank = r;
  v.scale = 1.5f;
  std::vector<float> bEff(size_t(out * r));
  auto loss = [&]() {
    adaloraEffectiveB(P.data(), L.data(), out, r, bEff.data());
    v.A = Q.data();
    v.B = bEff.data();
    std::vector<float> y(size_t(m * out));
    EXPECT_FALSE(bool(
        kernels::fusedLinearForward(wq, v, X.data(), m, y.data())));
    double l = 0.0;
    for (int64_t i = 0; i < m * out; ++i)
      l += double(G[i]) * double(y[i]);
    return l;
  };
  loss();
  std::vector<float> dX(size_t(m * in)), dQ(size_t(r * in)),
      dBEff(size_t(out * r)), dP(size_t(out * r)),
      dL(static_cast<size_t>(r));
  kernels::LinearGrads g;
  g.dX = dX.data();
  g.dA = dQ.data();
  g.dB = dBEff.data();
  ASSERT_FALSE(bool(kernels::fusedLinearBackward(wq, v, X.data(), G.data(),
                                                 m, g)));
  adaloraMapGradient(P.data(), L.data(), dBEff.data(), out, r, dP.data(),
                     dL.data());
  auto fd = [&](std::vector<float> &p, const std::vector<float> &grad,
                const char *name) {
    for (size_t i = 0; i < p.size(); i += std::max<size_t>(1, p.size() / 9)) {
      const float eps = 1e-2f, saved = p[i];
      p[i] = saved + eps;
      double up = loss();
      p[i] = saved - eps;
      double down = loss();
      p[i] = saved;
      double d = (up - down) / (2.0 * eps);
      EXPECT_NEAR(grad[i], d, 2e-3 * std::max(1.0, std::fabs(d)))
          << name << "[" << i << "]";
    }
  };
  fd(P, dP, "P");
  fd(L, dL, "lambda");
  fd(Q, dQ, "Q");
}

TEST(AdaLoRA, GradientMappingMatchesFiniteDifferencesF32) {
  checkMapping(QuantFormat::F32);
}

TEST(AdaLoRA, GradientMappingMatchesFiniteDifferencesNF4) {
  checkMapping(QuantFormat::NF4);
}

TEST(AdaLoRA, OrthogonalPenaltyGradient) {
  const int64_t r = 3, in = 7, out = 5;
  Rng rng(9);
  std::vector<float> Q = randomVec(rng, r * in, 0.5f),
                     P = randomVec(rng, out * r, 0.5f);
  std::vector<float> dQ(Q.size()), dP(P.size());
  double w = 0.7;
  double v = adaloraOrthPenalty(Q.data(), P.data(), r, in, out, w, dQ.data(),
                                dP.data());
  EXPECT_GT(v, 0.0);
  auto value = [&]() {
    return w * adaloraOrthPenalty(Q.data(), P.data(), r, in, out, 0.0,
                                  nullptr, nullptr);
  };
  for (auto [p, grad] : {std::pair{&Q, &dQ}, std::pair{&P, &dP}})
    for (size_t i = 0; i < p->size(); ++i) {
      const float eps = 1e-3f, saved = (*p)[i];
      (*p)[i] = saved + eps;
      double up = value();
      (*p)[i] = saved - eps;
      double down = value();
      (*p)[i] = saved;
      double d = (up - down) / (2.0 * eps);
      EXPECT_NEAR((*grad)[i], d, 1e-2 * std::max(1.0, std::fabs(d))) << i;
    }
  // Orthonormal rows / columns cost nothing.
  std::vector<float> I3(size_t(r * in), 0.0f), I5(size_t(out * r), 0.0f);
  for (int64_t i = 0; i < r; ++i) {
    I3[i * in + i] = 1.0f;
    I5[i * r + i] = 1.0f;
  }
  EXPECT_EQ(adaloraOrthPenalty(I3.data(), I5.data(), r, in, out, 0.0, nullptr,
                               nullptr),
            0.0);
}

/// A tiny random model with AdaLoRA on every projection.
struct TinyModel : TinyRandomModel {
  explicit TinyModel(const std::string &configJSON)
      : TinyRandomModel(configJSON, options()) {}
  static TinyModelOptions options() {
    TinyModelOptions o;
    o.dirPrefix = "mixq-ada";
    o.model.seed = 3;
    return o;
  }
};

Batch tinyBatch() {
  Batch b;
  b.addSequence({1, 5, 9, 3, 17, 22}, {5, 9, 3, 17, 22, -1});
  b.addSequence({1, 30, 2, 8}, {-1, -1, 8, 4});
  return b;
}

void checkModelGradients(Model &m) {
  // Non-zero lambda and larger P, Q so that every parameter has a gradient.
  Rng rng(11);
  for (auto &p : m.parameters())
    for (int64_t i = 0; i < p.first->size(); ++i)
      (*p.first)[i] += 0.2f * rng.normal();
  Batch b = tinyBatch();
  m.zeroGrads();
  double l1 = m.forwardBackward(b, 1.0f, nullptr);
  EXPECT_NEAR(l1, m.loss(b), 1e-4 * std::fabs(l1));
  int index = 0, lambdas = 0;
  for (auto &p : m.parameters()) {
    Buffer<float> &w = *p.first;
    lambdas += w.size() == 3; // lambda of rank 3
    for (int64_t i = 0; i < w.size(); i += std::max<int64_t>(1, w.size() / 3)) {
      const float eps = 1e-3f, saved = w[i];
      w[i] = saved + eps;
      double up = m.loss(b);
      w[i] = saved - eps;
      double down = m.loss(b);
      w[i] = saved;
      double fd = (up - down) / (2.0 * eps);
      EXPECT_NEAR((*p.second)[i], fd, 2e-2 * std::max(1.0, std::fabs(fd)))
          << "parameter " << index << " element " << i;
    }
    ++index;
  }
  EXPECT_EQ(lambdas, 14); // 7 projections x 2 layers
}

TEST(AdaLoRA, ModelGradientsMatchFiniteDifferencesDense) {
  TinyModel t(R"({"version":1,"default":{"format":"f32","adapter":"adalora",
               "rank":3,"target_rank":2,"alpha":6}})");
  ASSERT_TRUE(t.model);
  EXPECT_TRUE(t.model->layers()[0].q().isDense());
  checkModelGradients(*t.model);
}

TEST(AdaLoRA, ModelGradientsMatchFiniteDifferencesNF4) {
  TinyModel t(R"({"version":1,"default":{"format":"nf4","block":16,
               "adapter":"adalora","rank":3,"target_rank":2,"alpha":6}})");
  ASSERT_TRUE(t.model);
  EXPECT_FALSE(t.model->layers()[0].q().isDense());
  checkModelGradients(*t.model);
}

TEST(AdaLoRA, TrainingPrunesToTheTargetBudget) {
  TinyModel t(R"({"version":1,"default":{"format":"nf4","block":16,
               "adapter":"adalora","rank":3,"target_rank":2,"alpha":6,
               "tinit":1,"tfinal":2,"delta_t":2},
               "layers":[{"layer":1,"target_rank":1}]})");
  ASSERT_TRUE(t.model);
  std::vector<Example> data;
  for (int i = 0; i < 8; ++i)
    data.push_back({{1, 5 + i, 9, 3 + i, 17}, {5 + i, 9, 3 + i, 17, -1}});
  TrainOptions o;
  o.epochs = 4;
  o.batch = 4; // 8 steps
  o.progress = false;
  TrainResult res = unwrap(train(*t.model, data, o));
  EXPECT_EQ(res.steps, 8);
  llvm::json::Object m = adaloraMetrics(*t.model);
  EXPECT_EQ(m.getInteger("init_budget"), 7 * 3 * 2);
  EXPECT_EQ(m.getInteger("target_budget"), 7 * 2 + 7 * 1);
  EXPECT_EQ(m.getInteger("total_rank"), 21);
  // Pruned triplets have lambda = 0; the kept ones were trained (non-zero).
  int64_t kept = 0;
  for (LinearLayer *lin : t.model->linears())
    for (int64_t i = 0; i < lin->view.rank; ++i) {
      if (lin->rankMask[i] == 0.0f)
        EXPECT_EQ(lin->E[i], 0.0f);
      else
        kept += lin->E[i] != 0.0f;
    }
  EXPECT_EQ(kept, 21);
}

TEST(AdaLoRA, ConfigErrorsNameTheProblem) {
  auto bad = [](const char *json) {
    auto v = llvm::json::parse(json);
    EXPECT_TRUE(bool(v));
    auto c = VariantConfig::fromJSON(*v, "cfg.json");
    EXPECT_FALSE(bool(c));
    return c ? std::string() : llvm::toString(c.takeError());
  };
  EXPECT_NE(bad(R"({"default":{"adapter":"adalora","rank":4,
                "target_rank":6}})")
                .find("'target_rank' 6 must be in [1, rank = 4]"),
            std::string::npos);
  EXPECT_NE(bad(R"({"default":{"adapter":"adalora","rank":4,
                "beta1":1.0}})")
                .find("cfg.json"),
            std::string::npos);
  EXPECT_NE(bad(R"({"default":{"adapter":"adalora","rank":4,
                "init":"pissa"}})")
                .find("adalora supports only 'init': 'gaussian'"),
            std::string::npos);
  // Defaults (PEFT's): target 8 clamped to the rank, schedule knobs.
  auto v = llvm::json::parse(R"({"default":{"adapter":"adalora","rank":6}})");
  auto c = unwrap(VariantConfig::fromJSON(*v, "ok.json"));
  LinearSpec s = unwrap(c.resolve(0, "q_proj"));
  EXPECT_EQ(s.adapter.kind, AdapterKind::AdaLoRA);
  EXPECT_EQ(s.adapter.targetRank, 6);
  EXPECT_EQ(s.adapter.deltaT, 1);
  EXPECT_DOUBLE_EQ(s.adapter.beta1, 0.85);
  EXPECT_DOUBLE_EQ(s.adapter.orthReg, 0.5);
  EXPECT_DOUBLE_EQ(s.adapter.alpha, 12.0);
}

} // namespace
