//===- Strategy.cpp - settings, uniform/random/exhaustive, genetic ops -*- C++ -*-===//

#include "mixq/Search/Strategy.h"
#include "StrategyImpl.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FormatVariadic.h"

#include <algorithm>
#include <cmath>
#include <numeric>

using namespace mixq::search;
using llvm::json::Array;
using llvm::json::Object;
using llvm::json::Value;

Strategy::~Strategy() = default;

namespace {

llvm::Error settingsError(llvm::StringRef origin, const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 (origin + ": " + msg).str());
}

Array toArray(const std::vector<double> &v) {
  Array a;
  for (double x : v)
    a.push_back(x);
  return a;
}

} // namespace

//===----------------------------------------------------------------------===//
// Settings
//===----------------------------------------------------------------------===//

Value StrategySettings::toJSON() const {
  Array st;
  for (int s : stages)
    st.push_back(s);
  return Object{{"name", name},
                {"seed", static_cast<int64_t>(seed)},
                {"initial", initial},
                {"lambda", lambda},
                {"patience", patience},
                {"candidates", candidates},
                {"kappa", kappa},
                {"stages", std::move(st)},
                {"population", population},
                {"generations", generations},
                {"offspring", offspring},
                {"alpha", alpha},
                {"crossover_eta", crossoverEta},
                {"mutation_eta", mutationEta},
                {"mutation_prob", mutationProb},
                {"local_candidates", localCandidates},
                {"bo_init", boInit},
                {"importance", toArray(importance)},
                {"importance_quantized", toArray(importanceQuantized)},
                {"importance_auto", importanceAuto}};
}

llvm::Expected<StrategySettings>
StrategySettings::fromJSON(const Value &v, llvm::StringRef origin) {
  const Object *o = v.getAsObject();
  if (!o)
    return settingsError(origin, "strategy settings must be an object");
  StrategySettings s;
  llvm::json::Path::Root root;
  llvm::json::ObjectMapper m(v, root);
  int64_t seed = 0;
  bool ok = m && m.map("name", s.name) && m.mapOptional("seed", seed) &&
            m.mapOptional("initial", s.initial) &&
            m.mapOptional("lambda", s.lambda) &&
            m.mapOptional("patience", s.patience) &&
            m.mapOptional("candidates", s.candidates) &&
            m.mapOptional("kappa", s.kappa) &&
            m.mapOptional("stages", s.stages) &&
            m.mapOptional("population", s.population) &&
            m.mapOptional("generations", s.generations) &&
            m.mapOptional("offspring", s.offspring) &&
            m.mapOptional("alpha", s.alpha) &&
            m.mapOptional("crossover_eta", s.crossoverEta) &&
            m.mapOptional("mutation_eta", s.mutationEta) &&
            m.mapOptional("mutation_prob", s.mutationProb) &&
            m.mapOptional("local_candidates", s.localCandidates) &&
            m.mapOptional("bo_init", s.boInit) &&
            m.mapOptional("importance", s.importance) &&
            m.mapOptional("importance_quantized", s.importanceQuantized) &&
            m.mapOptional("importance_auto", s.importanceAuto);
  if (!ok)
    return settingsError(origin, "bad strategy settings: " +
                                     llvm::toString(root.getError()));
  s.seed = static_cast<uint64_t>(seed);
  return s;
}

llvm::Error mixq::search::readImportance(llvm::StringRef path,
                                         int64_t numLayers,
                                         StrategySettings &s) {
  auto v = readJSONFile(path);
  if (!v)
    return v.takeError();
  auto readList = [&](const Value *val, llvm::StringRef key,
                      std::vector<double> &out) -> llvm::Error {
    const Array *arr = val ? val->getAsArray() : nullptr;
    if (!arr)
      return settingsError(path, "'" + key + "' must be an array of numbers");
    out.clear();
    for (const Value &x : *arr) {
      std::optional<double> d = x.getAsNumber();
      if (!d || !std::isfinite(*d))
        return settingsError(path, "'" + key + "' holds a non-number");
      out.push_back(*d);
    }
    if (static_cast<int64_t>(out.size()) != numLayers)
      return settingsError(path, llvm::formatv("'{0}' has {1} values; the "
                                               "space has {2} layers",
                                               key, out.size(), numLayers));
    return llvm::Error::success();
  };
  if (v->getAsArray()) {
    if (auto err = readList(&*v, "importance", s.importance))
      return err;
    s.importanceQuantized = s.importance;
    return llvm::Error::success();
  }
  const Object *o = v->getAsObject();
  if (!o)
    return settingsError(path, "expected an array or {\"importance\": [...], "
                               "\"importance_quantized\": [...]}");
  if (auto err = readList(o->get("importance"), "importance", s.importance))
    return err;
  if (o->get("importance_quantized")) {
    if (auto err = readList(o->get("importance_quantized"),
                            "importance_quantized", s.importanceQuantized))
      return err;
  } else {
    s.importanceQuantized = s.importance;
  }
  return llvm::Error::success();
}

//===----------------------------------------------------------------------===//
// Context
//===----------------------------------------------------------------------===//

const TrialView *StrategyContext::resolve(int64_t number) const {
  const TrialView *found = nullptr;
  for (const TrialView &t : trials)
    if (t.number == number)
      found = &t;
  // Follow the retry chain: a retry names the trial it replaces.
  bool moved = true;
  while (found && found->lost && moved) {
    moved = false;
    for (const TrialView &t : trials)
      if (t.retryOf && *t.retryOf == found->number) {
        found = &t;
        moved = true;
        break;
      }
  }
  return found;
}

bool StrategyContext::known(const Configuration &c) const {
  return knownKeys.count(configKey(c)) != 0;
}

int StrategyContext::pending() const {
  int n = 0;
  for (const TrialView &t : trials)
    if (t.state == TrialState::Waiting || t.state == TrialState::Running)
      ++n;
  return n;
}

llvm::Expected<std::vector<TrialView>>
mixq::search::viewTrials(const SearchSpace &space,
                         const std::vector<Trial> &trials) {
  std::vector<TrialView> out;
  std::set<int64_t> retried;
  for (const Trial &t : trials)
    if (t.retryOf)
      retried.insert(*t.retryOf);
  for (const Trial &t : trials) {
    TrialView v;
    v.number = t.number;
    v.state = t.state;
    v.stage = t.stage;
    v.retryOf = t.retryOf;
    llvm::SmallVector<llvm::StringRef> parts;
    llvm::StringRef(t.configKey).split(parts, '.');
    for (llvm::StringRef p : parts) {
      int g = 0;
      if (p.getAsInteger(10, g))
        return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                       "trial %lld has a malformed "
                                       "config_key",
                                       (long long)t.number);
      v.config.genes.push_back(g);
    }
    if (auto err = validate(space, v.config))
      return llvm::createStringError(
          llvm::inconvertibleErrorCode(),
          "trial %lld does not fit the study's space: %s",
          (long long)t.number, llvm::toString(std::move(err)).c_str());
    v.hasResult = t.state == TrialState::Complete && t.performance &&
                  t.memory;
    v.performance = t.performance.value_or(0);
    v.memory = t.memory.value_or(0);
    v.lost = t.state == TrialState::Failed && retried.count(t.number);
    out.push_back(std::move(v));
  }
  return out;
}

//===----------------------------------------------------------------------===//
// Genetic operators
//===----------------------------------------------------------------------===//

std::pair<Configuration, Configuration>
mixq::search::sbxCrossover(const SearchSpace &s, const Configuration &a,
                           const Configuration &b, double eta,
                           std::mt19937_64 &rng) {
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  Configuration c1 = a, c2 = b;
  for (int g = 0; g < s.numGenes(); ++g) {
    double u = unit(rng);
    double beta = u <= 0.5 ? std::pow(2.0 * u, 1.0 / (eta + 1.0))
                           : std::pow(1.0 / (2.0 * (1.0 - u)),
                                      1.0 / (eta + 1.0));
    double p1 = a.genes[g], p2 = b.genes[g];
    double y1 = 0.5 * ((1 + beta) * p1 + (1 - beta) * p2);
    double y2 = 0.5 * ((1 - beta) * p1 + (1 + beta) * p2);
    int hi = s.optionCount(g) - 1;
    c1.genes[g] = std::clamp(static_cast<int>(std::lround(y1)), 0, hi);
    c2.genes[g] = std::clamp(static_cast<int>(std::lround(y2)), 0, hi);
  }
  return {c1, c2};
}

Configuration mixq::search::polynomialMutation(const SearchSpace &s,
                                               const Configuration &c,
                                               double eta, double prob,
                                               std::mt19937_64 &rng) {
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  Configuration m = c;
  for (int g = 0; g < s.numGenes(); ++g) {
    int hi = s.optionCount(g) - 1;
    if (hi == 0 || unit(rng) >= prob)
      continue;
    double u = unit(rng);
    double delta = u < 0.5 ? std::pow(2.0 * u, 1.0 / (eta + 1.0)) - 1.0
                           : 1.0 - std::pow(2.0 * (1.0 - u), 1.0 / (eta + 1.0));
    double x = c.genes[g] + delta * hi;
    int nx = std::clamp(static_cast<int>(std::lround(x)), 0, hi);
    if (nx == c.genes[g]) // integer genes: always move once chosen
      nx = std::clamp(c.genes[g] + (delta < 0 ? -1 : 1), 0, hi);
    if (nx == c.genes[g])
      nx = c.genes[g] == 0 ? 1 : c.genes[g] - 1;
    m.genes[g] = nx;
  }
  return m;
}

Configuration mixq::search::localMove(const SearchSpace &s,
                                      const Configuration &c, int count,
                                      std::mt19937_64 &rng) {
  Configuration m = c;
  for (int i = 0; i < count; ++i) {
    int g = static_cast<int>(rng() % uint64_t(s.numGenes()));
    int n = s.optionCount(g);
    if (n < 2)
      continue;
    int shift = 1 + static_cast<int>(rng() % uint64_t(n - 1));
    m.genes[g] = (m.genes[g] + shift) % n;
  }
  return m;
}

std::vector<int>
mixq::search::optionsByImportance(const std::vector<double> &importance,
                                  int numOptions) {
  size_t n = importance.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return importance[a] < importance[b];
  });
  // Mean position of each group of ties.
  std::vector<double> pos(n);
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && importance[order[j]] == importance[order[i]])
      ++j;
    double mean = 0.5 * double(i + j - 1);
    for (size_t k = i; k < j; ++k)
      pos[order[k]] = mean;
    i = j;
  }
  std::vector<int> out(n);
  for (size_t l = 0; l < n; ++l) {
    double q = n > 1 ? pos[l] / double(n - 1) : 0.5; // 0 .. 1
    int idx = static_cast<int>(std::floor(q * numOptions));
    out[l] = std::clamp(idx, 0, numOptions - 1);
  }
  return out;
}

//===----------------------------------------------------------------------===//
// uniform, random, exhaustive
//===----------------------------------------------------------------------===//

namespace {

class UniformStrategy : public Strategy {
public:
  llvm::Expected<AskResult> ask(StrategyContext &ctx) override {
    const SearchSpace &s = ctx.space;
    AskResult r;
    for (int a = 0; a < int(s.adapters.size()); ++a)
      for (int b = 0; b < int(s.bits.size()); ++b)
        for (int k = 0; k < int(s.ranks.size()); ++k) {
          Configuration c = uniformConfig(s, b, k, a);
          if (ctx.known(c))
            continue;
          if (int64_t(r.proposals.size()) >= ctx.remaining)
            return r;
          r.proposals.push_back({c, "uniform"});
        }
    r.finished = r.proposals.empty();
    return r;
  }
};

class RandomStrategy : public Strategy {
public:
  llvm::Expected<AskResult> ask(StrategyContext &ctx) override {
    AskResult r;
    std::set<std::string> seen = ctx.knownKeys;
    int64_t want = std::min<int64_t>(ctx.remaining, 16);
    for (int tries = 0; int64_t(r.proposals.size()) < want && tries < 10000;
         ++tries) {
      Configuration c = randomConfig(ctx.space, ctx.rng);
      if (!seen.insert(configKey(c)).second)
        continue;
      r.proposals.push_back({c, "random"});
    }
    r.finished = r.proposals.empty();
    return r;
  }
};

class ExhaustiveStrategy : public Strategy {
public:
  llvm::Expected<AskResult> ask(StrategyContext &ctx) override {
    const SearchSpace &s = ctx.space;
    if (s.log10Size() > 7.0)
      return llvm::createStringError(
          llvm::inconvertibleErrorCode(),
          "exhaustive search of %s: the space has 10^%.1f configurations; "
          "exhaustive is for spaces of at most 10^7",
          s.origin.c_str(), s.log10Size());
    int64_t total = std::llround(std::pow(10.0, s.log10Size()));
    int64_t cursor = ctx.state.getInteger("cursor").value_or(0);
    AskResult r;
    int64_t want = std::min<int64_t>(ctx.remaining, 64);
    for (; cursor < total && int64_t(r.proposals.size()) < want; ++cursor) {
      Configuration c;
      c.genes.resize(s.numGenes());
      int64_t rest = cursor;
      for (int g = s.numGenes() - 1; g >= 0; --g) {
        c.genes[g] = static_cast<int>(rest % s.optionCount(g));
        rest /= s.optionCount(g);
      }
      if (!ctx.known(c))
        r.proposals.push_back({c, "exhaustive"});
    }
    ctx.state["cursor"] = cursor;
    r.finished = r.proposals.empty() && cursor >= total;
    return r;
  }
};

} // namespace

llvm::Expected<std::unique_ptr<Strategy>>
mixq::search::createStrategy(const StrategySettings &settings) {
  const std::string &n = settings.name;
  if (n == "uniform")
    return std::unique_ptr<Strategy>(new UniformStrategy());
  if (n == "random")
    return std::unique_ptr<Strategy>(new RandomStrategy());
  if (n == "exhaustive")
    return std::unique_ptr<Strategy>(new ExhaustiveStrategy());
  if (n == "automixq")
    return createAutoMixQStrategy(settings);
  if (n == "qr-adaptor")
    return createQRAdaptorStrategy(settings);
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 "unknown strategy '%s' (uniform, random, "
                                 "exhaustive, automixq, qr-adaptor)",
                                 n.c_str());
}
