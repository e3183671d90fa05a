//===- Tokenizer.cpp - llama2.c and SentencePiece tokenizers -----*- C++ -*-===//

#include "mixq/Runtime/Tokenizer.h"

#include "llvm/ADT/StringMap.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MemoryBuffer.h"

#include <sentencepiece_processor.h>

#include <cstring>
#include <queue>

using namespace llvm;

namespace mixq {
namespace runtime {

static Error tokError(StringRef path, const Twine &msg) {
  return createStringError(inconvertibleErrorCode(),
                           "tokenizer '" + path + "': " + msg);
}

/// If `piece` is "<0xXX>", stores the byte and returns true.
static bool parseBytePiece(StringRef piece, unsigned char &byte) {
  if (piece.size() != 6 || !piece.starts_with("<0x") || !piece.ends_with(">"))
    return false;
  unsigned v = 0;
  if (piece.substr(3, 2).getAsInteger(16, v))
    return false;
  byte = static_cast<unsigned char>(v);
  return true;
}

Tokenizer::~Tokenizer() = default;

std::string Tokenizer::decode(ArrayRef<int> ids) const {
  std::string out;
  int prev = -1;
  for (int id : ids) {
    out += decodeToken(prev, id);
    prev = id;
  }
  return out;
}

Expected<std::unique_ptr<Tokenizer>> Tokenizer::open(StringRef path) {
  if (path.ends_with(".model")) {
    auto sp = SentencePieceTokenizer::load(path);
    if (!sp)
      return sp.takeError();
    return std::unique_ptr<Tokenizer>(std::move(*sp));
  }
  auto t = Llama2cTokenizer::load(path);
  if (!t)
    return t.takeError();
  return std::unique_ptr<Tokenizer>(std::move(*t));
}

//===----------------------------------------------------------------------===//
// Llama2cTokenizer
//===----------------------------------------------------------------------===//

Expected<std::unique_ptr<Llama2cTokenizer>>
Llama2cTokenizer::load(StringRef path) {
  auto buf = MemoryBuffer::getFile(path, /*IsText=*/false,
                                   /*RequiresNullTerminator=*/false);
  if (!buf)
    return tokError(path, "cannot read: " + buf.getError().message());
  StringRef data = (*buf)->getBuffer();
  if (data.size() < 4)
    return tokError(path, "truncated header (need 4 bytes for "
                          "max_token_length)");
  int32_t maxLen;
  std::memcpy(&maxLen, data.data(), 4);
  if (maxLen <= 0 || maxLen > 4096)
    return tokError(path, formatv("implausible max_token_length {0}", maxLen));
  auto tok = std::make_unique<Llama2cTokenizer>();
  size_t pos = 4;
  while (pos < data.size()) {
    if (data.size() - pos < 8)
      return tokError(path, formatv("truncated entry {0} at byte {1}",
                                    tok->pieces_.size(), pos));
    float score;
    int32_t len;
    std::memcpy(&score, data.data() + pos, 4);
    std::memcpy(&len, data.data() + pos + 4, 4);
    pos += 8;
    if (len < 0 || len > maxLen || size_t(len) > data.size() - pos)
      return tokError(path, formatv("entry {0} has invalid length {1} "
                                    "(max_token_length {2})",
                                    tok->pieces_.size(), len, maxLen));
    tok->pieces_.emplace_back(data.data() + pos, size_t(len));
    tok->scores_.push_back(score);
    pos += len;
  }
  if (tok->pieces_.size() < 3 + 256)
    return tokError(path, formatv("only {0} pieces; a llama2.c tokenizer "
                                  "has <unk>, <s>, </s> and 256 byte pieces",
                                  tok->pieces_.size()));
  tok->sorted_.resize(tok->pieces_.size());
  for (size_t i = 0; i < tok->sorted_.size(); ++i)
    tok->sorted_[i] = int(i);
  std::stable_sort(tok->sorted_.begin(), tok->sorted_.end(),
                   [&](int a, int b) {
                     return tok->pieces_[a] < tok->pieces_[b];
                   });
  return tok;
}

int Llama2cTokenizer::lookup(StringRef s) const {
  auto it = std::lower_bound(sorted_.begin(), sorted_.end(), s,
                             [&](int id, StringRef key) {
                               return StringRef(pieces_[id]) < key;
                             });
  if (it != sorted_.end() && pieces_[*it] == s)
    return *it;
  return -1;
}

std::vector<int> Llama2cTokenizer::encode(StringRef text, bool bos,
                                          bool eos) const {
  std::vector<int> tokens;
  // llama2.c stops at a NUL byte.
  text = text.substr(0, text.find('\0'));
  if (bos)
    tokens.push_back(bosId());
  if (!text.empty()) {
    int space = lookup(" ");
    if (space >= 0)
      tokens.push_back(space);
  }
  // Code points: their piece, or their bytes as byte pieces.
  for (size_t i = 0; i < text.size();) {
    size_t n = 1;
    while (i + n < text.size() && n < 4 &&
           (static_cast<unsigned char>(text[i + n]) & 0xC0) == 0x80)
      ++n;
    StringRef cp = text.substr(i, n);
    int id = lookup(cp);
    if (id >= 0) {
      tokens.push_back(id);
    } else {
      for (char c : cp)
        tokens.push_back(int(static_cast<unsigned char>(c)) + 3);
    }
    i += n;
  }
  // Greedy merges: the best-scoring pair, leftmost on ties, as llama2.c's
  // quadratic scan picks it, found with a heap over a linked list (stale
  // entries are skipped when popped).
  const int n = int(tokens.size());
  std::vector<int> prev(n), next(n);
  std::vector<bool> alive(n, true);
  for (int i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  struct Cand {
    float score;
    int left, right, leftId, rightId, merged;
  };
  auto worse = [](const Cand &a, const Cand &b) {
    if (a.score != b.score)
      return a.score < b.score;
    return a.left > b.left;
  };
  std::priority_queue<Cand, std::vector<Cand>, decltype(worse)> heap(worse);
  auto push = [&](int l) {
    if (l < 0 || next[l] < 0)
      return;
    int r = next[l];
    int m = lookup(pieces_[tokens[l]] + pieces_[tokens[r]]);
    if (m >= 0)
      heap.push({scores_[m], l, r, tokens[l], tokens[r], m});
  };
  for (int i = 0; i + 1 < n; ++i)
    push(i);
  while (!heap.empty()) {
    Cand c = heap.top();
    heap.pop();
    if (!alive[c.left] || !alive[c.right] || next[c.left] != c.right ||
        tokens[c.left] != c.leftId || tokens[c.right] != c.rightId)
      continue;
    tokens[c.left] = c.merged;
    alive[c.right] = false;
    next[c.left] = next[c.right];
    if (next[c.right] >= 0)
      prev[next[c.right]] = c.left;
    push(prev[c.left]);
    push(c.left);
  }
  std::vector<int> merged;
  merged.reserve(n);
  for (int i = 0; i < n; ++i)
    if (alive[i])
      merged.push_back(tokens[i]);
  tokens = std::move(merged);
  if (eos)
    tokens.push_back(eosId());
  return tokens;
}

std::string Llama2cTokenizer::decodeToken(int prev, int id) const {
  // BOS and EOS print nothing (their llama2.c pieces are "\n<s>\n" ...).
  if (id < 0 || id >= vocabSize() || id == bosId() || id == eosId())
    return "";
  StringRef p = pieces_[id];
  if (prev == bosId() && p.starts_with(" "))
    p = p.drop_front();
  unsigned char byte;
  if (parseBytePiece(p, byte))
    return std::string(1, char(byte));
  return p.str();
}

//===----------------------------------------------------------------------===//
// SentencePieceTokenizer
//===----------------------------------------------------------------------===//

struct SentencePieceTokenizer::Impl {
  sentencepiece::SentencePieceProcessor sp;
};

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

Expected<std::unique_ptr<SentencePieceTokenizer>>
SentencePieceTokenizer::load(StringRef path) {
  auto tok = std::make_unique<SentencePieceTokenizer>();
  tok->impl_ = std::make_unique<Impl>();
  auto status = tok->impl_->sp.Load(path.str());
  if (!status.ok())
    return tokError(path, "cannot load SentencePiece model: " +
                              status.ToString());
  return tok;
}

std::vector<int> SentencePieceTokenizer::encode(StringRef text, bool bos,
                                                bool eos) const {
  std::vector<int> ids;
  if (bos)
    ids.push_back(bosId());
  std::vector<int> body;
  if (!impl_->sp.Encode(absl::string_view(text.data(), text.size()), &body)
           .ok())
    body.clear();
  ids.insert(ids.end(), body.begin(), body.end());
  if (eos)
    ids.push_back(eosId());
  return ids;
}

std::string SentencePieceTokenizer::decodeToken(int prev, int id) const {
  if (id < 0 || id >= vocabSize() || impl_->sp.IsControl(id))
    return "";
  std::string p = impl_->sp.IdToPiece(id);
  unsigned char byte;
  if (impl_->sp.IsByte(id) && parseBytePiece(p, byte))
    return std::string(1, char(byte));
  std::string out;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p.compare(i, 3, "\xE2\x96\x81") == 0) { // U+2581
      out += ' ';
      i += 2;
    } else {
      out += p[i];
    }
  }
  if ((prev == bosId() || prev < 0) && !out.empty() && out[0] == ' ')
    out.erase(0, 1);
  return out;
}

int SentencePieceTokenizer::vocabSize() const {
  return impl_->sp.GetPieceSize();
}

std::string SentencePieceTokenizer::piece(int id) const {
  return impl_->sp.IdToPiece(id);
}

} // namespace runtime
} // namespace mixq
