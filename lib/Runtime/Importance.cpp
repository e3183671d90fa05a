//===- Importance.cpp - layer / head / channel importance --------*- C++ -*-===//

#include "mixq/Runtime/Importance.h"
#include "mixq/Runtime/Ops.h"

#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <map>

using namespace llvm;

namespace mixq {
namespace runtime {

static Error importanceError(const Twine &msg) {
  return createStringError(inconvertibleErrorCode(), msg);
}

StringRef importanceMethodName(ImportanceMethod m) {
  switch (m) {
  case ImportanceMethod::Entropy:
    return "entropy";
  case ImportanceMethod::Taylor1:
    return "taylor1";
  case ImportanceMethod::Taylor2:
    return "taylor2";
  }
  return "taylor1";
}

Expected<ImportanceMethod> parseImportanceMethod(StringRef s) {
  if (s == "entropy")
    return ImportanceMethod::Entropy;
  if (s == "taylor1")
    return ImportanceMethod::Taylor1;
  if (s == "taylor2")
    return ImportanceMethod::Taylor2;
  return importanceError("unknown importance method '" + s +
                         "' (expected entropy, taylor1 or taylor2)");
}

std::vector<double> ImportanceResult::importance() const {
  std::vector<double> v;
  for (const LayerImportance &l : layers)
    v.push_back(l.score);
  return v;
}

static json::Array toArray(const std::vector<double> &v) {
  json::Array a;
  for (double x : v)
    a.push_back(x);
  return a;
}

json::Value ImportanceResult::toJSON() const {
  const bool taylor = method != ImportanceMethod::Entropy;
  json::Array ls;
  for (const LayerImportance &l : layers) {
    json::Object o{{"layer", l.layer}, {"score", l.score}};
    if (taylor) {
      json::Object p;
      for (int r = 0; r < kNumProjectionRoles; ++r)
        p[kProjectionRoles[r]] = l.projections[r];
      o["projections"] = std::move(p);
      o["heads"] = toArray(l.heads);
      o["kv_heads"] = toArray(l.kvHeads);
      o["channels"] = toArray(l.channels);
    }
    ls.push_back(std::move(o));
  }
  json::Object o{{"version", 1},
                 {"method", importanceMethodName(method)},
                 {"samples", samples},
                 {"tokens", tokens},
                 {"importance", toArray(importance())},
                 {"layers", std::move(ls)}};
  if (!taylor) {
    o["answer_entropy"] = answerEntropy;
    o["cross_entropy"] = toArray(crossEntropy);
    std::vector<double> info;
    for (size_t i = 1; i < crossEntropy.size(); ++i)
      info.push_back(answerEntropy - crossEntropy[i]);
    o["information"] = toArray(info);
  }
  return o;
}

Error writeImportance(const ImportanceResult &result, StringRef path) {
  std::error_code ec;
  raw_fd_ostream os(path, ec);
  if (ec)
    return importanceError("cannot write '" + path + "': " + ec.message());
  os << formatv("{0:2}", result.toJSON()) << "\n";
  return Error::success();
}

//===----------------------------------------------------------------------===//
// Taylor (LLM-Pruner element scores)
//===----------------------------------------------------------------------===//

static Batch oneSequence(const Example &ex) {
  Batch b;
  b.addSequence(ex.tokens, ex.targets);
  return b;
}

/// Sums element scores e [out, in] over rows [r0, r1).
static double rowSum(const std::vector<float> &e, int64_t in, int64_t r0,
                     int64_t r1) {
  double s = 0.0;
  for (int64_t i = r0 * in; i < r1 * in; ++i)
    s += e[i];
  return s;
}

/// Sums element scores e [out, in] over columns [c0, c1).
static double colSum(const std::vector<float> &e, int64_t out, int64_t in,
                     int64_t c0, int64_t c1) {
  double s = 0.0;
  for (int64_t r = 0; r < out; ++r)
    for (int64_t c = c0; c < c1; ++c)
      s += e[r * in + c];
  return s;
}

static Error measureTaylor(Model &model, ArrayRef<const Example *> data,
                           const ImportanceOptions &opts,
                           ImportanceResult &res) {
  const bool second = opts.method == ImportanceMethod::Taylor2;
  const int64_t S = int64_t(data.size());
  MemoryTracker &mem = model.memory();
  std::vector<LinearLayer *> lins;
  for (DecoderLayer &L : model.layers())
    for (LinearLayer &lin : L.proj)
      lins.push_back(&lin);
  // taylor1: dW accumulates the mean gradient directly. taylor2: dW holds one
  // example's gradient, fisher the mean of its squares.
  std::vector<Buffer<float>> fisher(lins.size());
  for (size_t i = 0; i < lins.size(); ++i) {
    LinearLayer &lin = *lins[i];
    lin.dW = Buffer<float>(mem, MemCategory::Gradients, lin.out * lin.in);
    if (second)
      fisher[i] = Buffer<float>(mem, MemCategory::Gradients, lin.out * lin.in);
  }
  for (int64_t s = 0; s < S; ++s) {
    Batch b = oneSequence(*data[s]);
    const int64_t nt = b.numTargets();
    res.tokens += nt;
    // Per-example loss = mean over its target tokens.
    float scale = second ? float(1.0 / double(nt)) : float(1.0 / double(nt * S));
    double loss = model.forwardBackward(b, scale, nullptr);
    if (second)
      for (size_t i = 0; i < lins.size(); ++i) {
        Buffer<float> &g = lins[i]->dW;
        for (int64_t k = 0; k < g.size(); ++k)
          fisher[i][k] += g[k] * g[k] / float(S);
        g.zero();
      }
    if (opts.progress)
      errs() << formatv("importance {0}: sample {1}/{2} loss {3:F4}\n",
                        importanceMethodName(opts.method), s + 1, S,
                        loss / double(nt));
  }
  model.zeroGrads(); // adapter gradients, if any, are not ours to keep

  const int64_t hd = model.config().headDim;
  size_t li = 0;
  for (DecoderLayer &L : model.layers()) {
    LayerImportance out;
    out.layer = int64_t(res.layers.size());
    std::vector<float> e[kNumProjectionRoles];
    for (int r = 0; r < kNumProjectionRoles; ++r, ++li) {
      LinearLayer &lin = L.proj[r];
      std::vector<float> w = lin.baseWeight();
      const float *g = second ? fisher[li].data() : lin.dW.data();
      e[r].resize(w.size());
      double sum = 0.0;
      for (size_t k = 0; k < w.size(); ++k) {
        e[r][k] = second ? std::fabs(w[k] * g[k] * w[k])
                         : std::fabs(w[k] * g[k]);
        sum += e[r][k];
      }
      out.projections[r] = sum;
      out.score += sum;
      lin.dW = Buffer<float>();
      fisher[li] = Buffer<float>();
    }
    const int64_t h = L.shape.numHeads, kv = L.shape.numKVHeads,
                  f = L.shape.intermediateSize, grp = h / kv, d = L.q().in;
    for (int64_t j = 0; j < h; ++j)
      out.heads.push_back(rowSum(e[0], d, j * hd, (j + 1) * hd) +
                          colSum(e[3], L.o().out, h * hd, j * hd,
                                 (j + 1) * hd));
    for (int64_t k = 0; k < kv; ++k) {
      double s = rowSum(e[1], d, k * hd, (k + 1) * hd) +
                 rowSum(e[2], d, k * hd, (k + 1) * hd);
      for (int64_t j = k * grp; j < (k + 1) * grp; ++j)
        s += out.heads[j];
      out.kvHeads.push_back(s);
    }
    for (int64_t c = 0; c < f; ++c)
      out.channels.push_back(rowSum(e[4], d, c, c + 1) +
                             rowSum(e[5], d, c, c + 1) +
                             colSum(e[6], L.down().out, f, c, c + 1));
    res.layers.push_back(std::move(out));
  }
  return Error::success();
}

//===----------------------------------------------------------------------===//
// Entropy (QR-Adaptor, logit lens)
//===----------------------------------------------------------------------===//

static Error measureEntropy(Model &model, ArrayRef<const Example *> data,
                            const ImportanceOptions &opts,
                            ImportanceResult &res) {
  const int64_t S = int64_t(data.size()), L = int64_t(model.layers().size()),
                vocab = model.config().vocabSize,
                d = model.config().hiddenSize;
  std::vector<double> ce(L + 1, 0.0);
  std::map<std::vector<int>, int64_t> answers;
  for (int64_t s = 0; s < S; ++s) {
    const Example &ex = *data[s];
    std::vector<int64_t> rows;
    std::vector<int> gold;
    for (size_t i = 0; i < ex.targets.size(); ++i)
      if (ex.targets[i] >= 0) {
        rows.push_back(int64_t(i));
        gold.push_back(ex.targets[i]);
      }
    res.tokens += int64_t(rows.size());
    ++answers[gold];
    const int64_t nr = int64_t(rows.size());
    Buffer<float> xr(model.memory(), MemCategory::Workspace, nr * d),
        logits(model.memory(), MemCategory::Workspace, nr * vocab);
    model.setLayerObserver([&](int64_t index, const float *x, int64_t) {
      for (int64_t i = 0; i < nr; ++i)
        std::copy(x + rows[i] * d, x + (rows[i] + 1) * d,
                  xr.data() + i * d);
      model.decodeHidden(xr.data(), nr, logits.data());
      ce[index] += ops::crossEntropy(logits.data(), nr, vocab, gold.data(),
                                     nullptr, 0.0f) /
                   double(S);
    });
    KVCache cache = model.makeCache(int64_t(ex.tokens.size()));
    model.forwardInfer(ex.tokens, cache, {}, nullptr);
    model.setLayerObserver(nullptr);
    if (opts.progress)
      errs() << formatv("importance entropy: sample {0}/{1}\n", s + 1, S);
  }
  for (const auto &a : answers) {
    double p = double(a.second) / double(S);
    res.answerEntropy -= p * std::log(p);
  }
  res.crossEntropy = ce;
  for (int64_t l = 0; l < L; ++l) {
    LayerImportance out;
    out.layer = l;
    out.score = ce[l] - ce[l + 1];
    res.layers.push_back(std::move(out));
  }
  return Error::success();
}

Expected<ImportanceResult> measureImportance(Model &model,
                                             const std::vector<Example> &data,
                                             const ImportanceOptions &opts) {
  std::vector<const Example *> picked;
  for (const Example &ex : data) {
    if (opts.samples > 0 && int64_t(picked.size()) >= opts.samples)
      break;
    picked.push_back(&ex);
  }
  if (picked.empty())
    return importanceError("importance needs at least one calibration "
                           "example");
  for (size_t i = 0; i < picked.size(); ++i) {
    const Example &ex = *picked[i];
    if (ex.tokens.empty() || ex.targets.size() != ex.tokens.size())
      return importanceError(formatv("calibration example {0} is malformed "
                                     "({1} tokens, {2} targets)",
                                     i, ex.tokens.size(), ex.targets.size()));
    bool any = false;
    for (int t : ex.targets) {
      if (t >= model.config().vocabSize)
        return importanceError(formatv("calibration example {0} has target "
                                       "{1} outside the vocabulary of {2}",
                                       i, t, model.config().vocabSize));
      any |= t >= 0;
    }
    if (!any)
      return importanceError(
          formatv("calibration example {0} has no target token", i));
  }
  ImportanceResult res;
  res.method = opts.method;
  res.samples = int64_t(picked.size());
  Error e = opts.method == ImportanceMethod::Entropy
                ? measureEntropy(model, picked, opts, res)
                : measureTaylor(model, picked, opts, res);
  if (e)
    return std::move(e);
  return res;
}

} // namespace runtime
} // namespace mixq
