//===- Report.cpp - Pareto front, hypervolume, plots, chosen config -*- C++ -*-===//

#include "mixq/Search/Report.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>

using namespace mixq::search;
using llvm::json::Array;
using llvm::json::Object;
using llvm::json::Value;

namespace {

/// Shortest text that reads back as the same double.
std::string num(double v) {
  char buf[64];
  for (int prec = 6; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof(buf), "%.*g", prec, v);
    if (std::strtod(buf, nullptr) == v)
      break;
  }
  return buf;
}

bool isLost(const Trial &t) {
  return t.state == TrialState::Failed &&
         llvm::StringRef(t.error).starts_with("lost:");
}

llvm::Expected<Configuration> configOf(const Report &r, const Trial &t) {
  Configuration c;
  llvm::SmallVector<llvm::StringRef> parts;
  llvm::StringRef(t.configKey).split(parts, '.');
  for (llvm::StringRef p : parts) {
    int g = 0;
    if (p.getAsInteger(10, g))
      return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                     "trial %lld: malformed config_key",
                                     (long long)t.number);
    c.genes.push_back(g);
  }
  if (auto err = validate(r.space, c))
    return std::move(err);
  return c;
}

std::string listOf(const Report &r, const Trial &t, bool bits) {
  auto c = configOf(r, t);
  if (!c) {
    llvm::consumeError(c.takeError());
    return "?";
  }
  std::string out;
  for (int l = 0; l < r.space.numLayers; ++l) {
    if (l)
      out += ' ';
    out += std::to_string(bits ? layerBits(r.space, *c, l)
                               : layerRank(r.space, *c, l));
  }
  return out;
}

} // namespace

llvm::Expected<Report> mixq::search::buildReport(StudyStore &store,
                                                 llvm::StringRef study,
                                                 const ReportOptions &opts) {
  Report r;
  auto s = store.loadStudy(study);
  if (!s)
    return s.takeError();
  r.study = *s;
  auto spaceJSON = llvm::json::parse(r.study.space);
  if (!spaceJSON)
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "study '%s': stored space is not JSON: %s",
                                   r.study.name.c_str(),
                                   llvm::toString(spaceJSON.takeError()).c_str());
  auto space = SearchSpace::fromJSON(*spaceJSON, "stored space of study '" +
                                                     r.study.name + "'");
  if (!space)
    return space.takeError();
  r.space = std::move(*space);
  auto trials = store.trials(r.study.id);
  if (!trials)
    return trials.takeError();
  r.trials = std::move(*trials);
  auto state = store.strategyState(r.study.id);
  if (!state)
    return state.takeError();
  r.strategyFinished = state->getBoolean("finished").value_or(false);

  std::vector<MPPoint> pts;
  double maxM = 0, minP = 0;
  for (size_t i = 0; i < r.trials.size(); ++i) {
    const Trial &t = r.trials[i];
    if (t.state != TrialState::Complete || !t.performance || !t.memory)
      continue;
    r.complete.push_back(i);
    pts.push_back({*t.memory, *t.performance});
    maxM = std::max(maxM, *t.memory);
    minP = std::min(minP, *t.performance);
  }
  for (int k : paretoFront(pts))
    r.front.push_back(r.complete[k]);
  r.reference = {opts.refMemory.value_or(maxM > 0 ? 1.1 * maxM : 1.0),
                 opts.refPerformance.value_or(minP)};

  // Hypervolume after each finished trial, in finishing order.
  std::vector<size_t> finished;
  for (size_t i = 0; i < r.trials.size(); ++i) {
    const Trial &t = r.trials[i];
    if ((t.state == TrialState::Complete || t.state == TrialState::Failed ||
         t.state == TrialState::Pruned) &&
        !isLost(t))
      finished.push_back(i);
  }
  std::stable_sort(finished.begin(), finished.end(), [&](size_t a, size_t b) {
    return r.trials[a].finishedAt.value_or(0) <
           r.trials[b].finishedAt.value_or(0);
  });
  std::vector<MPPoint> sofar;
  for (size_t k = 0; k < finished.size(); ++k) {
    const Trial &t = r.trials[finished[k]];
    if (t.state == TrialState::Complete && t.performance && t.memory)
      sofar.push_back({*t.memory, *t.performance});
    r.hypervolume.push_back(
        {int64_t(k + 1), t.number, hypervolume2D(sofar, r.reference)});
  }
  return r;
}

Value mixq::search::reportJSON(const Report &r) {
  std::map<std::string, int64_t> counts;
  for (const Trial &t : r.trials)
    ++counts[isLost(t) ? "lost" : trialStateName(t.state).str()];
  Object countObj;
  for (auto &[k, v] : counts)
    countObj[k] = v;
  Array front;
  for (size_t i : r.front) {
    const Trial &t = r.trials[i];
    auto cfg = llvm::json::parse(t.config);
    Value cfgValue = cfg ? std::move(*cfg) : Value(nullptr);
    if (!cfg)
      llvm::consumeError(cfg.takeError());
    front.push_back(Object{{"trial", t.number},
                           {"stage", t.stage},
                           {"accuracy", *t.performance},
                           {"peak_bytes", *t.memory},
                           {"bits", listOf(r, t, true)},
                           {"ranks", listOf(r, t, false)},
                           {"config", std::move(cfgValue)}});
  }
  Array hv;
  for (const HypervolumePoint &h : r.hypervolume)
    hv.push_back(Object{{"finished", h.finished},
                        {"trial", h.trial},
                        {"hypervolume", h.hypervolume}});
  return Object{
      {"study", r.study.name},
      {"strategy", r.study.strategy},
      {"strategy_finished", r.strategyFinished},
      {"trials", std::move(countObj)},
      {"reference_point", Object{{"peak_bytes", r.reference.memory},
                                 {"accuracy", r.reference.performance}}},
      {"hypervolume", r.finalHypervolume()},
      {"hypervolume_by_trial", std::move(hv)},
      {"front", std::move(front)}};
}

std::string mixq::search::frontCSV(const Report &r) {
  std::string out = "trial,stage,accuracy,peak_bytes,bits,ranks\n";
  for (size_t i : r.front) {
    const Trial &t = r.trials[i];
    out += llvm::formatv("{0},{1},{2},{3},{4},{5}\n", t.number, t.stage,
                         num(*t.performance), num(*t.memory),
                         listOf(r, t, true),
                         listOf(r, t, false))
               .str();
  }
  return out;
}

std::string mixq::search::trialsCSV(const Report &r) {
  std::string out = "trial,state,stage,accuracy,peak_bytes,on_front,worker,"
                    "seconds,bits,ranks\n";
  for (size_t i = 0; i < r.trials.size(); ++i) {
    const Trial &t = r.trials[i];
    bool onFront = std::find(r.front.begin(), r.front.end(), i) != r.front.end();
    std::string p = t.performance ? num(*t.performance) : "";
    std::string m = t.memory ? num(*t.memory) : "";
    std::string secs =
        t.startedAt && t.finishedAt
            ? llvm::formatv("{0:f3}", *t.finishedAt - *t.startedAt).str()
            : "";
    out += llvm::formatv("{0},{1},{2},{3},{4},{5},{6},{7},{8},{9}\n", t.number,
                         isLost(t) ? "lost" : trialStateName(t.state).str(),
                         t.stage, p, m, onFront ? 1 : 0, t.worker, secs,
                         listOf(r, t, true), listOf(r, t, false))
               .str();
  }
  return out;
}

std::string mixq::search::scatterSVG(const Report &r) {
  const double w = 760, h = 500, left = 90, right = 190, top = 50, bottom = 60;
  double pw = w - left - right, ph = h - top - bottom;
  double mLo = 1e300, mHi = -1e300, pLo = 1e300, pHi = -1e300;
  for (size_t i : r.complete) {
    mLo = std::min(mLo, *r.trials[i].memory);
    mHi = std::max(mHi, *r.trials[i].memory);
    pLo = std::min(pLo, *r.trials[i].performance);
    pHi = std::max(pHi, *r.trials[i].performance);
  }
  if (r.complete.empty())
    mLo = pLo = 0, mHi = pHi = 1;
  double mPad = (mHi - mLo) * 0.05 + (mHi == mLo ? 1 : 0);
  double pPad = (pHi - pLo) * 0.05 + (pHi == pLo ? 0.01 : 0);
  mLo -= mPad, mHi += mPad, pLo -= pPad, pHi += pPad;
  double unit = mHi > 1 << 30 ? double(1 << 30) : mHi > 1 << 20 ? double(1 << 20) : 1;
  const char *unitName = unit == double(1 << 30) ? "GiB"
                         : unit == double(1 << 20) ? "MiB"
                                                   : "bytes";
  auto sx = [&](double m) { return left + (m - mLo) / (mHi - mLo) * pw; };
  auto sy = [&](double p) { return top + ph - (p - pLo) / (pHi - pLo) * ph; };

  std::string out;
  llvm::raw_string_ostream os(out);
  os << llvm::formatv("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" "
                      "height=\"{1}\" font-family=\"sans-serif\" "
                      "font-size=\"12\">\n",
                      w, h);
  os << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  os << llvm::formatv("<text x=\"{0}\" y=\"24\" font-size=\"15\">Study '{1}' "
                      "({2}): {3} complete, front {4}, hypervolume {5:e3} "
                      "(ref {6:e3} bytes, {7:f3})</text>\n",
                      left, r.study.name, r.study.strategy, r.complete.size(),
                      r.front.size(), r.finalHypervolume(),
                      r.reference.memory, r.reference.performance);
  os << llvm::formatv("<rect x=\"{0}\" y=\"{1}\" width=\"{2}\" height=\"{3}\" "
                      "fill=\"none\" stroke=\"black\"/>\n",
                      left, top, pw, ph);
  for (int k = 0; k <= 5; ++k) {
    double m = mLo + (mHi - mLo) * k / 5, p = pLo + (pHi - pLo) * k / 5;
    os << llvm::formatv("<text x=\"{0}\" y=\"{1}\" text-anchor=\"middle\">"
                        "{2:f2}</text>\n",
                        sx(m), top + ph + 18, m / unit);
    os << llvm::formatv("<text x=\"{0}\" y=\"{1}\" text-anchor=\"end\">"
                        "{2:f3}</text>\n",
                        left - 6, sy(p) + 4, p);
  }
  os << llvm::formatv("<text x=\"{0}\" y=\"{1}\" text-anchor=\"middle\">peak "
                      "memory ({2})</text>\n",
                      left + pw / 2, h - 15, unitName);
  os << llvm::formatv("<text transform=\"translate(20,{0}) rotate(-90)\" "
                      "text-anchor=\"middle\">accuracy</text>\n",
                      top + ph / 2);
  // Colours per stage, in order of first appearance.
  static const char *palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd",
                                  "#8c564b", "#e377c2", "#17becf", "#bcbd22"};
  std::vector<std::string> stages;
  for (size_t i : r.complete)
    if (!llvm::is_contained(stages, r.trials[i].stage))
      stages.push_back(r.trials[i].stage);
  auto colour = [&](const std::string &s) {
    size_t k = std::find(stages.begin(), stages.end(), s) - stages.begin();
    return palette[k % 8];
  };
  // The front as a staircase, then every point, front points larger.
  std::string path;
  for (size_t k = 0; k < r.front.size(); ++k) {
    const Trial &t = r.trials[r.front[k]];
    path += llvm::formatv("{0}{1:f1},{2:f1} ", k ? "L" : "M", sx(*t.memory),
                          sy(*t.performance))
                .str();
    if (k + 1 < r.front.size())
      path += llvm::formatv("L{0:f1},{1:f1} ",
                            sx(*r.trials[r.front[k + 1]].memory),
                            sy(*t.performance))
                  .str();
  }
  if (!path.empty())
    os << "<path d=\"" << path
       << "\" fill=\"none\" stroke=\"#d62728\" stroke-width=\"1.5\"/>\n";
  for (size_t i : r.complete) {
    const Trial &t = r.trials[i];
    bool onFront = llvm::is_contained(r.front, i);
    os << llvm::formatv("<circle cx=\"{0:f1}\" cy=\"{1:f1}\" r=\"{2}\" "
                        "fill=\"{3}\" stroke=\"{4}\" stroke-width=\"{5}\">"
                        "<title>trial {6} ({7}): P={8} M={9}</title>"
                        "</circle>\n",
                        sx(*t.memory), sy(*t.performance), onFront ? 6 : 3.5,
                        colour(t.stage), onFront ? "#d62728" : "none",
                        onFront ? 2 : 0, t.number, t.stage,
                        num(*t.performance), num(*t.memory));
  }
  double ly = top + 10;
  for (const std::string &s : stages) {
    os << llvm::formatv("<circle cx=\"{0}\" cy=\"{1}\" r=\"5\" fill=\"{2}\"/>"
                        "<text x=\"{3}\" y=\"{4}\">{5}</text>\n",
                        left + pw + 20, ly, colour(s), left + pw + 30, ly + 4,
                        s);
    ly += 20;
  }
  os << llvm::formatv("<circle cx=\"{0}\" cy=\"{1}\" r=\"6\" fill=\"none\" "
                      "stroke=\"#d62728\" stroke-width=\"2\"/><text x=\"{2}\" "
                      "y=\"{3}\">Pareto front</text>\n",
                      left + pw + 20, ly, left + pw + 30, ly + 4);
  os << "</svg>\n";
  return out;
}

llvm::Expected<size_t> mixq::search::chooseForLambda(const Report &r,
                                                     double lambda) {
  if (r.front.empty())
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "study '%s' has no complete trial to "
                                   "choose from",
                                   r.study.name.c_str());
  double mLo = 1e300, mHi = -1e300, pLo = 1e300, pHi = -1e300;
  for (size_t i : r.complete) {
    mLo = std::min(mLo, *r.trials[i].memory);
    mHi = std::max(mHi, *r.trials[i].memory);
    pLo = std::min(pLo, *r.trials[i].performance);
    pHi = std::max(pHi, *r.trials[i].performance);
  }
  double mSpan = mHi > mLo ? mHi - mLo : 1, pSpan = pHi > pLo ? pHi - pLo : 1;
  size_t best = r.front.front();
  double bestScore = 1e300;
  for (size_t i : r.front) {
    double s = (*r.trials[i].memory - mLo) / mSpan -
               lambda * (*r.trials[i].performance - pLo) / pSpan;
    if (s < bestScore) {
      bestScore = s;
      best = i;
    }
  }
  return best;
}

llvm::Expected<size_t> mixq::search::chooseForAlpha(const Report &r,
                                                    double alpha) {
  if (r.complete.empty())
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "study '%s' has no complete trial to "
                                   "choose from",
                                   r.study.name.c_str());
  double n = double(r.complete.size()), mp = 0, mm = 0, vp = 0, vm = 0;
  for (size_t i : r.complete) {
    mp += *r.trials[i].performance / n;
    mm += *r.trials[i].memory / n;
  }
  for (size_t i : r.complete) {
    vp += std::pow(*r.trials[i].performance - mp, 2) / n;
    vm += std::pow(*r.trials[i].memory - mm, 2) / n;
  }
  double sp = vp > 0 ? std::sqrt(vp) : 1, sm = vm > 0 ? std::sqrt(vm) : 1;
  size_t best = r.complete.front();
  double bestScore = -1e300;
  for (size_t i : r.complete) {
    double s = alpha * (*r.trials[i].performance - mp) / sp -
               (1 - alpha) * (*r.trials[i].memory - mm) / sm;
    if (s > bestScore) {
      bestScore = s;
      best = i;
    }
  }
  return best;
}
