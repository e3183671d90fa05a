//===- StrategyTest.cpp - genetic operators and strategy pieces --*- C++ -*-===//

#include "TestUtil.h"

#include "mixq/Search/Strategy.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>

using namespace mixq::search;
using namespace mixq::search::testing;

namespace {

SearchSpace space(int layers, std::vector<int64_t> bits,
                  std::vector<int64_t> ranks) {
  llvm::json::Array b, r;
  for (int64_t x : bits)
    b.push_back(x);
  for (int64_t x : ranks)
    r.push_back(x);
  auto s = SearchSpace::fromJSON(
      llvm::json::Object{{"layers", layers}, {"bits", std::move(b)},
                         {"ranks", std::move(r)}},
      "test");
  EXPECT_TRUE(bool(s));
  return *s;
}

TEST(Genetic, OperatorsStayInRange) {
  SearchSpace s = space(8, {2, 4, 8}, {2, 4, 8, 16, 32});
  std::mt19937_64 rng(1);
  for (int i = 0; i < 200; ++i) {
    Configuration a = randomConfig(s, rng), b = randomConfig(s, rng);
    auto [c1, c2] = sbxCrossover(s, a, b, 15, rng);
    Configuration m = polynomialMutation(s, c1, 20, 0.5, rng);
    Configuration l = localMove(s, c2, 3, rng);
    for (const Configuration *c : {&c1, &c2, &m, &l})
      EXPECT_FALSE(bool(validate(s, *c)));
  }
}

TEST(Genetic, SbxOfIdenticalParentsIsTheParent) {
  SearchSpace s = space(4, {4, 8}, {2, 4, 8});
  std::mt19937_64 rng(2);
  Configuration a = randomConfig(s, rng);
  auto [c1, c2] = sbxCrossover(s, a, a, 15, rng);
  EXPECT_EQ(c1, a);
  EXPECT_EQ(c2, a);
}

TEST(Genetic, SbxChildrenAreSymmetricAroundTheParents) {
  // Per gene y1 + y2 = p1 + p2 before rounding: children stay between or
  // near the parents, and their mean is the parents' mean.
  SearchSpace s = space(1, {2, 3, 4, 8, 16, 32}, {2});
  std::mt19937_64 rng(3);
  Configuration a{{1, 0}}, b{{4, 0}};
  double sum = 0;
  for (int i = 0; i < 2000; ++i) {
    auto [c1, c2] = sbxCrossover(s, a, b, 2, rng);
    sum += c1.genes[0] + c2.genes[0];
  }
  EXPECT_NEAR(sum / 2000, 5.0, 0.1);
}

TEST(Genetic, MutationWithProbabilityOneChangesEveryGene) {
  SearchSpace s = space(6, {4, 8}, {2, 4, 8});
  std::mt19937_64 rng(4);
  Configuration a = randomConfig(s, rng);
  Configuration m = polynomialMutation(s, a, 20, 1.0, rng);
  for (int g = 0; g < s.numGenes(); ++g)
    EXPECT_NE(m.genes[g], a.genes[g]) << g;
  Configuration same = polynomialMutation(s, a, 20, 0.0, rng);
  EXPECT_EQ(same, a);
}

TEST(Importance, HigherImportanceGetsHigherOptions) {
  EXPECT_EQ(optionsByImportance({0.1, 0.9, 0.5, 0.3}, 2),
            (std::vector<int>{0, 1, 1, 0}));
  EXPECT_EQ(optionsByImportance({3, 1, 2}, 3), (std::vector<int>{2, 0, 1}));
  // Uniform importance: everyone in the middle.
  EXPECT_EQ(optionsByImportance({1, 1, 1, 1}, 4),
            (std::vector<int>{2, 2, 2, 2}));
  EXPECT_EQ(optionsByImportance({1, 1, 1}, 2), (std::vector<int>{1, 1, 1}));
}

TEST(Importance, FileFormsAndErrors) {
  TempDir tmp;
  StrategySettings s;
  std::string both = tmp.path("imp.json");
  std::ofstream(both) << R"({"importance": [1, 2, 3],
                            "importance_quantized": [3, 2, 1]})";
  ASSERT_FALSE(bool(readImportance(both, 3, s)));
  EXPECT_EQ(s.importance, (std::vector<double>{1, 2, 3}));
  EXPECT_EQ(s.importanceQuantized, (std::vector<double>{3, 2, 1}));
  std::string bare = tmp.path("bare.json");
  std::ofstream(bare) << "[0.5, 0.25]";
  ASSERT_FALSE(bool(readImportance(bare, 2, s)));
  EXPECT_EQ(s.importanceQuantized, (std::vector<double>{0.5, 0.25}));
  llvm::Error wrong = readImportance(bare, 3, s);
  ASSERT_TRUE(bool(wrong));
  EXPECT_NE(llvm::toString(std::move(wrong)).find("has 2 values; the space "
                                                  "has 3 layers"),
            std::string::npos);
  // The runtime's file (mixq-run importance --method entropy): its extra
  // keys are ignored, "importance" serves bits and ranks.
  std::string runtime = tmp.path("runtime.json");
  std::ofstream(runtime) << R"({"version": 1, "method": "entropy",
      "samples": 16, "tokens": 40, "importance": [0.3, -0.1],
      "layers": [{"layer": 0, "score": 0.3}, {"layer": 1, "score": -0.1}],
      "answer_entropy": 2.5, "cross_entropy": [3, 2.7, 2.8],
      "information": [-0.2, -0.3]})";
  ASSERT_FALSE(bool(readImportance(runtime, 2, s)));
  EXPECT_EQ(s.importance, (std::vector<double>{0.3, -0.1}));
  EXPECT_EQ(s.importanceQuantized, (std::vector<double>{0.3, -0.1}));
  std::string bad = tmp.path("bad.json");
  std::ofstream(bad) << "{\"importance\": [1, \"x\"]}";
  llvm::Error e2 = readImportance(bad, 2, s);
  ASSERT_TRUE(bool(e2));
  EXPECT_NE(llvm::toString(std::move(e2)).find(bad), std::string::npos);
}

/// Runs a strategy against an in-memory study (no store), evaluating every
/// proposal immediately with `f`.
struct Sim {
  SearchSpace space;
  StrategySettings settings;
  llvm::json::Object state;
  std::vector<TrialView> trials;
  std::unique_ptr<Strategy> strategy;

  template <typename F> AskResult step(int64_t budget, F f) {
    StrategyContext ctx(space, settings, state);
    ctx.trials = trials;
    for (const TrialView &t : trials)
      ctx.knownKeys.insert(configKey(t.config));
    ctx.remaining = budget - int64_t(trials.size());
    ctx.nextNumber = int64_t(trials.size());
    ctx.rng.seed(trials.size() + 1);
    auto r = strategy->ask(ctx);
    EXPECT_TRUE(bool(r)) << llvm::toString(r.takeError());
    for (const Proposal &p : r->proposals) {
      TrialView t;
      t.number = int64_t(trials.size());
      t.state = TrialState::Complete;
      t.stage = p.stage;
      t.config = p.config;
      auto [perf, mem] = f(p.config);
      t.performance = perf;
      t.memory = mem;
      t.hasResult = true;
      trials.push_back(t);
    }
    return *r;
  }
};

TEST(Strategies, QRAdaptorStage1FollowsTheImportance) {
  Sim sim{space(4, {4, 8}, {2, 4, 8, 16}), {}, {}, {}, nullptr};
  sim.settings.name = "qr-adaptor";
  sim.settings.importance = {0.1, 0.9, 0.8, 0.2};
  sim.settings.importanceQuantized = {4, 3, 2, 1};
  sim.strategy = std::move(*createStrategy(sim.settings));
  AskResult r = sim.step(10, [](const Configuration &) {
    return std::make_pair(0.5, 1.0);
  });
  ASSERT_EQ(r.proposals.size(), 1u);
  EXPECT_EQ(r.proposals[0].stage, "qr:init");
  const SearchSpace &s = sim.space;
  const Configuration &c = r.proposals[0].config;
  std::vector<int64_t> bits, ranks;
  for (int l = 0; l < 4; ++l) {
    bits.push_back(layerBits(s, c, l));
    ranks.push_back(layerRank(s, c, l));
  }
  EXPECT_EQ(bits, (std::vector<int64_t>{4, 8, 8, 4}));
  EXPECT_EQ(ranks, (std::vector<int64_t>{16, 8, 4, 2}));
}

TEST(Strategies, QRAdaptorStage1UsesImportanceMeasuredIntoTheState) {
  // --importance auto: the worker stores the measured vectors in the
  // strategy state; they take precedence over (empty) settings.
  Sim sim{space(4, {4, 8}, {2, 4, 8, 16}), {}, {}, {}, nullptr};
  sim.settings.name = "qr-adaptor";
  sim.settings.importanceAuto = true;
  auto parsed = llvm::json::parse(R"({"importance": [0.9, 0.1, 0.2, 0.8],
      "importance_quantized": [1, 2, 3, 4], "method": "entropy"})");
  ASSERT_TRUE(bool(parsed));
  sim.state[kMeasuredImportanceKey] = std::move(*parsed);
  sim.strategy = std::move(*createStrategy(sim.settings));
  AskResult r = sim.step(10, [](const Configuration &) {
    return std::make_pair(0.5, 1.0);
  });
  ASSERT_EQ(r.proposals.size(), 1u);
  const SearchSpace &s = sim.space;
  const Configuration &c = r.proposals[0].config;
  std::vector<int64_t> bits, ranks;
  for (int l = 0; l < 4; ++l) {
    bits.push_back(layerBits(s, c, l));
    ranks.push_back(layerRank(s, c, l));
  }
  EXPECT_EQ(bits, (std::vector<int64_t>{8, 4, 4, 8}));
  EXPECT_EQ(ranks, (std::vector<int64_t>{2, 4, 8, 16}));
  // The setting survives the study's JSON round trip.
  auto back = StrategySettings::fromJSON(sim.settings.toJSON(), "x");
  ASSERT_TRUE(bool(back));
  EXPECT_TRUE(back->importanceAuto);
}

TEST(Strategies, AutoMixQStopsWhenTheFrontIsStable) {
  Sim sim{space(3, {4, 8}, {8}), {}, {}, {}, nullptr};
  sim.settings.name = "automixq";
  sim.settings.initial = 3;
  sim.settings.patience = 2;
  sim.settings.candidates = 50;
  sim.strategy = std::move(*createStrategy(sim.settings));
  // A flat objective: the first trials' front never changes.
  auto flat = [](const Configuration &) { return std::make_pair(0.5, 1.0); };
  bool finished = false;
  int steps = 0;
  while (!finished && steps < 20) {
    finished = sim.step(100, flat).finished;
    ++steps;
  }
  EXPECT_TRUE(finished);
  EXPECT_LE(sim.trials.size(), 6u);
}

TEST(Strategies, AutoMixQPrefersMemoryForSmallLambda) {
  // P and M both grow with bits; with lambda = 0 the choice minimises M.
  for (double lambda : {0.0, 50.0}) {
    Sim sim{space(6, {4, 8}, {8}), {}, {}, {}, nullptr};
    sim.settings.name = "automixq";
    sim.settings.initial = 4;
    sim.settings.lambda = lambda;
    sim.settings.kappa = 0;
    sim.settings.patience = 100;
    sim.strategy = std::move(*createStrategy(sim.settings));
    auto f = [&](const Configuration &c) {
      double p = 0, m = 0;
      for (int l = 0; l < 6; ++l) {
        p += layerBits(sim.space, c, l) == 8 ? 1 + 0.1 * l : 0;
        m += layerBits(sim.space, c, l) == 8 ? 2 : 1;
      }
      return std::make_pair(p, m);
    };
    sim.step(30, f); // the initial random trials
    for (int i = 0; i < 3; ++i) {
      sim.step(30, f);
      const TrialView &last = sim.trials.back();
      EXPECT_EQ(last.stage, "automixq:gp");
      int eights = 0;
      for (int l = 0; l < 6; ++l)
        eights += layerBits(sim.space, last.config, l) == 8;
      if (lambda == 0)
        EXPECT_LE(eights, 1) << "lambda 0 should pick low memory";
      else
        EXPECT_GE(eights, 5) << "large lambda should pick high accuracy";
    }
  }
}

TEST(Strategies, ExhaustiveCoversTheSpaceAndRefusesHugeOnes) {
  Sim sim{space(2, {4, 8}, {2, 4}), {}, {}, {}, nullptr};
  sim.settings.name = "exhaustive";
  sim.strategy = std::move(*createStrategy(sim.settings));
  auto f = [](const Configuration &) { return std::make_pair(0.5, 1.0); };
  while (!sim.step(1000, f).finished) {
  }
  EXPECT_EQ(sim.trials.size(), 16u);
  Sim big{space(40, {4, 8}, {2, 4}), {}, {}, {}, nullptr};
  big.settings.name = "exhaustive";
  big.strategy = std::move(*createStrategy(big.settings));
  StrategyContext ctx(big.space, big.settings, big.state);
  ctx.remaining = 10;
  auto r = big.strategy->ask(ctx);
  ASSERT_FALSE(bool(r));
  EXPECT_NE(llvm::toString(r.takeError()).find("at most 10^7"),
            std::string::npos);
}

TEST(Strategies, SettingsRoundTripAndBadNames) {
  StrategySettings s;
  s.name = "qr-adaptor";
  s.stages = {2, 3};
  s.alpha = 0.25;
  s.importance = {1, 2};
  auto back = StrategySettings::fromJSON(s.toJSON(), "x");
  ASSERT_TRUE(bool(back));
  EXPECT_EQ(back->stages, s.stages);
  EXPECT_EQ(back->alpha, 0.25);
  EXPECT_EQ(back->importance, s.importance);
  s.name = "nsga3";
  auto bad = createStrategy(s);
  ASSERT_FALSE(bool(bad));
  EXPECT_NE(llvm::toString(bad.takeError()).find("unknown strategy 'nsga3'"),
            std::string::npos);
  s.name = "qr-adaptor";
  s.stages = {4};
  auto badStage = createStrategy(s);
  ASSERT_FALSE(bool(badStage));
  EXPECT_NE(llvm::toString(badStage.takeError()).find("stage 4"),
            std::string::npos);
}

} // namespace
