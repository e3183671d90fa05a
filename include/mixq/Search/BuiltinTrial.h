//===- BuiltinTrial.h - the built-in trial: compile, fine-tune, evaluate -*- C++ -*-===//
//
// The objective `mixq-search run --model CKPT` uses when no --objective-cmd is
// given. The checkpoint is imported into mixq IR once per worker; each trial
// then, in a forked child process,
//   1. clones the module and runs --mixq-assign-config=config=<trial config>
//      and --mixq-emit-variant=out=<trial dir>/variant through the MLIR pass
//      manager (the pipeline scripts/mixq-trial.sh runs with mixq-opt),
//   2. opens the variant with the runtime library, fine-tunes its adapters
//      (the recipe: data, epochs, batch, lr, seed, limits, threads) and
//      evaluates the tasks, on the CPU or, with the recipe's device, on the
//      CUDA executor (the pass pipeline then also runs --mixq-emit-kernels),
//   3. writes the runtime's metrics JSON (accuracy per task, measured
//      peak_bytes, loss curve, ...) to <trial dir>/metrics.json.
// The parent heartbeats, enforces the timeout and kills the child's process
// group; a crash, a signal, a timeout or an error is a Failed trial with the
// child's error text (<trial dir>/trial.log), never a dead worker.
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_SEARCH_BUILTINTRIAL_H
#define MIXQ_SEARCH_BUILTINTRIAL_H

#include "mixq/Search/Objective.h"

#include "llvm/Support/JSON.h"

#include <memory>
#include <string>
#include <vector>

namespace mixq::search {

/// Runs each trial's work in a forked child (see the file comment). The
/// trial directory is <workDir>/<config file stem>, emptied first.
class ForkedObjective : public Objective {
public:
  ForkedObjective(std::string workDir, double timeoutSeconds)
      : workDir(std::move(workDir)), timeout(timeoutSeconds) {}
  TrialOutcome evaluate(const TrialRequest &req, KeepAlive keepAlive) override;
  const std::string &workDirectory() const { return workDir; }

protected:
  /// The child's work for one trial, in the (existing, empty) directory
  /// `dir`: returns the metrics JSON text or an error.
  virtual llvm::Expected<std::string> runTrial(const TrialRequest &req,
                                               llvm::StringRef dir) = 0;

  /// Runs `work` in a forked child (own process group, killed with the
  /// parent), its stderr to <dir>/trial.log and its result text to
  /// <dir>/<resultName>. Returns the result text, or the failure
  /// (error, signal, timeout, abandoned) with the log's tail.
  llvm::Expected<std::string>
  runForked(llvm::StringRef dir, llvm::StringRef resultName,
            llvm::function_ref<llvm::Expected<std::string>()> work,
            KeepAlive keepAlive);

private:
  std::string workDir;
  double timeout; ///< seconds; <= 0 means none
};

/// What every trial does besides the configuration.
struct TrialRecipe {
  std::string checkpoint;      ///< HF directory or llama2.c .bin
  std::string tokenizer;       ///< "" = as the runtime finds it
  std::string dataDir;         ///< the shared data directory
  std::vector<std::string> tasks = {"babi:qa1"}; ///< evaluated after training
  std::string trainData;       ///< "" = the first task
  int64_t epochs = 1;
  int64_t batch = 16;
  double lr = 3e-3;
  uint64_t seed = 0;
  int64_t trainLimit = -1;     ///< first N training examples (-1: all)
  int64_t evalLimit = 100;     ///< first N items per task (-1: all)
  int64_t seqLen = 256;
  int threads = 0;             ///< kernel threads (0: runtime default)
  /// Where the fine-tune and evaluation run: "cpu", "cuda" or "cuda-emu"
  /// (runtime Device.h; the variant's kernels are generated in process).
  /// Stored in the recipe only when not "cpu".
  std::string device = "cpu";

  llvm::json::Value toJSON() const;
  static llvm::Expected<TrialRecipe> fromJSON(const llvm::json::Value &v,
                                              llvm::StringRef origin);
};

/// Per-layer importance measured by the runtime.
struct ImportanceMeasurement {
  std::vector<double> scores; ///< one per decoder layer
  llvm::json::Value json = nullptr; ///< the runtime's whole result
};

class BuiltinTrial : public ForkedObjective {
public:
  /// Imports the recipe's checkpoint (errors name it) and checks the recipe.
  static llvm::Expected<std::unique_ptr<BuiltinTrial>>
  create(TrialRecipe recipe, std::string workDir, double timeoutSeconds);
  ~BuiltinTrial() override;

  std::string describe() const override;
  const TrialRecipe &getRecipe() const { return recipe; }

  /// QR-Adaptor's entropy importance I(l) = H(Y) - H(Y | X_l) (runtime
  /// Importance.h) on the first `samples` training examples of the recipe,
  /// measured in a forked child in <work>/<name>/: on the original
  /// checkpoint when `configPath` is empty, else on the variant that config
  /// compiles to.
  llvm::Expected<ImportanceMeasurement>
  measureImportance(llvm::StringRef configPath, llvm::StringRef name,
                    int64_t samples, KeepAlive keepAlive);

protected:
  llvm::Expected<std::string> runTrial(const TrialRequest &req,
                                       llvm::StringRef dir) override;

private:
  struct Impl;
  BuiltinTrial(TrialRecipe recipe, std::string workDir, double timeout,
               std::unique_ptr<Impl> impl);
  /// Compiles the config JSON at `configPath` into a variant at `out`.
  llvm::Error emitVariant(llvm::StringRef configPath, llvm::StringRef out);

  TrialRecipe recipe;
  std::unique_ptr<Impl> impl;
};

} // namespace mixq::search

#endif // MIXQ_SEARCH_BUILTINTRIAL_H
