//===- Objective.h - what a trial evaluates, and its metrics -----*- C++ -*-===//
//
// An Objective turns one configuration into metrics. Two kinds exist or will:
//
//  - CommandObjective (`--objective-cmd "CMD"`): the config JSON is written to
//    a file, `CMD <file>` runs through /bin/sh in its own process group (killed
//    with the worker, and on timeout), and its standard output is the metrics
//    JSON.
//  - BuiltinTrial (BuiltinTrial.h, without --objective-cmd): compiles the
//    config in process with the MLIR pass manager, fine-tunes and evaluates
//    with the runtime library, each trial in a forked child process.
//
// Metrics JSON (runtime -> search), at least:
//   {"accuracy": 0.61 | {"task": {"acc": .., "acc_norm": ..} | number, ...},
//    "peak_bytes": 123 | {"total": 123, ...}, "pruned": false, ...}
// P = accuracy (the mean of the tasks' `acc`), M = peak bytes (total); with
// "device_peak_bytes" (a run on a CUDA device) M is the device's total.
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_SEARCH_OBJECTIVE_H
#define MIXQ_SEARCH_OBJECTIVE_H

#include "mixq/Search/Store.h"

#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <optional>
#include <string>

namespace mixq::search {

struct TrialMetrics {
  double performance = 0; ///< P: mean accuracy
  double memory = 0;      ///< M: peak bytes
  bool pruned = false;    ///< the objective stopped the trial early
  std::string text;       ///< the metrics JSON as received (compact)
};

/// Parses a metrics JSON; the whole text, or else its last non-empty line,
/// must be a JSON object. Errors name `origin` and quote the bad text.
llvm::Expected<TrialMetrics> parseMetrics(llvm::StringRef text,
                                          llvm::StringRef origin);

struct TrialRequest {
  int64_t number = 0;
  std::string stage;
  std::string configPath; ///< the config JSON, already written
};

struct TrialOutcome {
  TrialState state = TrialState::Failed; ///< Complete, Failed or Pruned
  std::optional<TrialMetrics> metrics;
  std::string error; ///< why it failed (with the objective's error output)
};

/// The outcome of a trial whose objective produced `text`: Complete (or
/// Pruned) with the parsed metrics, or Failed with parseMetrics' error.
TrialOutcome outcomeFromMetrics(llvm::StringRef text, llvm::StringRef origin);

/// Called while an objective runs (about every `heartbeat` seconds); returns
/// false when the trial must be abandoned (it is no longer ours).
using KeepAlive = llvm::function_ref<bool()>;

class Objective {
public:
  virtual ~Objective();
  virtual std::string describe() const = 0;
  /// Evaluates one configuration. A failing trial is an outcome, not an
  /// error: crashes, timeouts and unreadable metrics come back as Failed.
  virtual TrialOutcome evaluate(const TrialRequest &req,
                                KeepAlive keepAlive) = 0;
};

/// Runs an external command (see the file comment).
class CommandObjective : public Objective {
public:
  CommandObjective(std::string command, double timeoutSeconds,
                   double heartbeatSeconds = 5.0)
      : command(std::move(command)), timeout(timeoutSeconds),
        heartbeat(heartbeatSeconds) {}
  std::string describe() const override { return "command: " + command; }
  TrialOutcome evaluate(const TrialRequest &req, KeepAlive keepAlive) override;

private:
  std::string command;
  double timeout;   ///< seconds; <= 0 means none
  double heartbeat; ///< seconds between keepAlive calls
};

/// Quotes `s` for /bin/sh.
std::string shellQuote(llvm::StringRef s);

} // namespace mixq::search

#endif // MIXQ_SEARCH_OBJECTIVE_H
