//===- Importance.h - layer / head / channel importance ----------*- C++ -*-===//
//
// Measures how much each decoder layer (and, for the Taylor methods, each
// attention head, KV group and MLP channel) matters, on a few calibration
// examples. Consumers: `mixq-run importance` (JSON file read by
// `mixq-search --importance` and `mixq-opt --mixq-prune`) and the search
// driver in-process.
//
//   taylor1  LLM-Pruner's first-order element score |W (.) dL/dW| with
//            dL/dW the mean per-example gradient of the base weight.
//   taylor2  LLM-Pruner's second-order element score |W (.) F (.) W| with F
//            the mean squared per-example gradient (Fisher diagonal).
//            Element scores are summed over a structure: a query head (its
//            q_proj rows and o_proj columns), a KV group (its k_proj and
//            v_proj rows plus its query heads), an MLP channel (gate/up rows
//            and the down_proj column), a projection, a layer.
//   entropy  QR-Adaptor's I(l) = H(Y) - H(Y | X_l): H(Y) the entropy of the
//            empirical distribution of the gold answers (target token
//            sequences) of the samples; H(Y | X_l) bounded above by the mean
//            cross-entropy of the gold answer decoded from the residual
//            stream after layer l through the final norm and LM head (logit
//            lens), so H(Y) - CE_l is a variational lower bound on I(l). A
//            layer's score is the information it adds: CE_{l-1} - CE_l
//            (l = 0 compares with the embeddings). No head/channel scores.
//
// The JSON written by toJSON (version 1):
//   {"version": 1, "method": "taylor1", "samples": N, "tokens": T,
//    "importance": [one score per decoder layer],
//    "layers": [{"layer": l, "score": s,
//                "projections": {"q_proj": s, ...},   (taylor only)
//                "heads": [...], "kv_heads": [...], "channels": [...]}],
//    entropy only: "answer_entropy": H(Y), "cross_entropy": [CE_0..CE_L],
//                  "information": [H(Y) - CE_l for l = 1..L]}
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_RUNTIME_IMPORTANCE_H
#define MIXQ_RUNTIME_IMPORTANCE_H

#include "mixq/Runtime/Data.h"
#include "mixq/Runtime/Model.h"

#include "llvm/Support/Error.h"
#include "llvm/Support/JSON.h"

#include <array>
#include <string>
#include <vector>

namespace mixq {
namespace runtime {

enum class ImportanceMethod { Entropy, Taylor1, Taylor2 };

llvm::StringRef importanceMethodName(ImportanceMethod m);
llvm::Expected<ImportanceMethod> parseImportanceMethod(llvm::StringRef s);

struct ImportanceOptions {
  ImportanceMethod method = ImportanceMethod::Taylor1;
  /// Use the first `samples` examples (<= 0 or more than available: all).
  int64_t samples = 16;
  bool progress = false; ///< a progress line per sample on stderr
};

struct LayerImportance {
  int64_t layer = 0;
  double score = 0.0;
  /// Per projection, in kProjectionRoles order (taylor only).
  std::array<double, kNumProjectionRoles> projections{};
  std::vector<double> heads;    ///< per query head (taylor only)
  std::vector<double> kvHeads;  ///< per KV group, incl. its query heads
  std::vector<double> channels; ///< per MLP channel (taylor only)
};

struct ImportanceResult {
  ImportanceMethod method = ImportanceMethod::Taylor1;
  int64_t samples = 0;
  int64_t tokens = 0; ///< target tokens the scores are measured on
  std::vector<LayerImportance> layers;
  /// Entropy only: H(Y) and CE_l for l = 0 (embeddings) .. numLayers.
  double answerEntropy = 0.0;
  std::vector<double> crossEntropy;

  /// One score per decoder layer (what `mixq-search --importance` reads).
  std::vector<double> importance() const;
  llvm::json::Value toJSON() const;
};

/// Measures importance on the first opts.samples examples of `data` (each
/// needs at least one target). The model's base-weight gradient sinks are
/// allocated for the Taylor methods and released before returning.
llvm::Expected<ImportanceResult>
measureImportance(Model &model, const std::vector<Example> &data,
                  const ImportanceOptions &opts);

/// Writes result.toJSON() to `path` (errors name the file).
llvm::Error writeImportance(const ImportanceResult &result,
                            llvm::StringRef path);

} // namespace runtime
} // namespace mixq

#endif // MIXQ_RUNTIME_IMPORTANCE_H
