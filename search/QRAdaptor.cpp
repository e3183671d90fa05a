//===- QRAdaptor.cpp - three-stage QR-Adaptor search -------------*- C++ -*-===//
//
// Stage 1 (qr:init): bits from the per-layer importance I(l) of the original
// model, ranks from the importance re-measured on the quantized model (for
// external objectives: the --importance file, else uniform); one trial.
// Stage 2 (qr:prga): PRGA. An initial population of `population` controlled
// random variations of the stage-1 configuration (random ones without stage
// 1), then per generation `offspring` children by binary tournament on
// (Pareto rank, crowding distance), SBX crossover and polynomial mutation on
// the integer (bits, rank) option indices, and elitist selection of the
// merged parents and children (Algorithms 1 and 2). Without stage 3 the
// generations continue until the budget is spent.
// Stage 3 (qr:bo): Bayesian optimisation of y = alpha z(P) - (1 - alpha)
// z(M): a GP (RBF) on the Pareto front of the earlier stages plus every BO
// trial, Expected Improvement over a random local search around the
// incumbent; until the budget is spent.
//
// The state machine lives in the strategy state ("phase", "init",
// "population", "offspring", "generation", "bo_seeds"), so any worker can
// continue it.
//
//===----------------------------------------------------------------------===//

#include "StrategyImpl.h"

#include "mixq/Search/GaussianProcess.h"
#include "mixq/Search/Pareto.h"

#include "llvm/ADT/STLExtras.h"

#include <algorithm>
#include <cmath>
#include <limits>

using namespace mixq::search;
using Eigen::MatrixXd;
using Eigen::VectorXd;

namespace {

class QRAdaptorStrategy : public Strategy {
public:
  explicit QRAdaptorStrategy(const StrategySettings &s) : st(s) {}
  llvm::Expected<AskResult> ask(StrategyContext &ctx) override;

private:
  bool has(int stage) const { return llvm::is_contained(st.stages, stage); }
  /// One step of a phase. Returns true when the phase moved on and the
  /// next phase should run in the same ask.
  llvm::Expected<bool> stepInit(StrategyContext &ctx, AskResult &r);
  llvm::Expected<bool> stepPopulation(StrategyContext &ctx, AskResult &r);
  llvm::Expected<bool> stepGeneration(StrategyContext &ctx, AskResult &r);
  llvm::Expected<bool> stepBO(StrategyContext &ctx, AskResult &r);
  Configuration initialConfig(const SearchSpace &s,
                              const llvm::json::Object &state) const;
  bool anyPending(StrategyContext &ctx, const std::vector<int64_t> &nums) const;
  std::vector<int64_t> propose(StrategyContext &ctx, AskResult &r,
                               std::vector<Configuration> configs,
                               llvm::StringRef stage) const;
  /// Picks `count` distinct-enough children of `pop` (resolved trials).
  std::vector<Configuration>
  breed(StrategyContext &ctx, const std::vector<const TrialView *> &pop,
        int count) const;

  StrategySettings st;
};

Configuration
QRAdaptorStrategy::initialConfig(const SearchSpace &s,
                                 const llvm::json::Object &state) const {
  std::vector<double> uniform(s.numLayers, 1.0);
  // Importance measured by the worker (--importance auto) lives in the
  // strategy state; a given file in the settings.
  std::vector<double> imp = st.importance, impQ = st.importanceQuantized;
  if (const llvm::json::Object *m = state.getObject(kMeasuredImportanceKey)) {
    auto read = [&](llvm::StringRef key, std::vector<double> &out) {
      if (const llvm::json::Array *a = m->getArray(key)) {
        out.clear();
        for (const llvm::json::Value &v : *a)
          out.push_back(v.getAsNumber().value_or(0.0));
      }
    };
    read("importance", imp);
    read("importance_quantized", impQ);
  }
  if (int64_t(imp.size()) != s.numLayers)
    imp = uniform;
  if (int64_t(impQ.size()) != s.numLayers)
    impQ = uniform;
  std::vector<int> bits = optionsByImportance(imp, int(s.bits.size()));
  std::vector<int> ranks = optionsByImportance(impQ, int(s.ranks.size()));
  Configuration c = uniformConfig(s, 0, 0, 0);
  for (int l = 0; l < s.numLayers; ++l) {
    c.genes[l * s.genesPerLayer()] = bits[l];
    c.genes[l * s.genesPerLayer() + 1] = ranks[l];
  }
  return c;
}

bool QRAdaptorStrategy::anyPending(StrategyContext &ctx,
                                   const std::vector<int64_t> &nums) const {
  for (int64_t n : nums) {
    const TrialView *t = ctx.resolve(n);
    if (t && (t->state == TrialState::Waiting ||
              t->state == TrialState::Running))
      return true;
  }
  return false;
}

std::vector<int64_t>
QRAdaptorStrategy::propose(StrategyContext &ctx, AskResult &r,
                           std::vector<Configuration> configs,
                           llvm::StringRef stage) const {
  std::vector<int64_t> nums;
  for (Configuration &c : configs) {
    if (int64_t(r.proposals.size()) >= ctx.remaining)
      break;
    nums.push_back(ctx.nextNumber + int64_t(r.proposals.size()));
    ctx.knownKeys.insert(configKey(c));
    r.proposals.push_back({std::move(c), stage.str()});
  }
  return nums;
}

llvm::Expected<bool> QRAdaptorStrategy::stepInit(StrategyContext &ctx,
                                                 AskResult &r) {
  if (!ctx.state.get("init")) {
    Configuration c = initialConfig(ctx.space, ctx.state);
    std::vector<int64_t> n = propose(ctx, r, {c}, "qr:init");
    if (n.empty()) { // already evaluated (e.g. enqueued): reuse it
      for (const TrialView &t : ctx.trials)
        if (t.config == c && !t.lost)
          n.push_back(t.number);
    }
    ctx.state["init"] = n.empty() ? int64_t(-1) : n.front();
    return false;
  }
  if (anyPending(ctx, {*ctx.state.getInteger("init")}))
    return false;
  ctx.state["phase"] = has(2) ? "prga-pop" : has(3) ? "bo" : "done";
  return true;
}

llvm::Expected<bool> QRAdaptorStrategy::stepPopulation(StrategyContext &ctx,
                                                       AskResult &r) {
  const SearchSpace &s = ctx.space;
  if (!ctx.state.get("population")) {
    std::vector<int64_t> members;
    std::optional<Configuration> base;
    if (const TrialView *t =
            ctx.resolve(ctx.state.getInteger("init").value_or(-1))) {
      base = t->config;
      members.push_back(t->number);
    }
    int maxMoves = std::max(1, s.numGenes() / 4);
    std::uniform_int_distribution<int> moves(1, maxMoves);
    int want = std::max(0, st.population - int(members.size()));
    std::vector<Configuration> configs = freshConfigs(ctx, want, [&] {
      return base ? localMove(s, *base, moves(ctx.rng), ctx.rng)
                  : randomConfig(s, ctx.rng);
    });
    for (int64_t n : propose(ctx, r, std::move(configs), "qr:prga"))
      members.push_back(n);
    ctx.state["population"] = toJSONArray(members);
    ctx.state["generation"] = 0;
    return false;
  }
  if (anyPending(ctx, numbersOf(ctx.state, "population")))
    return false;
  ctx.state["phase"] = "prga-gen";
  return true;
}

std::vector<Configuration>
QRAdaptorStrategy::breed(StrategyContext &ctx,
                         const std::vector<const TrialView *> &pop,
                         int count) const {
  const SearchSpace &s = ctx.space;
  std::vector<ObjectiveVector> objs;
  for (const TrialView *t : pop)
    objs.push_back({t->memory, -t->performance});
  std::vector<int> rank = paretoRanks(objs);
  std::vector<double> crowd(pop.size(), 0.0);
  for (int r = 1; r <= int(pop.size()); ++r) {
    std::vector<int> layer;
    for (int i = 0; i < int(pop.size()); ++i)
      if (rank[i] == r)
        layer.push_back(i);
    std::vector<double> d = crowdingDistance(objs, layer);
    for (size_t k = 0; k < layer.size(); ++k)
      crowd[layer[k]] = d[k];
  }
  auto tournament = [&]() -> const Configuration & {
    int a = int(ctx.rng() % pop.size()), b = int(ctx.rng() % pop.size());
    bool aWins = rank[a] < rank[b] || (rank[a] == rank[b] && crowd[a] >= crowd[b]);
    return pop[aWins ? a : b]->config;
  };
  double pm = st.mutationProb > 0 ? st.mutationProb : 1.0 / s.numGenes();
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::vector<Configuration> pending;
  return freshConfigs(ctx, count, [&]() -> Configuration {
    if (pending.empty()) {
      auto [c1, c2] =
          unit(ctx.rng) < 0.9
              ? sbxCrossover(s, tournament(), tournament(), st.crossoverEta,
                             ctx.rng)
              : std::make_pair(tournament(), tournament());
      pending.push_back(polynomialMutation(s, c1, st.mutationEta, pm, ctx.rng));
      pending.push_back(polynomialMutation(s, c2, st.mutationEta, pm, ctx.rng));
    }
    Configuration c = pending.back();
    pending.pop_back();
    return c;
  });
}

llvm::Expected<bool> QRAdaptorStrategy::stepGeneration(StrategyContext &ctx,
                                                       AskResult &r) {
  std::vector<int64_t> popNums = numbersOf(ctx.state, "population");
  if (ctx.state.get("offspring")) {
    std::vector<int64_t> kids = numbersOf(ctx.state, "offspring");
    if (anyPending(ctx, kids))
      return false;
    // Elitist selection over parents and children with results.
    std::vector<const TrialView *> merged;
    for (int64_t n : popNums)
      if (const TrialView *t = ctx.resolve(n); t && t->hasResult)
        merged.push_back(t);
    for (int64_t n : kids)
      if (const TrialView *t = ctx.resolve(n); t && t->hasResult)
        merged.push_back(t);
    std::vector<ObjectiveVector> objs;
    for (const TrialView *t : merged)
      objs.push_back({t->memory, -t->performance});
    std::vector<int64_t> next;
    for (int i : elitistSelect(objs, st.population))
      next.push_back(merged[i]->number);
    ctx.state["population"] = toJSONArray(next);
    ctx.state.erase("offspring");
    ctx.state["generation"] = ctx.state.getInteger("generation").value_or(0) + 1;
    popNums = next;
  }
  int64_t gen = ctx.state.getInteger("generation").value_or(0);
  if (has(3) && gen >= st.generations) {
    ctx.state["phase"] = "bo";
    return true;
  }
  std::vector<const TrialView *> pop;
  for (int64_t n : popNums)
    if (const TrialView *t = ctx.resolve(n); t && t->hasResult)
      pop.push_back(t);
  if (pop.empty()) {
    // Every member failed: restart the population from random ones.
    ctx.state.erase("population");
    ctx.state.erase("init");
    ctx.state["phase"] = "prga-pop";
    return true;
  }
  std::vector<Configuration> kids = breed(ctx, pop, st.offspring);
  if (kids.empty()) { // no new children: the neighbourhood is exhausted
    ctx.state["phase"] = has(3) ? "bo" : "done";
    return true;
  }
  ctx.state["offspring"] = toJSONArray(propose(ctx, r, kids, "qr:prga"));
  return false;
}

llvm::Expected<bool> QRAdaptorStrategy::stepBO(StrategyContext &ctx,
                                               AskResult &r) {
  const SearchSpace &s = ctx.space;
  if (!has(2) && !ctx.state.get("bo_seeds")) {
    std::optional<Configuration> base;
    if (const TrialView *t =
            ctx.resolve(ctx.state.getInteger("init").value_or(-1)))
      base = t->config;
    std::uniform_int_distribution<int> moves(1, std::max(1, s.numGenes() / 4));
    std::vector<Configuration> seeds = freshConfigs(ctx, st.boInit, [&] {
      return base ? localMove(s, *base, moves(ctx.rng), ctx.rng)
                  : randomConfig(s, ctx.rng);
    });
    ctx.state["bo_seeds"] = toJSONArray(propose(ctx, r, seeds, "qr:bo"));
    return false;
  }
  if (anyPending(ctx, numbersOf(ctx.state, "bo_seeds")))
    return false;
  // Training set: the front of the earlier stages, then every BO trial.
  std::vector<const TrialView *> earlier, train;
  for (const TrialView &t : ctx.trials)
    if (t.hasResult && t.stage != "qr:bo")
      earlier.push_back(&t);
  std::vector<MPPoint> pts;
  for (const TrialView *t : earlier)
    pts.push_back({t->memory, t->performance});
  for (int i : paretoFront(pts))
    train.push_back(earlier[i]);
  for (const TrialView &t : ctx.trials)
    if (t.hasResult && t.stage == "qr:bo")
      train.push_back(&t);
  if (train.empty()) {
    if (ctx.pending() > 0)
      return false;
    std::vector<Configuration> c =
        freshConfigs(ctx, 1, [&] { return randomConfig(s, ctx.rng); });
    if (c.empty())
      ctx.state["phase"] = "done";
    propose(ctx, r, c, "qr:bo");
    return false;
  }
  // y = alpha z(P) - (1 - alpha) z(M) over the training set.
  int n = int(train.size());
  VectorXd p(n), m(n);
  std::vector<Configuration> configs;
  for (int i = 0; i < n; ++i) {
    p[i] = train[i]->performance;
    m[i] = train[i]->memory;
    configs.push_back(train[i]->config);
  }
  auto z = [](const VectorXd &v) -> VectorXd {
    double mu = v.mean();
    double sd = std::sqrt((v.array() - mu).square().mean());
    return (v.array() - mu) / (sd > 0 ? sd : 1.0);
  };
  VectorXd y = st.alpha * z(p) - (1.0 - st.alpha) * z(m);
  int inc = 0;
  y.maxCoeff(&inc);
  GaussianProcess gp;
  gp.setInputBounds(VectorXd::Zero(s.numGenes()), VectorXd::Ones(s.numGenes()));
  gp.setSinglePrecisionKernel(true);
  GPFitOptions opts;
  opts.seed = ctx.rng();
  if (auto err = gp.fit(featureMatrix(s, configs), y, opts))
    return std::move(err);
  std::uniform_int_distribution<int> moves(1, 3);
  std::vector<Configuration> cands = freshConfigs(ctx, st.localCandidates, [&] {
    return localMove(s, train[inc]->config, moves(ctx.rng), ctx.rng);
  });
  if (cands.size() < 8) { // the neighbourhood is used up: widen
    std::vector<Configuration> more = freshConfigs(
        ctx, st.localCandidates, [&] { return randomConfig(s, ctx.rng); });
    cands.insert(cands.end(), more.begin(), more.end());
  }
  if (cands.empty()) {
    ctx.state["phase"] = "done";
    return true;
  }
  VectorXd mean, var;
  gp.predict(featureMatrix(s, cands), mean, var);
  int best = 0;
  double bestEI = -1;
  for (int i = 0; i < int(cands.size()); ++i) {
    double ei = expectedImprovement(mean[i], std::sqrt(var[i]), y[inc]);
    if (ei > bestEI) {
      bestEI = ei;
      best = i;
    }
  }
  propose(ctx, r, {cands[best]}, "qr:bo");
  return false;
}

llvm::Expected<AskResult> QRAdaptorStrategy::ask(StrategyContext &ctx) {
  AskResult r;
  if (!ctx.state.get("phase"))
    ctx.state["phase"] = has(1) ? "init" : has(2) ? "prga-pop" : "bo";
  for (int guard = 0; guard < 16; ++guard) {
    std::string phase = ctx.state.getString("phase").value_or("done").str();
    llvm::Expected<bool> moved = false;
    if (phase == "init")
      moved = stepInit(ctx, r);
    else if (phase == "prga-pop")
      moved = stepPopulation(ctx, r);
    else if (phase == "prga-gen")
      moved = stepGeneration(ctx, r);
    else if (phase == "bo")
      moved = stepBO(ctx, r);
    else {
      r.finished = r.proposals.empty();
      return r;
    }
    if (!moved)
      return moved.takeError();
    if (!*moved || !r.proposals.empty())
      return r;
  }
  return r;
}

} // namespace

llvm::Expected<std::unique_ptr<Strategy>>
mixq::search::createQRAdaptorStrategy(const StrategySettings &settings) {
  if (settings.stages.empty())
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "qr-adaptor: --stages lists no stage");
  for (int s : settings.stages)
    if (s < 1 || s > 3)
      return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                     "qr-adaptor: stage %d does not exist "
                                     "(stages are 1, 2, 3)",
                                     s);
  if (settings.population < 2 || settings.offspring < 1 ||
      settings.generations < 0 || settings.localCandidates < 1 ||
      !(settings.alpha >= 0 && settings.alpha <= 1))
    return llvm::createStringError(
        llvm::inconvertibleErrorCode(),
        "qr-adaptor: needs --population >= 2, --offspring >= 1, "
        "--generations >= 0, --local-candidates >= 1, 0 <= --alpha <= 1");
  return std::unique_ptr<Strategy>(new QRAdaptorStrategy(settings));
}
