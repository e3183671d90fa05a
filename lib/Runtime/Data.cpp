//===- Data.cpp - fine-tuning and evaluation data sets ------------*- C++ -*-===//

#include "mixq/Runtime/Data.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <algorithm>

using namespace llvm;

namespace mixq {
namespace runtime {

static Error dataError(StringRef file, const Twine &msg) {
  return createStringError(inconvertibleErrorCode(), file + ": " + msg);
}

static Expected<std::unique_ptr<MemoryBuffer>> readFile(StringRef path) {
  auto buf = MemoryBuffer::getFile(path, /*IsText=*/true);
  if (!buf)
    return dataError(path, "cannot read: " + buf.getError().message());
  return std::move(*buf);
}

//===----------------------------------------------------------------------===//
// bAbI
//===----------------------------------------------------------------------===//

Expected<std::vector<BabiQuestion>> loadBabi(StringRef path) {
  auto buf = readFile(path);
  if (!buf)
    return buf.takeError();
  std::vector<BabiQuestion> out;
  std::vector<std::string> story;
  SmallVector<StringRef, 0> lines;
  (*buf)->getBuffer().split(lines, '\n');
  int64_t prevNum = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    StringRef line = lines[i].rtrim("\r");
    if (line.trim().empty())
      continue;
    auto [numStr, rest] = line.split(' ');
    int64_t num;
    if (numStr.getAsInteger(10, num) || num <= 0)
      return dataError(path, formatv("line {0}: expected '<number> <text>', "
                                     "got '{1}'",
                                     i + 1, line));
    if (num == 1)
      story.clear();
    else if (num != prevNum + 1)
      return dataError(path, formatv("line {0}: line number {1} does not "
                                     "follow {2}",
                                     i + 1, num, prevNum));
    prevNum = num;
    if (!rest.contains('\t')) {
      story.push_back(rest.trim().str());
      continue;
    }
    SmallVector<StringRef, 3> fields;
    rest.split(fields, '\t');
    if (fields.size() < 2 || fields[1].trim().empty())
      return dataError(path, formatv("line {0}: a question line needs "
                                     "'question<TAB>answer<TAB>support'",
                                     i + 1));
    BabiQuestion q;
    q.prompt = join(story, " ") + "\nQuestion: " + fields[0].trim().str() +
               "\nAnswer:";
    q.answer = fields[1].trim().str();
    out.push_back(std::move(q));
  }
  if (out.empty())
    return dataError(path, "no questions found");
  return out;
}

Expected<std::string> babiPath(StringRef babiDir, StringRef task,
                               StringRef split) {
  std::error_code ec;
  std::string prefix = (task + "_").str(), suffix = ("_" + split + ".txt").str();
  std::vector<std::string> found;
  for (sys::fs::directory_iterator it(babiDir, ec), end; it != end && !ec;
       it.increment(ec)) {
    StringRef name = sys::path::filename(it->path());
    if (name.starts_with(prefix) && name.ends_with(suffix))
      found.push_back(it->path());
  }
  if (ec)
    return dataError(babiDir, "cannot list: " + ec.message());
  if (found.size() != 1)
    return dataError(babiDir, formatv("expected one file {0}*{1}, found {2}",
                                      prefix, suffix, found.size()));
  return found.front();
}

//===----------------------------------------------------------------------===//
// Tokenisation helpers
//===----------------------------------------------------------------------===//

void encodePair(const Tokenizer &tok, StringRef context, StringRef continuation,
                bool bos, std::vector<int> &ctx, std::vector<int> &cont) {
  // lm-eval moves trailing spaces of the context into the continuation.
  size_t keep = context.rtrim(' ').size();
  std::string c = context.substr(0, keep).str();
  std::string k = (context.substr(keep) + continuation).str();
  ctx = tok.encode(c, bos);
  std::vector<int> whole = tok.encode(c + k, bos);
  size_t common = std::min(ctx.size(), whole.size());
  cont.assign(whole.begin() + common, whole.end());
}

Example makeCompletionExample(const std::vector<int> &ctx,
                              const std::vector<int> &cont, int64_t maxLen,
                              bool lossOnPrompt) {
  std::vector<int> all = ctx;
  all.insert(all.end(), cont.begin(), cont.end());
  int64_t firstTarget = int64_t(ctx.size()); // index in `all` of cont[0]
  if (int64_t(all.size()) > maxLen + 1) {
    int64_t drop = int64_t(all.size()) - (maxLen + 1);
    all.erase(all.begin(), all.begin() + drop);
    firstTarget = std::max<int64_t>(1, firstTarget - drop);
  }
  if (lossOnPrompt)
    firstTarget = 1;
  Example ex;
  ex.tokens.assign(all.begin(), all.end() - 1);
  ex.targets.assign(ex.tokens.size(), -1);
  for (int64_t i = firstTarget; i < int64_t(all.size()); ++i)
    ex.targets[i - 1] = all[i];
  return ex;
}

std::string alpacaPrompt(StringRef instruction, StringRef input) {
  if (input.trim().empty())
    return ("Below is an instruction that describes a task. Write a response "
            "that appropriately completes the request.\n\n### Instruction:\n" +
            instruction + "\n\n### Response:\n")
        .str();
  return ("Below is an instruction that describes a task, paired with an "
          "input that provides further context. Write a response that "
          "appropriately completes the request.\n\n### Instruction:\n" +
          instruction + "\n\n### Input:\n" + input + "\n\n### Response:\n")
      .str();
}

//===----------------------------------------------------------------------===//
// Training sets
//===----------------------------------------------------------------------===//

static Expected<std::vector<Example>>
loadAlpaca(StringRef path, const Tokenizer &tok, const DataOptions &opts) {
  auto buf = readFile(path);
  if (!buf)
    return buf.takeError();
  auto json = json::parse((*buf)->getBuffer());
  if (!json)
    return dataError(path, "malformed JSON: " + toString(json.takeError()));
  const json::Array *arr = json->getAsArray();
  if (!arr)
    return dataError(path, "expected a JSON array of {instruction, input, "
                           "output} objects");
  std::vector<Example> out;
  for (size_t i = 0; i < arr->size(); ++i) {
    const json::Object *o = (*arr)[i].getAsObject();
    auto ins = o ? o->getString("instruction") : std::nullopt;
    auto outp = o ? o->getString("output") : std::nullopt;
    if (!ins || !outp)
      return dataError(path, formatv("item {0}: needs string fields "
                                     "'instruction' and 'output'",
                                     i));
    StringRef input = o->getString("input").value_or("");
    std::vector<int> ctx = tok.encode(alpacaPrompt(*ins, input), opts.bos);
    std::vector<int> cont = tok.encode(*outp);
    // The response follows a newline: drop the dummy-prefix space piece.
    if (!cont.empty() && tok.piece(cont[0]) == " ")
      cont.erase(cont.begin());
    cont.push_back(tok.eosId());
    Example ex =
        makeCompletionExample(ctx, cont, opts.seqLen, opts.lossOnPrompt);
    // Keep the head of a long response rather than a context-free tail.
    if (int64_t(ctx.size() + cont.size()) > opts.seqLen + 1) {
      std::vector<int> all = ctx;
      all.insert(all.end(), cont.begin(), cont.end());
      all.resize(opts.seqLen + 1);
      ex.tokens.assign(all.begin(), all.end() - 1);
      ex.targets.assign(ex.tokens.size(), -1);
      for (size_t j = opts.lossOnPrompt ? 1 : ctx.size(); j < all.size(); ++j)
        ex.targets[j - 1] = all[j];
    }
    out.push_back(std::move(ex));
  }
  if (out.empty())
    return dataError(path, "no examples");
  return out;
}

Expected<std::vector<std::string>> loadTextParagraphs(StringRef path) {
  auto buf = readFile(path);
  if (!buf)
    return buf.takeError();
  StringRef data = (*buf)->getBuffer();
  std::vector<std::string> paras;
  if (path.ends_with(".jsonl")) {
    SmallVector<StringRef, 0> lines;
    data.split(lines, '\n');
    for (size_t i = 0; i < lines.size(); ++i) {
      if (lines[i].trim().empty())
        continue;
      auto v = json::parse(lines[i]);
      if (!v)
        return dataError(path, formatv("line {0}: malformed JSON: {1}", i + 1,
                                       toString(v.takeError())));
      const json::Object *o = v->getAsObject();
      auto text = o ? o->getString("text") : std::nullopt;
      if (!text)
        return dataError(path,
                         formatv("line {0}: needs a string field 'text'", i + 1));
      paras.push_back(text->str());
    }
  } else {
    // Paragraphs are separated by blank lines; each keeps its newlines.
    std::string cur;
    SmallVector<StringRef, 0> lines;
    data.split(lines, '\n');
    for (StringRef l : lines) {
      if (l.trim().empty()) {
        if (!cur.empty())
          paras.push_back(cur);
        cur.clear();
        continue;
      }
      if (!cur.empty())
        cur += "\n";
      cur += l.str();
    }
    if (!cur.empty())
      paras.push_back(cur);
  }
  if (paras.empty())
    return dataError(path, "no text");
  return paras;
}

static Expected<std::vector<Example>>
loadText(StringRef path, const Tokenizer &tok, const DataOptions &opts) {
  auto paras = loadTextParagraphs(path);
  if (!paras)
    return paras.takeError();
  std::vector<int> stream;
  for (const std::string &p : *paras) {
    std::vector<int> ids = tok.encode(p, opts.bos);
    stream.insert(stream.end(), ids.begin(), ids.end());
  }
  std::vector<Example> out;
  const int64_t w = opts.seqLen;
  for (int64_t s = 0; s + w + 1 <= int64_t(stream.size()); s += w) {
    Example ex;
    ex.tokens.assign(stream.begin() + s, stream.begin() + s + w);
    ex.targets.assign(stream.begin() + s + 1, stream.begin() + s + w + 1);
    out.push_back(std::move(ex));
  }
  if (out.empty())
    return dataError(path, formatv("only {0} tokens: fewer than one window "
                                   "of {1}",
                                   stream.size(), w + 1));
  return out;
}

Expected<std::vector<Example>> loadTrainingSet(StringRef spec,
                                               StringRef dataDir,
                                               const Tokenizer &tok,
                                               const DataOptions &opts) {
  auto [kind, arg] = spec.split(':');
  if (arg.empty())
    return dataError(spec, "expected babi:<task|file>, alpaca:<file> or "
                           "text:<file>");
  if (kind == "alpaca")
    return loadAlpaca(arg, tok, opts);
  if (kind == "text")
    return loadText(arg, tok, opts);
  if (kind != "babi")
    return dataError(spec, "unknown data kind '" + kind +
                               "' (babi, alpaca, text)");
  std::string file = arg.str();
  if (!sys::fs::exists(file)) {
    SmallString<256> dir(dataDir);
    sys::path::append(dir, "tasks", "babi");
    auto p = babiPath(dir, arg, "train");
    if (!p)
      return p.takeError();
    file = *p;
  }
  auto qs = loadBabi(file);
  if (!qs)
    return qs.takeError();
  std::vector<Example> out;
  for (const BabiQuestion &q : *qs) {
    std::vector<int> ctx, cont;
    encodePair(tok, q.prompt, " " + q.answer, opts.bos, ctx, cont);
    out.push_back(
        makeCompletionExample(ctx, cont, opts.seqLen, opts.lossOnPrompt));
  }
  return out;
}

} // namespace runtime
} // namespace mixq
