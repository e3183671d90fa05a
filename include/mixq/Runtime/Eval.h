//===- Eval.h - multiple-choice evaluation as lm-evaluation-harness -*- C++ -*-===//
//
// Each item is a list of (context, continuation) requests, one per choice.
// As the harness does: trailing spaces of a context move into the
// continuation; ctx = enc(context), cont = enc(context + continuation)
// [len(ctx):]; the input is (ctx + cont)[-(maxLen + 1):][:-1]; the score is
// the summed log-likelihood of cont. acc = argmax of the score, acc_norm =
// argmax of score / character length of the choice text. Requests sharing a
// context share its forward pass (a KV cache); choices then run only their
// own tokens.
//
// Tasks (from the shared data directory): arc_easy, arc_challenge, boolq,
// piqa, openbookqa, winogrande (partial scoring), hellaswag, mmlu (5-shot
// from dev, per-subject limit), babi:qaN (candidates = all train answers),
// and ppl:<text file> (perplexity).
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_RUNTIME_EVAL_H
#define MIXQ_RUNTIME_EVAL_H

#include "mixq/Runtime/Model.h"
#include "mixq/Runtime/Tokenizer.h"

#include "llvm/Support/Error.h"
#include "llvm/Support/JSON.h"

#include <optional>
#include <string>
#include <vector>

namespace mixq {
namespace runtime {

struct MCItem {
  /// (context, continuation) per choice.
  std::vector<std::pair<std::string, std::string>> requests;
  /// Character length of each choice for acc_norm.
  std::vector<double> choiceChars;
  int gold = 0;
};

struct EvalOptions {
  int64_t limit = -1; ///< first N items (mmlu: per subject)
  /// Prepend BOS to every context. Unset: as the harness for its tasks (no
  /// BOS, add_bos_token=False), with BOS for bAbI (as it is trained).
  std::optional<bool> bos;
  bool progress = false;
};

struct TaskResult {
  std::string task;
  int64_t count = 0;
  double acc = 0.0, accNorm = 0.0;
  double ppl = 0.0; ///< perplexity tasks only
  int64_t tokens = 0;
  bool isPerplexity = false;
  double wallS = 0.0;
  /// Multiple choice: each item's summed log-likelihood per choice.
  std::vector<std::vector<double>> itemScores;
  llvm::json::Object toJSON() const;
};

/// Loads the items of `task` from `dataDir` (the shared data directory).
llvm::Expected<std::vector<MCItem>> loadTask(llvm::StringRef task,
                                             llvm::StringRef dataDir,
                                             int64_t limit);

/// Summed log-likelihood of each continuation after a shared context.
std::vector<double> scoreContinuations(Model &model,
                                       const std::vector<int> &ctx,
                                       const std::vector<std::vector<int>> &conts);

/// Scores the items.
TaskResult evaluateItems(Model &model, const Tokenizer &tok,
                         const std::vector<MCItem> &items,
                         const EvalOptions &opts, llvm::StringRef name);

/// Token perplexity of a text file in non-overlapping windows of the
/// model's maximum length.
llvm::Expected<TaskResult> evaluatePerplexity(Model &model,
                                              const Tokenizer &tok,
                                              llvm::StringRef path,
                                              const EvalOptions &opts);

/// Loads and scores one task name (including ppl:<file>).
llvm::Expected<TaskResult> runTask(Model &model, const Tokenizer &tok,
                                   llvm::StringRef task,
                                   llvm::StringRef dataDir,
                                   const EvalOptions &opts);

} // namespace runtime
} // namespace mixq

#endif // MIXQ_RUNTIME_EVAL_H
