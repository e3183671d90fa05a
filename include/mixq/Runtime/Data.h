//===- Data.h - fine-tuning and evaluation data sets --------------*- C++ -*-===//
//
// Readers for the data mixq-run trains and evaluates on. Every reader checks
// its input and fails with an error naming the file, the line or item, and
// what is wrong.
//
//   bAbI      numbered story lines; a question line is
//             "N question?<TAB>answer<TAB>support". The prompt of a question
//             is "<story sentences so far joined by spaces>\nQuestion: <q>
//             \nAnswer:" and its answer is scored / trained as " " + answer.
//   Alpaca    JSON array of {instruction, input, output} with the Stanford
//             Alpaca prompt; the loss is on the output (+ EOS).
//   text      a .txt file (or .jsonl with "text" fields) tokenised per
//             paragraph and packed into windows of the sequence length.
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_RUNTIME_DATA_H
#define MIXQ_RUNTIME_DATA_H

#include "mixq/Runtime/Tokenizer.h"

#include "llvm/Support/Error.h"

#include <string>
#include <vector>

namespace mixq {
namespace runtime {

/// One training sequence: input tokens and, per position, the next token to
/// predict (-1 = no loss there).
struct Example {
  std::vector<int> tokens;
  std::vector<int> targets;
};

struct BabiQuestion {
  std::string prompt;
  std::string answer;
};

/// Parses a bAbI file.
llvm::Expected<std::vector<BabiQuestion>> loadBabi(llvm::StringRef path);
/// The bAbI file of a task ("qa1" -> <dir>/qa1_*_<split>.txt).
llvm::Expected<std::string> babiPath(llvm::StringRef babiDir,
                                     llvm::StringRef task,
                                     llvm::StringRef split);

/// Context and continuation tokenised as lm-evaluation-harness does:
/// ctx = enc(context), cont = enc(context + continuation)[len(ctx):].
void encodePair(const Tokenizer &tok, llvm::StringRef context,
                llvm::StringRef continuation, bool bos, std::vector<int> &ctx,
                std::vector<int> &cont);

/// An example with the loss on the continuation (and on the context too
/// when lossOnPrompt); truncated on the left to maxLen tokens.
Example makeCompletionExample(const std::vector<int> &ctx,
                              const std::vector<int> &cont, int64_t maxLen,
                              bool lossOnPrompt = false);

/// The Stanford Alpaca prompt of an (instruction, input) pair.
std::string alpacaPrompt(llvm::StringRef instruction, llvm::StringRef input);

struct DataOptions {
  int64_t seqLen = 256; ///< packing length (text), truncation (others)
  bool bos = true;
  /// bAbI / Alpaca: also train on the prompt tokens (plain causal LM loss).
  bool lossOnPrompt = false;
};

/// Loads a training set named by spec: "babi:qa1" (from babiDir),
/// "babi:<path>", "alpaca:<path>", "text:<path>".
llvm::Expected<std::vector<Example>>
loadTrainingSet(llvm::StringRef spec, llvm::StringRef dataDir,
                const Tokenizer &tok, const DataOptions &opts);

/// Reads a plain-text corpus (.txt, or .jsonl with "text") as paragraphs.
llvm::Expected<std::vector<std::string>> loadTextParagraphs(
    llvm::StringRef path);

} // namespace runtime
} // namespace mixq

#endif // MIXQ_RUNTIME_DATA_H
