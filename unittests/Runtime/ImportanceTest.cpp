//===- ImportanceTest.cpp - base-weight gradients and importance scores ----===//

#include "mixq/Runtime/Importance.h"
#include "mixq/Runtime/Variant.h"

#include "mixq/Import/Checkpoint.h"

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

/// A tiny random f32 model without adapters (GQA: 4 heads, 2 KV heads).
struct Tiny : TinyRandomModel {
  Tiny() : TinyRandomModel("", options()) {
    if (!model)
      return;
    // Random weights of std 0.02 give a near-uniform model; scale them up so
    // gradients are well above finite-difference noise.
    for (LinearLayer *lin : model->linears())
      for (int64_t i = 0; i < lin->dense.size(); ++i)
        lin->dense[i] *= 20.0f;
  }
  static TinyModelOptions options() {
    TinyModelOptions o;
    o.dirPrefix = "mixq-imp";
    o.checkpointSeed = 5;
    o.model.training = false;
    return o;
  }
};

std::vector<Example> examples() {
  std::vector<Example> ex(4);
  ex[0].tokens = {1, 5, 9, 3, 17, 22};
  ex[0].targets = {-1, -1, -1, -1, 22, 7};
  ex[1].tokens = {1, 30, 2, 8, 11};
  ex[1].targets = {-1, -1, -1, 11, 4};
  ex[2].tokens = {1, 6, 6, 13};
  ex[2].targets = {-1, -1, 13, 9};
  ex[3].tokens = {1, 4, 19, 25, 2, 2, 31};
  ex[3].targets = {-1, -1, -1, -1, -1, 22, 7}; // same answer as ex[0]
  return ex;
}

TEST(Importance, BaseWeightGradientMatchesFiniteDifferences) {
  Tiny t;
  ASSERT_TRUE(t.model);
  Model &m = *t.model;
  Batch b;
  for (const Example &e : examples())
    b.addSequence(e.tokens, e.targets);
  std::vector<LinearLayer *> lins = m.linears();
  for (LinearLayer *lin : lins)
    lin->dW = Buffer<float>(t.mem, MemCategory::Gradients, lin->out * lin->in);
  m.forwardBackward(b, 1.0f, nullptr);
  int checked = 0;
  double maxGrad = 0.0;
  for (LinearLayer *lin : lins) {
    for (int64_t i = 3; i < lin->dense.size(); i += lin->dense.size() / 4) {
      const float eps = 1e-2f, saved = lin->dense[i];
      lin->dense[i] = saved + eps;
      double up = m.loss(b);
      lin->dense[i] = saved - eps;
      double down = m.loss(b);
      lin->dense[i] = saved;
      double fd = (up - down) / (2.0 * eps);
      EXPECT_NEAR(lin->dW[i], fd, 2e-2 * std::max(1.0, std::fabs(fd)))
          << lin->weightName << " element " << i;
      maxGrad = std::max(maxGrad, std::fabs(fd));
      ++checked;
    }
  }
  EXPECT_GE(checked, 50);
  EXPECT_GT(maxGrad, 1e-2); // the check is not comparing zeros
  // Without a sink nothing is accumulated (and the sink is per linear).
  lins[0]->dW = Buffer<float>();
  float before = lins[1]->dW[0];
  m.forwardBackward(b, 1.0f, nullptr);
  EXPECT_TRUE(lins[0]->dW.empty());
  EXPECT_NE(lins[1]->dW[0], before);
}

/// Aggregates are sums of the element scores of each structure.
void checkAggregates(const ImportanceResult &r, const Model &m) {
  ASSERT_EQ(r.layers.size(), 2u);
  for (const LayerImportance &l : r.layers) {
    const auto &p = l.projections;
    double proj = 0.0;
    for (double x : p) {
      EXPECT_GT(x, 0.0);
      proj += x;
    }
    EXPECT_NEAR(l.score, proj, 1e-9 * proj);
    ASSERT_EQ(l.heads.size(), 4u);
    ASSERT_EQ(l.kvHeads.size(), 2u);
    ASSERT_EQ(l.channels.size(), 24u);
    double heads = 0, kv = 0, ch = 0;
    for (double x : l.heads)
      heads += x;
    for (double x : l.kvHeads)
      kv += x;
    for (double x : l.channels)
      ch += x;
    EXPECT_NEAR(heads, p[0] + p[3], 1e-6 * heads);
    EXPECT_NEAR(kv, p[0] + p[1] + p[2] + p[3], 1e-6 * kv);
    EXPECT_NEAR(ch, p[4] + p[5] + p[6], 1e-6 * ch);
    // A KV group's score includes its two query heads.
    EXPECT_GT(l.kvHeads[0], l.heads[0] + l.heads[1]);
    EXPECT_GT(l.kvHeads[1], l.heads[2] + l.heads[3]);
  }
  (void)m;
}

TEST(Importance, TaylorScoresAreElementSumsAndDeterministic) {
  Tiny t;
  ASSERT_TRUE(t.model);
  std::vector<Example> ex = examples();
  ImportanceOptions o;
  o.method = ImportanceMethod::Taylor1;
  auto r1 = measureImportance(*t.model, ex, o);
  ASSERT_TRUE(bool(r1)) << llvm::toString(r1.takeError());
  checkAggregates(*r1, *t.model);
  EXPECT_EQ(r1->samples, 4);
  EXPECT_EQ(r1->tokens, 8);
  auto again = measureImportance(*t.model, ex, o);
  ASSERT_TRUE(bool(again));
  std::string a, b;
  llvm::raw_string_ostream(a) << r1->toJSON();
  llvm::raw_string_ostream(b) << again->toJSON();
  EXPECT_EQ(a, b);
  // Sinks are released afterwards.
  for (LinearLayer *lin : t.model->linears())
    EXPECT_TRUE(lin->dW.empty());

  o.method = ImportanceMethod::Taylor2;
  auto r2 = measureImportance(*t.model, ex, o);
  ASSERT_TRUE(bool(r2));
  checkAggregates(*r2, *t.model);
  EXPECT_NE(r1->layers[0].score, r2->layers[0].score);
}

TEST(Importance, TaylorMatchesHandComputedElementScores) {
  Tiny t;
  ASSERT_TRUE(t.model);
  Model &m = *t.model;
  std::vector<Example> ex = examples();
  // Per-example gradients of the mean token loss, by the (checked) hook.
  LinearLayer &down = m.layers()[1].down(), &q = m.layers()[0].q();
  std::vector<double> g1d(down.dense.size()), g2d(down.dense.size()),
      g1q(q.dense.size());
  for (const Example &e : ex) {
    down.dW = Buffer<float>(t.mem, MemCategory::Gradients, down.dense.size());
    q.dW = Buffer<float>(t.mem, MemCategory::Gradients, q.dense.size());
    Batch b;
    b.addSequence(e.tokens, e.targets);
    m.forwardBackward(b, float(1.0 / double(b.numTargets())), nullptr);
    for (int64_t i = 0; i < down.dW.size(); ++i) {
      g1d[i] += down.dW[i] / 4.0;
      g2d[i] += double(down.dW[i]) * down.dW[i] / 4.0;
    }
    for (int64_t i = 0; i < q.dW.size(); ++i)
      g1q[i] += q.dW[i] / 4.0;
  }
  down.dW = Buffer<float>();
  q.dW = Buffer<float>();
  double t1 = 0, t2 = 0, head1 = 0;
  for (int64_t i = 0; i < down.dense.size(); ++i) {
    double w = down.dense[i];
    t1 += std::fabs(w * g1d[i]);
    t2 += std::fabs(w * g2d[i] * w);
  }
  // Query head 1 of layer 0: q_proj rows 4..7 (o_proj columns added below).
  for (int64_t i = 4 * 16; i < 8 * 16; ++i)
    head1 += std::fabs(q.dense[i] * g1q[i]);
  ImportanceOptions o;
  o.method = ImportanceMethod::Taylor1;
  auto r1 = measureImportance(m, ex, o);
  o.method = ImportanceMethod::Taylor2;
  auto r2 = measureImportance(m, ex, o);
  ASSERT_TRUE(r1 && r2);
  EXPECT_NEAR(r1->layers[1].projections[6], t1, 1e-4 * t1);
  EXPECT_NEAR(r2->layers[1].projections[6], t2, 1e-4 * t2);
  EXPECT_GT(r1->layers[0].heads[1], head1);
}

TEST(Importance, EntropyLensEndsAtTheModelLoss) {
  Tiny t;
  ASSERT_TRUE(t.model);
  std::vector<Example> ex = examples();
  ImportanceOptions o;
  o.method = ImportanceMethod::Entropy;
  auto r = measureImportance(*t.model, ex, o);
  ASSERT_TRUE(bool(r)) << llvm::toString(r.takeError());
  ASSERT_EQ(r->crossEntropy.size(), 3u);
  // The lens after the last layer is the model's own output.
  double mean = 0.0;
  for (const Example &e : ex) {
    Batch b;
    b.addSequence(e.tokens, e.targets);
    mean += t.model->loss(b) / 4.0;
  }
  EXPECT_NEAR(r->crossEntropy.back(), mean, 1e-4 * mean);
  // Answers {22 7, 11 4, 13 9, 22 7}: p = 1/2, 1/4, 1/4.
  double h = -(0.5 * std::log(0.5) + 2 * 0.25 * std::log(0.25));
  EXPECT_NEAR(r->answerEntropy, h, 1e-12);
  ASSERT_EQ(r->layers.size(), 2u);
  for (int l = 0; l < 2; ++l)
    EXPECT_NEAR(r->layers[l].score,
                r->crossEntropy[l] - r->crossEntropy[l + 1], 1e-12);
  auto again = measureImportance(*t.model, ex, o);
  ASSERT_TRUE(bool(again));
  EXPECT_EQ(again->crossEntropy, r->crossEntropy);
  llvm::json::Value j = r->toJSON();
  const llvm::json::Object *obj = j.getAsObject();
  ASSERT_TRUE(obj);
  EXPECT_EQ(obj->getString("method"), "entropy");
  EXPECT_EQ(obj->getInteger("version"), 1);
  EXPECT_EQ(obj->getArray("importance")->size(), 2u);
  EXPECT_EQ(obj->getArray("information")->size(), 2u);
}

TEST(Importance, BadInputsAreErrors) {
  Tiny t;
  ASSERT_TRUE(t.model);
  std::vector<Example> ex = examples();
  ex[1].targets.assign(ex[1].tokens.size(), -1);
  ImportanceOptions o;
  auto r = measureImportance(*t.model, ex, o);
  ASSERT_FALSE(bool(r));
  EXPECT_EQ(llvm::toString(r.takeError()),
            "calibration example 1 has no target token");
  auto empty = measureImportance(*t.model, {}, o);
  ASSERT_FALSE(bool(empty));
  llvm::consumeError(empty.takeError());
  auto m = parseImportanceMethod("taylor3");
  ASSERT_FALSE(bool(m));
  EXPECT_NE(llvm::toString(m.takeError()).find("taylor3"), std::string::npos);
}

} // namespace
