//===- Eval.cpp - multiple-choice evaluation as lm-evaluation-harness -*- C++ -*-===//

#include "mixq/Runtime/Eval.h"
#include "mixq/Runtime/Data.h"
#include "mixq/Runtime/Ops.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>
#include <cmath>
#include <set>

using namespace llvm;

namespace mixq {
namespace runtime {

static Error evalError(StringRef file, const Twine &msg) {
  return createStringError(inconvertibleErrorCode(), file + ": " + msg);
}

json::Object TaskResult::toJSON() const {
  json::Object o{{"n", count}, {"wall_s", wallS}};
  if (isPerplexity) {
    o["ppl"] = ppl;
    o["tokens"] = tokens;
  } else {
    o["acc"] = acc;
    o["acc_norm"] = accNorm;
  }
  return o;
}

//===----------------------------------------------------------------------===//
// Loaders
//===----------------------------------------------------------------------===//

static std::string dataPath(StringRef dir, StringRef a, StringRef b = "",
                            StringRef c = "") {
  SmallString<256> p(dir);
  for (StringRef part : {a, b, c})
    if (!part.empty())
      sys::path::append(p, part);
  return std::string(p);
}

/// Calls fn(object, lineNo) for each JSON line of `path`.
static Error forEachJSONLine(
    StringRef path, int64_t limit,
    function_ref<Error(const json::Object &, size_t)> fn) {
  auto buf = MemoryBuffer::getFile(path, /*IsText=*/true);
  if (!buf)
    return evalError(path, "cannot read: " + buf.getError().message());
  SmallVector<StringRef, 0> lines;
  (*buf)->getBuffer().split(lines, '\n');
  int64_t done = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].trim().empty())
      continue;
    if (limit >= 0 && done >= limit)
      break;
    auto v = json::parse(lines[i]);
    if (!v)
      return evalError(path, formatv("line {0}: malformed JSON: {1}", i + 1,
                                     toString(v.takeError())));
    const json::Object *o = v->getAsObject();
    if (!o)
      return evalError(path, formatv("line {0}: not an object", i + 1));
    if (Error e = fn(*o, i + 1))
      return e;
    ++done;
  }
  return Error::success();
}

/// query/choices/gold items; `ctxOf` rebuilds the harness context.
static Expected<std::vector<MCItem>>
loadQueryChoices(StringRef path, int64_t limit,
                 function_ref<std::string(StringRef)> ctxOf) {
  std::vector<MCItem> items;
  Error e = forEachJSONLine(path, limit, [&](const json::Object &o,
                                             size_t line) -> Error {
    auto q = o.getString("query");
    const json::Array *ch = o.getArray("choices");
    auto gold = o.getInteger("gold");
    if (!q || !ch || ch->empty() || !gold || *gold < 0 ||
        *gold >= int64_t(ch->size()))
      return evalError(path, formatv("line {0}: needs query, choices and a "
                                     "gold index within the choices",
                                     line));
    MCItem it;
    std::string ctx = ctxOf(*q);
    for (const json::Value &c : *ch) {
      auto s = c.getAsString();
      if (!s)
        return evalError(path, formatv("line {0}: choices must be strings",
                                       line));
      it.requests.push_back({ctx, " " + s->str()});
      it.choiceChars.push_back(double(s->size()));
    }
    it.gold = int(*gold);
    items.push_back(std::move(it));
    return Error::success();
  });
  if (e)
    return std::move(e);
  return items;
}

static Expected<std::vector<MCItem>> loadWinogrande(StringRef path,
                                                    int64_t limit) {
  std::vector<MCItem> items;
  Error e = forEachJSONLine(path, limit, [&](const json::Object &o,
                                             size_t line) -> Error {
    const json::Array *opts = o.getArray("context_options");
    auto cont = o.getString("continuation");
    auto gold = o.getInteger("gold");
    if (!opts || opts->empty() || !cont || !gold || *gold < 0 ||
        *gold >= int64_t(opts->size()))
      return evalError(path, formatv("line {0}: needs context_options, "
                                     "continuation and gold",
                                     line));
    MCItem it;
    for (const json::Value &c : *opts) {
      auto s = c.getAsString();
      if (!s)
        return evalError(path, formatv("line {0}: context_options must be "
                                       "strings",
                                       line));
      it.requests.push_back({s->str(), " " + cont->trim().str()});
      it.choiceChars.push_back(double(cont->trim().size()));
    }
    it.gold = int(*gold);
    items.push_back(std::move(it));
    return Error::success();
  });
  if (e)
    return std::move(e);
  return items;
}

/// lm-eval's hellaswag preprocess: strip, " [title]" -> ". ", drop [..],
/// collapse double spaces.
static std::string hellaswagPreprocess(StringRef text) {
  std::string s = text.trim().str();
  for (size_t p; (p = s.find(" [title]")) != std::string::npos;)
    s.replace(p, 8, ". ");
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '[') {
      size_t close = s.find(']', i);
      if (close != std::string::npos) {
        i = close;
        continue;
      }
    }
    out += s[i];
  }
  for (size_t p; (p = out.find("  ")) != std::string::npos;)
    out.replace(p, 2, " ");
  return out;
}

static Expected<std::vector<MCItem>> loadHellaswag(StringRef path,
                                                   int64_t limit) {
  auto buf = MemoryBuffer::getFile(path, /*IsText=*/true);
  if (!buf)
    return evalError(path, "cannot read: " + buf.getError().message());
  SmallVector<StringRef, 0> lines;
  (*buf)->getBuffer().split(lines, '\n');
  while (!lines.empty() && lines.back().trim().empty())
    lines.pop_back();
  if (lines.size() % 6 != 0)
    return evalError(path, formatv("{0} lines: expected 6 per item "
                                   "(context, gold, 4 endings)",
                                   lines.size()));
  std::vector<MCItem> items;
  for (size_t i = 0; i < lines.size(); i += 6) {
    if (limit >= 0 && int64_t(items.size()) >= limit)
      break;
    unsigned gold;
    if (lines[i + 1].trim().getAsInteger(10, gold) || gold > 3)
      return evalError(path, formatv("line {0}: gold index must be 0..3",
                                     i + 2));
    MCItem it;
    std::string ctx = hellaswagPreprocess(lines[i]);
    for (int k = 0; k < 4; ++k) {
      std::string end = hellaswagPreprocess(lines[i + 2 + k]);
      it.requests.push_back({ctx, " " + end});
      it.choiceChars.push_back(double(end.size()));
    }
    it.gold = int(gold);
    items.push_back(std::move(it));
  }
  return items;
}

/// Splits one CSV record (RFC 4180 quoting) starting at `pos`.
static bool parseCSVRecord(StringRef data, size_t &pos,
                           std::vector<std::string> &fields) {
  fields.clear();
  std::string cur;
  bool quoted = false, any = false;
  while (pos < data.size()) {
    char c = data[pos++];
    any = true;
    if (quoted) {
      if (c == '"') {
        if (pos < data.size() && data[pos] == '"') {
          cur += '"';
          ++pos;
        } else {
          quoted = false;
        }
      } else {
        cur += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      fields.push_back(cur);
      cur.clear();
    } else if (c == '\n') {
      break;
    } else if (c != '\r') {
      cur += c;
    }
  }
  if (any)
    fields.push_back(cur);
  return any && !quoted;
}

static Expected<std::vector<std::vector<std::string>>>
readMMLU(StringRef path) {
  auto buf = MemoryBuffer::getFile(path, /*IsText=*/true);
  if (!buf)
    return evalError(path, "cannot read: " + buf.getError().message());
  StringRef data = (*buf)->getBuffer();
  std::vector<std::vector<std::string>> rows;
  size_t pos = 0;
  std::vector<std::string> f;
  bool header = true;
  while (pos < data.size()) {
    if (!parseCSVRecord(data, pos, f))
      return evalError(path, formatv("record {0}: unterminated quote",
                                     rows.size() + 1));
    if (f.size() == 1 && StringRef(f[0]).trim().empty())
      continue;
    if (header && !f.empty() && f[0] == "question") {
      header = false;
      continue;
    }
    header = false;
    if (f.size() != 6)
      return evalError(path, formatv("record {0}: {1} fields, expected "
                                     "question,choice0..3,answer",
                                     rows.size() + 1, f.size()));
    rows.push_back(f);
  }
  return rows;
}

static Expected<int> mmluAnswer(StringRef path, StringRef a) {
  a = a.trim();
  unsigned v;
  if (!a.getAsInteger(10, v) && v < 4)
    return int(v);
  if (a.size() == 1 && a[0] >= 'A' && a[0] <= 'D')
    return a[0] - 'A';
  return evalError(path, "answer '" + a + "' is not 0..3 or A..D");
}

static std::string mmluQuestion(const std::vector<std::string> &r) {
  return StringRef(r[0]).trim().str() + "\nA. " + r[1] + "\nB. " + r[2] +
         "\nC. " + r[3] + "\nD. " + r[4] + "\nAnswer:";
}

static Expected<std::vector<MCItem>> loadMMLU(StringRef dataDir,
                                              int64_t limit) {
  std::string testDir = dataPath(dataDir, "eval", "mmlu", "test");
  std::vector<std::string> subjects;
  std::error_code ec;
  for (sys::fs::directory_iterator it(testDir, ec), end; it != end && !ec;
       it.increment(ec)) {
    StringRef name = sys::path::filename(it->path());
    if (name.ends_with("_test.csv"))
      subjects.push_back(name.drop_back(strlen("_test.csv")).str());
  }
  if (ec || subjects.empty())
    return evalError(testDir, "no *_test.csv files");
  std::sort(subjects.begin(), subjects.end());
  std::vector<MCItem> items;
  for (const std::string &subj : subjects) {
    std::string devPath = dataPath(dataDir, "eval", "mmlu", "dev") + "/" +
                          subj + "_dev.csv";
    auto dev = readMMLU(devPath);
    if (!dev)
      return dev.takeError();
    auto test = readMMLU(testDir + "/" + subj + "_test.csv");
    if (!test)
      return test.takeError();
    std::string name = subj;
    std::replace(name.begin(), name.end(), '_', ' ');
    std::string prefix = "The following are multiple choice questions (with "
                         "answers) about " +
                         name + ".\n\n";
    for (size_t k = 0; k < std::min<size_t>(5, dev->size()); ++k) {
      auto a = mmluAnswer(devPath, (*dev)[k][5]);
      if (!a)
        return a.takeError();
      prefix += mmluQuestion((*dev)[k]) + " " + char('A' + *a) + "\n\n";
    }
    for (size_t i = 0; i < test->size(); ++i) {
      if (limit >= 0 && int64_t(i) >= limit)
        break;
      auto a = mmluAnswer(testDir + "/" + subj + "_test.csv", (*test)[i][5]);
      if (!a)
        return a.takeError();
      MCItem it;
      std::string ctx = prefix + mmluQuestion((*test)[i]);
      for (int c = 0; c < 4; ++c) {
        it.requests.push_back({ctx, std::string(" ") + char('A' + c)});
        it.choiceChars.push_back(1.0);
      }
      it.gold = *a;
      items.push_back(std::move(it));
    }
  }
  return items;
}

static Expected<std::vector<MCItem>> loadBabiTask(StringRef dataDir,
                                                  StringRef task,
                                                  int64_t limit) {
  std::string dir = dataPath(dataDir, "tasks", "babi");
  auto trainPath = babiPath(dir, task, "train");
  if (!trainPath)
    return trainPath.takeError();
  auto testPath = babiPath(dir, task, "test");
  if (!testPath)
    return testPath.takeError();
  auto train = loadBabi(*trainPath);
  if (!train)
    return train.takeError();
  auto test = loadBabi(*testPath);
  if (!test)
    return test.takeError();
  std::set<std::string> answerSet;
  for (const BabiQuestion &q : *train)
    answerSet.insert(q.answer);
  std::vector<std::string> answers(answerSet.begin(), answerSet.end());
  std::vector<MCItem> items;
  for (const BabiQuestion &q : *test) {
    if (limit >= 0 && int64_t(items.size()) >= limit)
      break;
    MCItem it;
    it.gold = -1;
    for (size_t a = 0; a < answers.size(); ++a) {
      it.requests.push_back({q.prompt, " " + answers[a]});
      it.choiceChars.push_back(double(answers[a].size()));
      if (answers[a] == q.answer)
        it.gold = int(a);
    }
    if (it.gold < 0)
      return evalError(*testPath, "answer '" + q.answer +
                                      "' never appears in the train split");
    items.push_back(std::move(it));
  }
  return items;
}

Expected<std::vector<MCItem>> loadTask(StringRef task, StringRef dataDir,
                                       int64_t limit) {
  auto file = [&](StringRef name) { return dataPath(dataDir, "eval", name); };
  if (task == "arc_easy" || task == "arc_challenge")
    return loadQueryChoices(file((task + ".jsonl").str()), limit,
                            [](StringRef q) { return (q + "\nAnswer:").str(); });
  if (task == "boolq")
    return loadQueryChoices(file("boolq.jsonl"), limit, [](StringRef q) {
      // llm-foundry: "Passage: P\nQuestion: Q" -> harness "P\nQuestion: Q?
      // \nAnswer:".
      q.consume_front("Passage: ");
      std::string s = q.rtrim().str();
      if (!StringRef(s).ends_with("?"))
        s += "?";
      return s + "\nAnswer:";
    });
  if (task == "piqa")
    return loadQueryChoices(file("piqa.jsonl"), limit, [](StringRef q) {
      return (q.rtrim("\n") + "\nAnswer:").str();
    });
  if (task == "openbookqa")
    return loadQueryChoices(file("openbook_qa.jsonl"), limit,
                            [](StringRef q) { return q.str(); });
  if (task == "winogrande")
    return loadWinogrande(file("winogrande.jsonl"), limit);
  if (task == "hellaswag")
    return loadHellaswag(file("hellaswag_val.txt"), limit);
  if (task == "mmlu")
    return loadMMLU(dataDir, limit);
  if (task.starts_with("babi:"))
    return loadBabiTask(dataDir, task.drop_front(5), limit);
  return evalError(task, "unknown task (arc_easy, arc_challenge, boolq, "
                         "piqa, openbookqa, winogrande, hellaswag, mmlu, "
                         "babi:qaN, ppl:<file>)");
}

//===----------------------------------------------------------------------===//
// Scoring
//===----------------------------------------------------------------------===//

/// Scores one full (already truncated) sequence: the last `contLen` tokens.
static double scoreWhole(Model &model, const std::vector<int> &seq,
                         int64_t contLen) {
  const int64_t v = model.config().vocabSize;
  const int64_t n = int64_t(seq.size()) - 1; // inputs
  KVCache cache = model.makeCache(n);
  std::vector<int64_t> rows;
  for (int64_t i = n - contLen; i < n; ++i)
    rows.push_back(i);
  std::vector<float> logits(rows.size() * v);
  model.forwardInfer(ArrayRef<int>(seq).take_front(n), cache, rows,
                     logits.data());
  double ll = 0.0;
  for (size_t r = 0; r < rows.size(); ++r)
    ll += ops::logProb(logits.data() + r * v, v, seq[rows[r] + 1]);
  return ll;
}

std::vector<double>
scoreContinuations(Model &model, const std::vector<int> &ctxIn,
                   const std::vector<std::vector<int>> &conts) {
  const int64_t maxLen = model.config().maxSeqLen,
                v = model.config().vocabSize;
  // An empty context is the harness' prefix token (EOS for LLaMA).
  std::vector<int> ctx = ctxIn.empty() ? std::vector<int>{2} : ctxIn;
  const int64_t c = int64_t(ctx.size());
  std::vector<double> out(conts.size(), 0.0);
  int64_t longest = 0;
  for (const auto &k : conts)
    longest = std::max<int64_t>(longest, int64_t(k.size()));
  if (c + longest - 1 > maxLen) {
    // Left truncation differs per choice: score each on its own.
    for (size_t i = 0; i < conts.size(); ++i) {
      if (conts[i].empty())
        continue;
      std::vector<int> seq = ctx;
      seq.insert(seq.end(), conts[i].begin(), conts[i].end());
      if (int64_t(seq.size()) > maxLen + 1)
        seq.erase(seq.begin(), seq.end() - (maxLen + 1));
      out[i] = scoreWhole(model, seq, int64_t(conts[i].size()));
    }
    return out;
  }
  KVCache cache = model.makeCache(c + std::max<int64_t>(0, longest - 1));
  std::vector<float> last(v), logits;
  model.forwardInfer(ctx, cache, {c - 1}, last.data());
  for (size_t i = 0; i < conts.size(); ++i) {
    const std::vector<int> &k = conts[i];
    if (k.empty())
      continue;
    double ll = ops::logProb(last.data(), v, k[0]);
    if (k.size() > 1) {
      cache.length = c;
      int64_t m = int64_t(k.size()) - 1;
      std::vector<int64_t> rows(m);
      for (int64_t j = 0; j < m; ++j)
        rows[j] = j;
      logits.resize(size_t(m * v));
      model.forwardInfer(ArrayRef<int>(k).take_front(m), cache, rows,
                         logits.data());
      for (int64_t j = 0; j < m; ++j)
        ll += ops::logProb(logits.data() + j * v, v, k[j + 1]);
    }
    out[i] = ll;
  }
  return out;
}

TaskResult evaluateItems(Model &model, const Tokenizer &tok,
                         const std::vector<MCItem> &items,
                         const EvalOptions &opts, StringRef name) {
  auto start = std::chrono::steady_clock::now();
  bool bos = opts.bos.value_or(name.starts_with("babi:"));
  TaskResult r;
  r.task = name.str();
  int64_t correct = 0, correctNorm = 0;
  int64_t every = std::max<int64_t>(1, int64_t(items.size()) / 10);
  for (size_t it = 0; it < items.size(); ++it) {
    const MCItem &item = items[it];
    std::vector<double> ll(item.requests.size());
    // Group requests by context so a shared context runs once.
    std::vector<bool> done(item.requests.size(), false);
    for (size_t i = 0; i < item.requests.size(); ++i) {
      if (done[i])
        continue;
      std::vector<size_t> group;
      for (size_t j = i; j < item.requests.size(); ++j)
        if (!done[j] && item.requests[j].first == item.requests[i].first)
          group.push_back(j);
      std::vector<int> ctx;
      std::vector<std::vector<int>> conts;
      for (size_t j : group) {
        std::vector<int> c, k;
        encodePair(tok, item.requests[j].first, item.requests[j].second, bos,
                   c, k);
        ctx = c;
        conts.push_back(std::move(k));
        done[j] = true;
      }
      std::vector<double> s = scoreContinuations(model, ctx, conts);
      for (size_t g = 0; g < group.size(); ++g)
        ll[group[g]] = s[g];
    }
    size_t best = 0, bestNorm = 0;
    for (size_t i = 1; i < ll.size(); ++i) {
      if (ll[i] > ll[best])
        best = i;
      if (ll[i] / item.choiceChars[i] >
          ll[bestNorm] / item.choiceChars[bestNorm])
        bestNorm = i;
    }
    correct += int(best) == item.gold;
    correctNorm += int(bestNorm) == item.gold;
    r.itemScores.push_back(std::move(ll));
    if (opts.progress && ((it + 1) % every == 0 || it + 1 == items.size()))
      errs() << formatv("{0}: {1}/{2} acc {3:F4}\n", name, it + 1,
                        items.size(), double(correct) / double(it + 1));
  }
  r.count = int64_t(items.size());
  if (r.count) {
    r.acc = double(correct) / double(r.count);
    r.accNorm = double(correctNorm) / double(r.count);
  }
  r.wallS = std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                          start)
                .count();
  return r;
}

Expected<TaskResult> evaluatePerplexity(Model &model, const Tokenizer &tok,
                                        StringRef path,
                                        const EvalOptions &opts) {
  auto start = std::chrono::steady_clock::now();
  auto paras = loadTextParagraphs(path);
  if (!paras)
    return paras.takeError();
  std::vector<int> stream;
  for (const std::string &p : *paras) {
    std::vector<int> ids = tok.encode(p, opts.bos.value_or(true));
    stream.insert(stream.end(), ids.begin(), ids.end());
  }
  const int64_t w = model.config().maxSeqLen;
  double nll = 0.0;
  int64_t count = 0, windows = 0;
  for (int64_t s = 0; s + 1 < int64_t(stream.size()); s += w, ++windows) {
    if (opts.limit >= 0 && windows >= opts.limit)
      break;
    int64_t e = std::min<int64_t>(int64_t(stream.size()), s + w + 1);
    Batch b;
    std::vector<int> in(stream.begin() + s, stream.begin() + e - 1);
    std::vector<int> tg(stream.begin() + s + 1, stream.begin() + e);
    b.addSequence(in, tg);
    nll += model.loss(b);
    count += int64_t(tg.size());
  }
  TaskResult r;
  r.task = ("ppl:" + path).str();
  r.isPerplexity = true;
  r.count = windows;
  r.tokens = count;
  r.ppl = std::exp(nll / double(std::max<int64_t>(1, count)));
  r.wallS = std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                          start)
                .count();
  return r;
}

Expected<TaskResult> runTask(Model &model, const Tokenizer &tok,
                             StringRef task, StringRef dataDir,
                             const EvalOptions &opts) {
  if (task.starts_with("ppl:"))
    return evaluatePerplexity(model, tok, task.drop_front(4), opts);
  auto items = loadTask(task, dataDir, opts.limit);
  if (!items)
    return items.takeError();
  return evaluateItems(model, tok, *items, opts, task);
}

} // namespace runtime
} // namespace mixq
