//===- Strategy.h - search strategies (uniform ... QR-Adaptor) ---*- C++ -*-===//
//
// A strategy is asked for new trials whenever a worker finds no waiting trial.
// It sees every trial of the study and its own saved state (a JSON object in
// the store), so a study stops and resumes where it was and several workers
// share it. It returns proposals, possibly none while it waits for running
// trials, and says when it has finished.
//
//   uniform     each (bits, rank[, adapter]) applied to all layers
//   random      uniformly random configurations, no repeats
//   exhaustive  every configuration in order (tiny spaces)
//   automixq    random init, GP models of P and M, Pareto front over
//               predictions and data, argmin M - lambda P; stops when the
//               front is unchanged for `patience` steps or at the budget
//   qr-adaptor  stage 1 importance init, stage 2 PRGA, stage 3 BO (GP + EI
//               on alpha z(P) - (1 - alpha) z(M)); any subset of stages
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_SEARCH_STRATEGY_H
#define MIXQ_SEARCH_STRATEGY_H

#include "mixq/Search/Space.h"
#include "mixq/Search/Store.h"

#include "llvm/Support/JSON.h"

#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace mixq::search {

struct StrategySettings {
  std::string name = "random";
  uint64_t seed = 0;
  // AutoMixQ.
  int initial = 10;       ///< random configurations before the GP
  double lambda = 1.0;    ///< weight of P in argmin M - lambda P (normalised)
  int patience = 5;       ///< stop when the front is unchanged this long
  int candidates = 2000;  ///< configurations scored per step
  double kappa = 1.0;     ///< optimism: P is scored as mean + kappa sigma
  // QR-Adaptor.
  std::vector<int> stages = {1, 2, 3};
  int population = 5;
  int generations = 5;
  int offspring = 5;      ///< children per generation
  double alpha = 0.5;     ///< weight of z(P) in the BO objective
  double crossoverEta = 15;
  double mutationEta = 20;
  double mutationProb = -1; ///< per gene; < 0 means 1 / number of genes
  int localCandidates = 500;
  int boInit = 3;         ///< random starts of BO when stage 2 is off
  /// Per-layer importance I(l) on the original model (bits) and on the
  /// quantized model (ranks); empty means uniform.
  std::vector<double> importance, importanceQuantized;
  /// --importance auto: the worker measures both on the model (built-in
  /// trial) and keeps them in the strategy state (kMeasuredImportanceKey).
  bool importanceAuto = false;

  llvm::json::Value toJSON() const;
  static llvm::Expected<StrategySettings> fromJSON(const llvm::json::Value &v,
                                                   llvm::StringRef origin);
};

/// The strategy-state key of measured importance: {"importance": [...],
/// "importance_quantized": [...], ...} (QR-Adaptor stage 1 prefers it).
inline constexpr const char *kMeasuredImportanceKey = "measured_importance";

/// Reads `--importance`: {"importance": [...], "importance_quantized": [...]}
/// or a bare array (used for both), one value per layer.
llvm::Error readImportance(llvm::StringRef path, int64_t numLayers,
                           StrategySettings &s);

/// What the strategy sees of one trial.
struct TrialView {
  int64_t number = 0;
  TrialState state = TrialState::Waiting;
  std::string stage;
  Configuration config;
  double performance = 0, memory = 0;
  bool hasResult = false; ///< complete, with P and M
  bool lost = false;      ///< failed because its worker died; retried
  std::optional<int64_t> retryOf;
};

struct Proposal {
  Configuration config;
  std::string stage;
};

struct StrategyContext {
  const SearchSpace &space;
  const StrategySettings &settings;
  std::vector<TrialView> trials;
  int64_t remaining = 0;  ///< budget left; never propose more
  int64_t nextNumber = 0; ///< the number the first proposal will get
  llvm::json::Object &state;
  std::mt19937_64 rng;

  StrategyContext(const SearchSpace &space, const StrategySettings &settings,
                  llvm::json::Object &state)
      : space(space), settings(settings), state(state) {}
  /// The latest attempt of trial `number` (following retries), or null.
  const TrialView *resolve(int64_t number) const;
  /// True if the configuration was proposed before (any state).
  bool known(const Configuration &c) const;
  /// Number of trials not yet finished (waiting or running).
  int pending() const;
  std::set<std::string> knownKeys;
};

struct AskResult {
  std::vector<Proposal> proposals;
  bool finished = false; ///< nothing more will ever be proposed
};

class Strategy {
public:
  virtual ~Strategy();
  virtual llvm::Expected<AskResult> ask(StrategyContext &ctx) = 0;
};

llvm::Expected<std::unique_ptr<Strategy>>
createStrategy(const StrategySettings &settings);

/// Builds the strategy's view of stored trials.
llvm::Expected<std::vector<TrialView>>
viewTrials(const SearchSpace &space, const std::vector<Trial> &trials);

//===----------------------------------------------------------------------===//
// Genetic operators on integer genes (QR-Adaptor Algorithms 3 and 4)
//===----------------------------------------------------------------------===//

/// Simulated binary crossover per gene (distribution index `eta`) on the
/// option indices, rounded and clamped to each gene's range.
std::pair<Configuration, Configuration>
sbxCrossover(const SearchSpace &s, const Configuration &a,
             const Configuration &b, double eta, std::mt19937_64 &rng);
/// Polynomial mutation with per-gene probability `prob`; a gene that rounds
/// back to its old value is moved one option towards the drawn direction.
Configuration polynomialMutation(const SearchSpace &s, const Configuration &c,
                                 double eta, double prob,
                                 std::mt19937_64 &rng);
/// `count` genes set to a different random option.
Configuration localMove(const SearchSpace &s, const Configuration &c,
                        int count, std::mt19937_64 &rng);
/// Options by importance: higher importance, higher option index. Ties share
/// their mean position, so uniform importance gives the middle option.
std::vector<int> optionsByImportance(const std::vector<double> &importance,
                                     int numOptions);

} // namespace mixq::search

#endif // MIXQ_SEARCH_STRATEGY_H
