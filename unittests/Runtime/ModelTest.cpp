//===- ModelTest.cpp - whole-decoder checks: parity, gradients, memory ------===//

#include "mixq/Runtime/Generate.h"
#include "mixq/Runtime/Model.h"
#include "mixq/Runtime/Variant.h"

#include "mixq/Import/Checkpoint.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/Path.h"

#include "TinyModel.h"

#include "gtest/gtest.h"

#include <cmath>

using namespace mixq;
using namespace mixq::runtime;

namespace {

const std::string kData = MIXQ_DATA_DIR;
const std::string kBin = kData + "/models/stories260K/stories260K.bin";
const std::string kHF = kData + "/models/stories260K-hf";
const std::string kTok = kData + "/models/stories260K/tok512.bin";

using tinytest::TinyModelOptions;
using tinytest::TinyRandomModel;
using tinytest::unwrap;

TEST(Model, Stories260KGreedyParityBinAndHF) {
  MemoryTracker mem;
  ModelOptions opts;
  opts.training = false;
  auto vb = unwrap(Variant::open(kBin, "", kTok));
  auto vh = unwrap(Variant::open(kHF, "", kTok));
  ASSERT_TRUE(vb && vh);
  auto mb = unwrap(vb->buildModel(mem, opts));
  auto mh = unwrap(vh->buildModel(mem, opts));
  ASSERT_TRUE(mb && mh);
  auto tok = unwrap(vb->openTokenizer());
  ASSERT_TRUE(tok);
  Rng rng(0);
  GenerateOptions g;
  g.maxTokens = 40;
  std::vector<float> lb, lh;
  std::vector<int> prompt = {tok->bosId()};
  std::vector<int> ob = generate(*mb, prompt, g, rng, &lb);
  std::vector<int> oh = generate(*mh, prompt, g, rng, &lh);
  std::vector<int> all = prompt;
  all.insert(all.end(), ob.begin(), ob.end());
  std::string text = tok->decode(all);
  const std::string expected =
      "Once upon a time, there was a little girl named Lily. She loved to "
      "play outside in the park.";
  EXPECT_EQ(text.substr(0, expected.size()), expected);
  EXPECT_EQ(ob, oh);
  // Logits of a longer prefix agree within 1e-4.
  std::vector<int> seq = prompt;
  seq.insert(seq.end(), ob.begin(), ob.end());
  std::vector<int64_t> rows;
  for (int64_t i = 0; i < int64_t(seq.size()); ++i)
    rows.push_back(i);
  const int64_t v = mb->config().vocabSize;
  std::vector<float> a(rows.size() * v), b(rows.size() * v);
  KVCache ca = mb->makeCache(seq.size()), cb = mh->makeCache(seq.size());
  mb->forwardInfer(seq, ca, rows, a.data());
  mh->forwardInfer(seq, cb, rows, b.data());
  float maxDiff = 0.0f;
  for (size_t i = 0; i < a.size(); ++i)
    maxDiff = std::max(maxDiff, std::fabs(a[i] - b[i]));
  EXPECT_LT(maxDiff, 1e-4f);
}

TEST(Model, IncrementalCacheMatchesFullForward) {
  MemoryTracker mem;
  ModelOptions opts;
  opts.training = false;
  auto v = unwrap(Variant::open(kBin, "", kTok));
  ASSERT_TRUE(v);
  auto m = unwrap(v->buildModel(mem, opts));
  ASSERT_TRUE(m);
  std::vector<int> seq = {1, 40, 90, 200, 7, 300, 12};
  const int64_t vocab = 512, n = int64_t(seq.size());
  std::vector<float> full(vocab), part(vocab);
  KVCache c1 = m->makeCache(n), c2 = m->makeCache(n);
  m->forwardInfer(seq, c1, {n - 1}, full.data());
  m->forwardInfer(llvm::ArrayRef<int>(seq).take_front(4), c2, {}, nullptr);
  m->forwardInfer(llvm::ArrayRef<int>(seq).drop_front(4), c2, {2},
                  part.data());
  for (int64_t i = 0; i < vocab; ++i)
    EXPECT_NEAR(full[i], part[i], 1e-4);
}

/// A tiny random model with adapters everywhere, for gradient checks.
struct TinyModel : TinyRandomModel {
  explicit TinyModel(const char *configJSON, bool trainNorms = false)
      : TinyRandomModel(configJSON, options(trainNorms)) {
    if (!model)
      return;
    // Random non-zero B so every adapter parameter has a gradient.
    Rng rng(11);
    for (auto &p : model->parameters())
      for (int64_t i = 0; i < p.first->size(); ++i)
        (*p.first)[i] += 0.05f * rng.normal();
  }
  static TinyModelOptions options(bool trainNorms) {
    TinyModelOptions o;
    o.model.trainNorms = trainNorms;
    o.model.seed = 3;
    return o;
  }
};

Batch tinyBatch() {
  Batch b;
  b.addSequence({1, 5, 9, 3, 17, 22}, {5, 9, 3, 17, 22, -1});
  b.addSequence({1, 30, 2, 8}, {-1, -1, 8, 4});
  b.addSequence({1, 6, 6}, {6, 6, 2});
  return b;
}

/// Compares forwardBackward's gradients with central differences of loss().
void checkModelGradients(Model &m, double tol) {
  Batch b = tinyBatch();
  m.zeroGrads();
  double l1 = m.forwardBackward(b, 1.0f, nullptr);
  double l2 = m.loss(b);
  EXPECT_NEAR(l1, l2, 1e-4 * std::fabs(l2));
  int checked = 0, index = 0;
  for (auto &p : m.parameters()) {
    ++index;
    Buffer<float> &w = *p.first;
    for (int64_t i = 0; i < w.size(); i += std::max<int64_t>(1, w.size() / 5)) {
      const float eps = 1e-3f, saved = w[i];
      w[i] = saved + eps;
      double up = m.loss(b);
      w[i] = saved - eps;
      double down = m.loss(b);
      w[i] = saved;
      double fd = (up - down) / (2.0 * eps);
      EXPECT_NEAR((*p.second)[i], fd, tol * std::max(1.0, std::fabs(fd)))
          << "parameter " << index - 1 << " element " << i;
      ++checked;
    }
  }
  EXPECT_GT(checked, 20);
}

TEST(Model, LoRAGradientsMatchFiniteDifferencesDense) {
  TinyModel t(R"({"version":1,"default":{"format":"f32","adapter":"lora",
               "rank":2,"alpha":4}})",
              /*trainNorms=*/true);
  ASSERT_TRUE(t.model);
  EXPECT_TRUE(t.model->layers()[0].q().isDense());
  checkModelGradients(*t.model, 2e-2);
}

TEST(Model, LoRAGradientsMatchFiniteDifferencesNF4) {
  TinyModel t(R"({"version":1,"default":{"format":"nf4","block":16,
               "double_quant":false,"adapter":"lora","rank":2,"alpha":4}})");
  ASSERT_TRUE(t.model);
  EXPECT_FALSE(t.model->layers()[0].q().isDense());
  checkModelGradients(*t.model, 2e-2);
}

TEST(Model, MemoryIsAccountedAndReleased) {
  TinyModel t(R"({"version":1,"default":{"format":"f32","adapter":"lora",
               "rank":2,"alpha":4,"dropout":0.1}})");
  ASSERT_TRUE(t.model);
  MemoryTracker &mem = t.mem;
  int64_t before = mem.liveTotal();
  EXPECT_GT(mem.live(MemCategory::Weights), 0);
  EXPECT_GT(mem.live(MemCategory::Adapters), 0);
  EXPECT_EQ(mem.live(MemCategory::Adapters),
            mem.live(MemCategory::Gradients));
  mem.resetPeak();
  Rng rng(1);
  t.model->forwardBackward(tinyBatch(), 1.0f, &rng);
  EXPECT_EQ(mem.liveTotal(), before);
  EXPECT_EQ(mem.live(MemCategory::Activations), 0);
  EXPECT_GT(mem.peakOf(MemCategory::Activations), 0);
  EXPECT_GT(mem.peakOf(MemCategory::Workspace), 0);
  llvm::json::Object o = mem.peakJSON();
  EXPECT_EQ(*o.getInteger("total"), mem.peakTotal());
}

TEST(Model, BadVariantErrorsNameTheProblem) {
  auto v = Variant::open("/nonexistent/model.bin", "", "");
  ASSERT_FALSE(bool(v));
  EXPECT_NE(llvm::toString(v.takeError()).find("/nonexistent/model.bin"),
            std::string::npos);
}

} // namespace
