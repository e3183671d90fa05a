//===- StrategiesBench.cpp - strategies' hypervolume at a fixed budget -*- C++ -*-===//
//
// Runs every strategy (random, AutoMixQ, QR-Adaptor with and without the
// true importance, and an NSGA-II baseline built from the same genetic
// operators) on three problems at the same trial budget, several seeds each,
// and prints the mean and standard deviation of the final hypervolume, plus
// the mean hypervolume after each quarter of the budget.
//
// Problems (objectives mapped to MixQ's (M minimised, P maximised)):
//   zdt1, zdt2   ZDT1/ZDT2 (Zitzler, Deb, Thiele 2000) on 20 variables, each a
//                gene with 6 levels x = index / 5; M = f1, P = -f2;
//                reference point M = 1.1, P = -11.
//   layers       a separable per-layer (bits, rank) problem: 16 layers,
//                bits {2,3,4,8,16}, ranks {2,4,8,16,32}; layer l has weight
//                w_l (importance) and size s_l; P = sum w_l q(bits) a(rank) /
//                sum w_l with q(b) = 1 - 2^(-b/2), a(r) = 1 - 0.5/(1 + r);
//                M = sum s_l (bits_l / 16 + rank_l / 64); reference M = 1.1 x
//                the largest M, P = 0.
//
// Usage: mixq-bench-strategies [--budget N] [--seeds K] [--problem NAME]
//
//===----------------------------------------------------------------------===//

#include "mixq/Search/Pareto.h"
#include "mixq/Search/Strategy.h"

#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <numeric>
#include <set>

using namespace mixq::search;

namespace {

using Eval = std::function<MPPoint(const SearchSpace &, const Configuration &)>;

struct Problem {
  std::string name;
  SearchSpace space;
  Eval eval;
  MPPoint ref;
  std::vector<double> importance; ///< for qr-adaptor+importance
};

SearchSpace makeSpace(int layers, std::vector<int64_t> bits,
                      std::vector<int64_t> ranks) {
  llvm::json::Array b, r;
  for (int64_t x : bits)
    b.push_back(x);
  for (int64_t x : ranks)
    r.push_back(x);
  auto s = SearchSpace::fromJSON(
      llvm::json::Object{{"layers", layers}, {"bits", std::move(b)},
                         {"ranks", std::move(r)}},
      "bench");
  if (!s) {
    llvm::errs() << llvm::toString(s.takeError()) << "\n";
    std::exit(1);
  }
  return *s;
}

Problem zdt(bool second) {
  Problem p;
  p.name = second ? "zdt2" : "zdt1";
  p.space = makeSpace(10, {2, 3, 4, 8, 16, 32}, {2, 4, 8, 16, 32, 64});
  p.eval = [second](const SearchSpace &s, const Configuration &c) {
    Eigen::VectorXd x = features(s, c);
    int n = int(x.size());
    double f1 = x[0];
    double g = 1 + 9.0 * (x.sum() - x[0]) / (n - 1);
    double h = second ? 1 - (f1 / g) * (f1 / g) : 1 - std::sqrt(f1 / g);
    return MPPoint{f1, -g * h};
  };
  p.ref = {1.1, -11};
  return p;
}

Problem layers() {
  Problem p;
  p.name = "layers";
  int n = 16;
  p.space = makeSpace(n, {2, 3, 4, 8, 16}, {2, 4, 8, 16, 32});
  std::vector<double> w(n), size(n);
  for (int l = 0; l < n; ++l) {
    w[l] = 0.2 + std::pow(std::sin(M_PI * (l + 0.5) / n), 2) +
           (l == 0 || l == n - 1 ? 1.0 : 0.0);
    size[l] = 1.0 + 0.5 * std::cos(0.7 * l);
  }
  p.importance = w;
  p.eval = [w, size](const SearchSpace &s, const Configuration &c) {
    double perf = 0, mem = 0, wsum = 0;
    for (int l = 0; l < s.numLayers; ++l) {
      double b = double(layerBits(s, c, l)), r = double(layerRank(s, c, l));
      perf += w[l] * (1 - std::pow(2.0, -b / 2)) * (1 - 0.5 / (1 + r));
      wsum += w[l];
      mem += size[l] * (b / 16 + r / 64);
    }
    return MPPoint{mem, perf / wsum};
  };
  double maxMem = 0;
  for (int l = 0; l < n; ++l)
    maxMem += size[l] * (16.0 / 16 + 32.0 / 64);
  p.ref = {1.1 * maxMem, 0};
  return p;
}

/// Hypervolume after each trial of one run.
using Curve = std::vector<double>;

Curve runStrategy(const Problem &prob, StrategySettings settings,
                  int budget) {
  auto strategy = createStrategy(settings);
  if (!strategy) {
    llvm::errs() << llvm::toString(strategy.takeError()) << "\n";
    std::exit(1);
  }
  llvm::json::Object state;
  std::vector<TrialView> trials;
  std::vector<MPPoint> pts;
  Curve curve;
  for (int asks = 0; int(trials.size()) < budget && asks < 10 * budget;
       ++asks) {
    StrategyContext ctx(prob.space, settings, state);
    ctx.trials = trials;
    for (const TrialView &t : trials)
      ctx.knownKeys.insert(configKey(t.config));
    ctx.remaining = budget - int64_t(trials.size());
    ctx.nextNumber = int64_t(trials.size());
    ctx.rng.seed(settings.seed * 0x9E3779B97F4A7C15ULL + uint64_t(asks));
    auto r = (*strategy)->ask(ctx);
    if (!r) {
      llvm::errs() << llvm::toString(r.takeError()) << "\n";
      std::exit(1);
    }
    for (const Proposal &p : r->proposals) {
      MPPoint v = prob.eval(prob.space, p.config);
      TrialView t;
      t.number = int64_t(trials.size());
      t.state = TrialState::Complete;
      t.stage = p.stage;
      t.config = p.config;
      t.performance = v.performance;
      t.memory = v.memory;
      t.hasResult = true;
      trials.push_back(t);
      pts.push_back(v);
      curve.push_back(hypervolume2D(pts, prob.ref));
    }
    if (r->finished)
      break;
  }
  while (int(curve.size()) < budget) // finished early: the front stays
    curve.push_back(curve.empty() ? 0 : curve.back());
  return curve;
}

/// NSGA-II (Deb et al. 2002) with the library's operators: population and
/// offspring `pop`, binary tournament on (rank, crowding), SBX (p = 0.9)
/// and polynomial mutation (1 / genes), elitist selection.
Curve runNSGA2(const Problem &prob, uint64_t seed, int budget, int pop) {
  const SearchSpace &s = prob.space;
  std::mt19937_64 rng(seed * 7919 + 13);
  std::vector<Configuration> popConfigs;
  std::vector<MPPoint> popVals, all;
  std::set<std::string> seen;
  Curve curve;
  auto evaluate = [&](const Configuration &c) {
    MPPoint v = prob.eval(s, c);
    all.push_back(v);
    curve.push_back(hypervolume2D(all, prob.ref));
    return v;
  };
  for (int i = 0; i < pop && int(curve.size()) < budget; ++i) {
    Configuration c = randomConfig(s, rng);
    if (!seen.insert(configKey(c)).second) {
      --i;
      continue;
    }
    popConfigs.push_back(c);
    popVals.push_back(evaluate(c));
  }
  std::uniform_real_distribution<double> unit(0, 1);
  while (int(curve.size()) < budget) {
    std::vector<ObjectiveVector> objs;
    for (const MPPoint &v : popVals)
      objs.push_back({v.memory, -v.performance});
    std::vector<int> rank = paretoRanks(objs);
    std::vector<double> crowd(objs.size());
    for (int r = 1; r <= int(objs.size()); ++r) {
      std::vector<int> layer;
      for (int i = 0; i < int(objs.size()); ++i)
        if (rank[i] == r)
          layer.push_back(i);
      std::vector<double> d = crowdingDistance(objs, layer);
      for (size_t k = 0; k < layer.size(); ++k)
        crowd[layer[k]] = d[k];
    }
    auto pick = [&]() -> const Configuration & {
      int a = int(rng() % objs.size()), b = int(rng() % objs.size());
      bool aw = rank[a] < rank[b] || (rank[a] == rank[b] && crowd[a] >= crowd[b]);
      return popConfigs[aw ? a : b];
    };
    std::vector<Configuration> kids;
    for (int tries = 0; int(kids.size()) < pop && tries < 50 * pop; ++tries) {
      auto [c1, c2] = unit(rng) < 0.9 ? sbxCrossover(s, pick(), pick(), 15, rng)
                                      : std::make_pair(pick(), pick());
      for (Configuration c : {c1, c2}) {
        c = polynomialMutation(s, c, 20, 1.0 / s.numGenes(), rng);
        if (int(kids.size()) < pop && seen.insert(configKey(c)).second)
          kids.push_back(c);
      }
    }
    if (kids.empty())
      break;
    for (const Configuration &c : kids) {
      if (int(curve.size()) >= budget)
        break;
      popConfigs.push_back(c);
      popVals.push_back(evaluate(c));
    }
    std::vector<ObjectiveVector> merged;
    for (const MPPoint &v : popVals)
      merged.push_back({v.memory, -v.performance});
    std::vector<Configuration> nextC;
    std::vector<MPPoint> nextV;
    for (int i : elitistSelect(merged, pop)) {
      nextC.push_back(popConfigs[i]);
      nextV.push_back(popVals[i]);
    }
    popConfigs = nextC;
    popVals = nextV;
  }
  while (int(curve.size()) < budget)
    curve.push_back(curve.empty() ? 0 : curve.back());
  return curve;
}

} // namespace

int main(int argc, char **argv) {
  int budget = 100, seeds = 5;
  std::string only;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--budget"))
      budget = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--seeds"))
      seeds = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--problem"))
      only = argv[i + 1];
  }
  std::vector<Problem> problems = {zdt(false), zdt(true), layers()};
  llvm::outs() << llvm::formatv("budget {0} trials, {1} seeds; hypervolume "
                                "mean (std) at 25/50/75/100% of the budget\n\n",
                                budget, seeds);
  llvm::outs() << "| problem | strategy | HV@25% | HV@50% | HV@75% | HV@100% "
                  "(std) | seconds/run |\n|---|---|---|---|---|---|---|\n";
  for (const Problem &prob : problems) {
    if (!only.empty() && prob.name != only)
      continue;
    std::vector<std::string> names = {"random", "nsga2", "automixq",
                                      "qr-adaptor"};
    if (!prob.importance.empty())
      names.push_back("qr-adaptor+importance");
    for (const std::string &name : names) {
      std::vector<Curve> curves;
      auto start = std::chrono::steady_clock::now();
      for (int seed = 1; seed <= seeds; ++seed) {
        if (name == "nsga2") {
          curves.push_back(runNSGA2(prob, seed, budget, 10));
          continue;
        }
        StrategySettings st;
        st.name = name == "qr-adaptor+importance" ? "qr-adaptor" : name;
        st.seed = seed;
        st.initial = 10;
        st.patience = budget; // same budget for all: no early stop
        st.population = 10;
        st.offspring = 10;
        st.generations = 4;
        if (name == "qr-adaptor+importance") {
          st.importance = prob.importance;
          st.importanceQuantized = prob.importance;
        }
        curves.push_back(runStrategy(prob, st, budget));
      }
      double secs = std::chrono::duration<double>(
                        std::chrono::steady_clock::now() - start)
                        .count() /
                    seeds;
      auto meanAt = [&](int t) {
        double m = 0;
        for (const Curve &c : curves)
          m += c[t - 1] / curves.size();
        return m;
      };
      double mean = meanAt(budget), var = 0;
      for (const Curve &c : curves)
        var += std::pow(c.back() - mean, 2) / curves.size();
      llvm::outs() << llvm::formatv(
          "| {0} | {1} | {2:f4} | {3:f4} | {4:f4} | {5:f4} ({6:f4}) | {7:f2} "
          "|\n",
          prob.name, name, meanAt(budget / 4), meanAt(budget / 2),
          meanAt(3 * budget / 4), mean, std::sqrt(var), secs);
      llvm::outs().flush();
    }
  }
  return 0;
}
