//===- Driver.h - one search worker: claim, evaluate, ask --------*- C++ -*-===//
//
// A worker loops: reap trials whose worker stopped beating, claim the next
// waiting trial and evaluate it with the Objective (heartbeating while it
// runs), or, when none waits, ask the strategy for more under the study's
// write lock. It stops when the budget is spent and nothing runs any more,
// or when the strategy has finished. Any number of workers (processes, on
// any machines sharing the database) can run the same study.
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_SEARCH_DRIVER_H
#define MIXQ_SEARCH_DRIVER_H

#include "mixq/Search/Objective.h"
#include "mixq/Search/Space.h"
#include "mixq/Search/Store.h"
#include "mixq/Search/Strategy.h"

#include "llvm/Support/raw_ostream.h"

#include <string>

namespace mixq::search {

struct RunOptions {
  int64_t budget = 50;           ///< trials in the study (lost ones excepted)
  std::string worker;            ///< worker id; default host:pid
  double heartbeatSeconds = 2.0; ///< heartbeat period while a trial runs
  double staleAfterSeconds = 60; ///< a running trial this silent is lost
  double pollSeconds = 0.25;     ///< wait between checks for others' trials
  std::string configDir;         ///< config JSON files; default a temp dir
  int64_t maxTrialsThisWorker = -1; ///< stop after this many (tests)
  llvm::raw_ostream *progress = nullptr; ///< progress lines, if set
};

struct RunSummary {
  int evaluated = 0; ///< trials this worker ran
  int complete = 0, failed = 0, pruned = 0;
  bool strategyFinished = false;
};

/// The default worker id: "<hostname>:<pid>".
std::string defaultWorkerId();

class Driver {
public:
  Driver(StudyStore &store, StudyInfo study, SearchSpace space,
         StrategySettings settings, Strategy &strategy, Objective &objective,
         RunOptions options)
      : store(store), study(std::move(study)), space(std::move(space)),
        settings(std::move(settings)), strategy(strategy),
        objective(objective), opts(std::move(options)) {}

  llvm::Expected<RunSummary> run();

private:
  /// Asks the strategy; returns the number of trials added (0 if it had
  /// nothing, or if another worker added some first).
  llvm::Expected<int> askStrategy(bool &finished, bool &budgetSpent,
                                  int &pending);
  llvm::Error evaluate(const Trial &t, RunSummary &summary);
  llvm::Error writeConfig(const Trial &t, llvm::StringRef path);
  void showProgress(const Trial &t, const TrialOutcome &o, double seconds);

  StudyStore &store;
  StudyInfo study;
  SearchSpace space;
  StrategySettings settings;
  Strategy &strategy;
  Objective &objective;
  RunOptions opts;
  double totalSeconds = 0;
  int timed = 0;
};

} // namespace mixq::search

#endif // MIXQ_SEARCH_DRIVER_H
