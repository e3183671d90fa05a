//===- Tokenizer.h - llama2.c and SentencePiece tokenizers -------*- C++ -*-===//
//
// Two tokenizers behind one interface:
//   - llama2.c `tokenizer.bin` (e.g. stories260K's tok512): SentencePiece-
//     style BPE as llama2.c's `encode` does it: a leading space is prepended,
//     every UTF-8 code point becomes its piece or its bytes (`<0xXX>`, id
//     byte + 3), then the adjacent pair whose concatenation is a piece with
//     the best score is merged, leftmost first, until none is left;
//   - SentencePiece `tokenizer.model` through libsentencepiece.
// Ids 1 and 2 are BOS and EOS for both (the LLaMA convention).
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_RUNTIME_TOKENIZER_H
#define MIXQ_RUNTIME_TOKENIZER_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <memory>
#include <string>
#include <vector>

namespace mixq {
namespace runtime {

class Tokenizer {
public:
  virtual ~Tokenizer();

  /// Opens `path` by its content: a SentencePiece model (protobuf) or a
  /// llama2.c tokenizer.bin. `vocabHint` > 0 checks the piece count.
  static llvm::Expected<std::unique_ptr<Tokenizer>> open(llvm::StringRef path);

  /// Token ids of `text` (with BOS / EOS when asked).
  virtual std::vector<int> encode(llvm::StringRef text, bool bos = false,
                                  bool eos = false) const = 0;
  /// The text of token `id` following token `prev` (a leading space after
  /// BOS is dropped, byte pieces become their byte).
  virtual std::string decodeToken(int prev, int id) const = 0;
  /// Concatenated decodeToken over `ids`.
  std::string decode(llvm::ArrayRef<int> ids) const;

  virtual int vocabSize() const = 0;
  virtual std::string piece(int id) const = 0;
  int bosId() const { return 1; }
  int eosId() const { return 2; }
};

/// The llama2.c tokenizer.bin reader and BPE encoder.
class Llama2cTokenizer : public Tokenizer {
public:
  /// Errors name `path` and what is wrong (truncated, bad length, ...).
  static llvm::Expected<std::unique_ptr<Llama2cTokenizer>>
  load(llvm::StringRef path);

  std::vector<int> encode(llvm::StringRef text, bool bos = false,
                          bool eos = false) const override;
  std::string decodeToken(int prev, int id) const override;
  int vocabSize() const override { return int(pieces_.size()); }
  std::string piece(int id) const override { return pieces_[id]; }
  float score(int id) const { return scores_[id]; }

private:
  int lookup(llvm::StringRef s) const;
  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::vector<int> sorted_; ///< ids sorted by piece, for lookup
};

/// SentencePiece `.model` through libsentencepiece.
class SentencePieceTokenizer : public Tokenizer {
public:
  static llvm::Expected<std::unique_ptr<SentencePieceTokenizer>>
  load(llvm::StringRef path);
  ~SentencePieceTokenizer() override;

  std::vector<int> encode(llvm::StringRef text, bool bos = false,
                          bool eos = false) const override;
  std::string decodeToken(int prev, int id) const override;
  int vocabSize() const override;
  std::string piece(int id) const override;

private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

} // namespace runtime
} // namespace mixq

#endif // MIXQ_RUNTIME_TOKENIZER_H
