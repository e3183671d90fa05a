//===- AutoMixQ.cpp - GP performance model + Pareto + argmin M - lambda P -*- C++ -*-===//
//
// AutoMixQ's loop (paper section 3.3): evaluate `initial` random
// configurations; then, each step, fit GP models of P(q) and of M(q)
// (memory is not known statically for an external objective), predict a pool
// of candidates (random ones and neighbours of the current front), build the
// Pareto front over the predictions and the measured data, and pick the
// candidate on that front minimising M - lambda P (both normalised to [0, 1]
// by the measured range; P scored optimistically as mean + kappa sigma).
// Stop when the measured front is unchanged for `patience` steps, or at the
// budget.
//
//===----------------------------------------------------------------------===//

#include "StrategyImpl.h"

#include "mixq/Search/GaussianProcess.h"
#include "mixq/Search/Pareto.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FormatVariadic.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

using namespace mixq::search;
using Eigen::MatrixXd;
using Eigen::VectorXd;

Eigen::MatrixXd
mixq::search::featureMatrix(const SearchSpace &s,
                            const std::vector<Configuration> &configs) {
  MatrixXd x(configs.size(), s.numGenes());
  for (size_t i = 0; i < configs.size(); ++i)
    x.row(i) = features(s, configs[i]).transpose();
  return x;
}

std::vector<int64_t> mixq::search::numbersOf(const llvm::json::Object &state,
                                             llvm::StringRef key) {
  std::vector<int64_t> out;
  if (const llvm::json::Array *a = state.getArray(key))
    for (const llvm::json::Value &v : *a)
      if (auto i = v.getAsInteger())
        out.push_back(*i);
  return out;
}

llvm::json::Array mixq::search::toJSONArray(const std::vector<int64_t> &v) {
  llvm::json::Array a;
  for (int64_t x : v)
    a.push_back(x);
  return a;
}

namespace {

class AutoMixQStrategy : public Strategy {
public:
  explicit AutoMixQStrategy(const StrategySettings &s) : st(s) {}
  llvm::Expected<AskResult> ask(StrategyContext &ctx) override;

private:
  /// Updates the stability counter; true when the front has been stable for
  /// `patience` steps.
  bool frontStable(StrategyContext &ctx,
                   const std::vector<const TrialView *> &done);
  llvm::Expected<AskResult> modelStep(StrategyContext &ctx,
                                      const std::vector<const TrialView *> &done);

  StrategySettings st;
};

bool AutoMixQStrategy::frontStable(StrategyContext &ctx,
                                   const std::vector<const TrialView *> &done) {
  std::vector<MPPoint> pts;
  for (const TrialView *t : done)
    pts.push_back({t->memory, t->performance});
  // The front as values: ties and re-measured duplicates do not change it.
  std::set<std::pair<double, double>> members;
  for (int i : paretoFront(pts))
    members.insert({pts[i].memory, pts[i].performance});
  std::string sig;
  for (auto &[m, p] : members)
    sig += llvm::formatv("{0:e9}/{1:e9},", m, p).str();
  int64_t checked = ctx.state.getInteger("checked").value_or(0);
  int64_t stable = ctx.state.getInteger("stable").value_or(0);
  if (int64_t(done.size()) > checked) {
    auto old = ctx.state.getString("front");
    stable = (old && *old == sig) ? stable + 1 : 0;
    ctx.state["front"] = sig;
    ctx.state["stable"] = stable;
    ctx.state["checked"] = int64_t(done.size());
  }
  return stable >= st.patience;
}

llvm::Expected<AskResult> AutoMixQStrategy::ask(StrategyContext &ctx) {
  AskResult r;
  const SearchSpace &s = ctx.space;
  int inits = 0;
  for (const TrialView &t : ctx.trials)
    if (t.stage == "automixq:init" && !t.lost)
      ++inits;
  if (inits < st.initial) {
    int want = int(std::min<int64_t>(st.initial - inits, ctx.remaining));
    for (Configuration &c :
         freshConfigs(ctx, want, [&] { return randomConfig(s, ctx.rng); }))
      r.proposals.push_back({std::move(c), "automixq:init"});
    r.finished = r.proposals.empty() && ctx.pending() == 0;
    return r;
  }
  std::vector<const TrialView *> done;
  for (const TrialView &t : ctx.trials)
    if (t.hasResult)
      done.push_back(&t);
  if (done.size() < 2) {
    if (ctx.pending() > 0)
      return r; // wait for the initial trials
    // Every initial trial failed: keep sampling at random.
    for (Configuration &c :
         freshConfigs(ctx, 1, [&] { return randomConfig(s, ctx.rng); }))
      r.proposals.push_back({std::move(c), "automixq:init"});
    r.finished = r.proposals.empty();
    return r;
  }
  if (frontStable(ctx, done)) {
    r.finished = true;
    return r;
  }
  return modelStep(ctx, done);
}

llvm::Expected<AskResult>
AutoMixQStrategy::modelStep(StrategyContext &ctx,
                            const std::vector<const TrialView *> &done) {
  const SearchSpace &s = ctx.space;
  AskResult r;
  std::vector<Configuration> seen;
  VectorXd yP(done.size()), yM(done.size());
  std::vector<MPPoint> data;
  for (size_t i = 0; i < done.size(); ++i) {
    seen.push_back(done[i]->config);
    yP[i] = done[i]->performance;
    yM[i] = done[i]->memory;
    data.push_back({done[i]->memory, done[i]->performance});
  }
  MatrixXd x = featureMatrix(s, seen);
  VectorXd ones = VectorXd::Ones(s.numGenes());
  GaussianProcess gpP, gpM;
  gpP.setInputBounds(VectorXd::Zero(s.numGenes()), ones);
  gpM.setInputBounds(VectorXd::Zero(s.numGenes()), ones);
  gpP.setSinglePrecisionKernel(true);
  gpM.setSinglePrecisionKernel(true);
  GPFitOptions opts;
  opts.seed = ctx.rng();
  if (auto err = gpP.fit(x, yP, opts))
    return std::move(err);
  if (auto err = gpM.fit(x, yM, opts))
    return std::move(err);

  // Candidates: half random, half neighbours of the measured front.
  std::vector<int> front = paretoFront(data);
  std::uniform_int_distribution<int> moves(1, 3);
  int half = std::max(1, st.candidates / 2);
  std::vector<Configuration> cands =
      freshConfigs(ctx, half, [&] { return randomConfig(s, ctx.rng); });
  std::vector<Configuration> near = freshConfigs(ctx, half, [&] {
    const TrialView *base = done[front[ctx.rng() % front.size()]];
    return localMove(s, base->config, moves(ctx.rng), ctx.rng);
  });
  cands.insert(cands.end(), near.begin(), near.end());
  if (cands.empty()) {
    r.finished = ctx.pending() == 0;
    return r;
  }
  VectorXd mP, vP, mM, vM;
  MatrixXd xc = featureMatrix(s, cands);
  gpP.predict(xc, mP, vP);
  gpM.predict(xc, mM, vM);

  // Front over measured data and predictions together.
  std::vector<MPPoint> all = data;
  for (size_t i = 0; i < cands.size(); ++i)
    all.push_back({mM[i],
                   mP[i] + st.kappa * std::sqrt(std::max(vP[i], 0.0))});
  std::vector<int> allFront = paretoFront(all);
  double pLo = yP.minCoeff(), pHi = yP.maxCoeff();
  double mLo = yM.minCoeff(), mHi = yM.maxCoeff();
  double pSpan = pHi > pLo ? pHi - pLo : 1.0;
  double mSpan = mHi > mLo ? mHi - mLo : 1.0;
  auto score = [&](size_t c) {
    const MPPoint &p = all[done.size() + c];
    return (p.memory - mLo) / mSpan - st.lambda * (p.performance - pLo) / pSpan;
  };
  int best = -1;
  double bestScore = std::numeric_limits<double>::infinity();
  for (int i : allFront)
    if (i >= int(done.size()) && score(i - done.size()) < bestScore) {
      bestScore = score(i - done.size());
      best = i - int(done.size());
    }
  if (best < 0) // the data dominates every prediction: take the best score
    for (size_t c = 0; c < cands.size(); ++c)
      if (score(c) < bestScore) {
        bestScore = score(c);
        best = int(c);
      }
  r.proposals.push_back({cands[best], "automixq:gp"});
  return r;
}

} // namespace

llvm::Expected<std::unique_ptr<Strategy>>
mixq::search::createAutoMixQStrategy(const StrategySettings &settings) {
  if (settings.initial < 0 || settings.patience < 1 ||
      settings.candidates < 1 || !(settings.lambda >= 0))
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "automixq: --init must be >= 0, "
                                   "--patience >= 1, --candidates >= 1, "
                                   "--lambda >= 0");
  return std::unique_ptr<Strategy>(new AutoMixQStrategy(settings));
}
