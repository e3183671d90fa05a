//===- Driver.cpp - one search worker: claim, evaluate, ask ------*- C++ -*-===//

#include "mixq/Search/Driver.h"

#include "mixq/Search/Pareto.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <chrono>
#include <thread>
#include <unistd.h>

using namespace mixq::search;

std::string mixq::search::defaultWorkerId() {
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) != 0)
    std::snprintf(host, sizeof(host), "localhost");
  return std::string(host) + ":" + std::to_string(getpid());
}

namespace {

void sleepSeconds(double s) {
  std::this_thread::sleep_for(std::chrono::duration<double>(s));
}

std::string humanBytes(double b) {
  const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  return llvm::formatv("{0:f2} {1}", b, units[u]).str();
}

std::string humanDuration(double s) {
  if (s < 10)
    return llvm::formatv("{0:f1}s", s).str();
  if (s < 60)
    return llvm::formatv("{0:f0}s", s).str();
  if (s < 3600)
    return llvm::formatv("{0}m{1:d2}s", int(s / 60), int(s) % 60).str();
  return llvm::formatv("{0}h{1:d2}m", int(s / 3600), (int(s) % 3600) / 60)
      .str();
}

} // namespace

llvm::Expected<int> Driver::askStrategy(bool &finished, bool &budgetSpent,
                                        int &pending) {
  auto askFn = [&](const std::vector<Trial> &all, llvm::json::Object &state)
      -> llvm::Expected<std::vector<NewTrial>> {
    auto views = viewTrials(space, all);
    if (!views)
      return views.takeError();
    StrategyContext ctx(space, settings, state);
    ctx.trials = std::move(*views);
    int64_t used = 0, next = 0;
    for (const TrialView &t : ctx.trials) {
      ctx.knownKeys.insert(configKey(t.config));
      used += t.lost ? 0 : 1;
      next = std::max(next, t.number + 1);
    }
    ctx.remaining = std::max<int64_t>(0, opts.budget - used);
    ctx.nextNumber = next;
    pending = ctx.pending();
    if (ctx.remaining == 0) {
      budgetSpent = true;
      return std::vector<NewTrial>();
    }
    int64_t asks = state.getInteger("asks").value_or(0);
    state["asks"] = asks + 1;
    ctx.rng.seed(settings.seed * 0x9E3779B97F4A7C15ULL + uint64_t(asks));
    auto res = strategy.ask(ctx);
    if (!res)
      return res.takeError();
    if (int64_t(res->proposals.size()) > ctx.remaining)
      return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                     "strategy %s proposed %d trials with "
                                     "%lld left in the budget",
                                     settings.name.c_str(),
                                     int(res->proposals.size()),
                                     (long long)ctx.remaining);
    state["finished"] = res->finished;
    finished = res->finished;
    std::vector<NewTrial> out;
    for (const Proposal &p : res->proposals)
      out.push_back({p.stage,
                     llvm::formatv("{0}", toConfigJSON(space, p.config)).str(),
                     configKey(p.config)});
    return out;
  };
  finished = false;
  budgetSpent = false;
  pending = 0;
  return store.askLocked(study.id, askFn);
}

void Driver::showProgress(const Trial &t, const TrialOutcome &o,
                          double seconds) {
  if (!opts.progress)
    return;
  totalSeconds += seconds;
  ++timed;
  auto all = store.trials(study.id);
  if (!all) {
    llvm::consumeError(all.takeError());
    return;
  }
  int64_t finishedCount = 0, left = 0;
  std::vector<MPPoint> pts;
  double bestP = -1e300, bestM = 0;
  for (const Trial &x : *all) {
    bool lost = x.state == TrialState::Failed &&
                llvm::StringRef(x.error).starts_with("lost:");
    if (lost)
      continue;
    if (x.state == TrialState::Waiting || x.state == TrialState::Running)
      continue;
    ++finishedCount;
    if (x.state == TrialState::Complete && x.performance && x.memory) {
      pts.push_back({*x.memory, *x.performance});
      if (*x.performance > bestP) {
        bestP = *x.performance;
        bestM = *x.memory;
      }
    }
  }
  left = std::max<int64_t>(0, opts.budget - finishedCount);
  std::string result =
      o.metrics && o.state == TrialState::Complete
          ? llvm::formatv("P={0:f4} M={1}", o.metrics->performance,
                          humanBytes(o.metrics->memory))
                .str()
          : std::string(trialStateName(o.state));
  std::string best =
      pts.empty() ? std::string("none")
                  : llvm::formatv("P={0:f4} at {1}, front {2}", bestP,
                                  humanBytes(bestM), paretoFront(pts).size())
                        .str();
  *opts.progress << llvm::formatv(
      "[mixq-search] trial {0}/{1} #{2} ({3}) {4} in {5} | best {6} | ETA "
      "{7}\n",
      finishedCount, opts.budget, t.number, t.stage, result,
      humanDuration(seconds), best, humanDuration(left * totalSeconds / timed));
  opts.progress->flush();
}

llvm::Error Driver::writeConfig(const Trial &t, llvm::StringRef path) {
  auto parsed = llvm::json::parse(t.config);
  if (!parsed)
    return llvm::createStringError(
        llvm::inconvertibleErrorCode(),
        "trial %lld holds a malformed config JSON in the store: %s",
        (long long)t.number, llvm::toString(parsed.takeError()).c_str());
  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec);
  if (ec)
    return llvm::createStringError(ec, "cannot write the config JSON %s: %s",
                                   path.str().c_str(), ec.message().c_str());
  os << llvm::formatv("{0:2}", *parsed) << "\n";
  return llvm::Error::success();
}

llvm::Error Driver::evaluate(const Trial &t, RunSummary &summary) {
  llvm::SmallString<256> path(opts.configDir);
  llvm::sys::path::append(path, llvm::formatv("{0}-trial-{1}.json",
                                              study.name, t.number)
                                    .str());
  if (auto err = writeConfig(t, path)) {
    // Record the failure on the trial, then stop this worker: the problem
    // (e.g. an unwritable --config-dir) is not the configuration's.
    std::string msg = llvm::toString(std::move(err));
    auto stored = store.finish(t.id, opts.worker, TrialState::Failed,
                               std::nullopt, std::nullopt, std::nullopt, msg);
    if (!stored)
      llvm::consumeError(stored.takeError());
    return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
  }
  TrialRequest req{t.number, t.stage, path.str().str()};
  double lastBeat = nowSeconds();
  bool stillOurs = true;
  auto keepAlive = [&]() {
    if (nowSeconds() - lastBeat < opts.heartbeatSeconds)
      return true;
    lastBeat = nowSeconds();
    auto ok = store.heartbeat(t.id, opts.worker);
    if (!ok) { // the database is briefly unavailable: keep running
      llvm::consumeError(ok.takeError());
      return true;
    }
    stillOurs = *ok;
    return stillOurs;
  };
  double start = nowSeconds();
  TrialOutcome o = objective.evaluate(req, keepAlive);
  double seconds = nowSeconds() - start;
  ++summary.evaluated;
  std::optional<std::string> metrics;
  std::optional<double> p, m;
  if (o.metrics) {
    metrics = o.metrics->text;
    if (o.state == TrialState::Complete) {
      p = o.metrics->performance;
      m = o.metrics->memory;
    }
  }
  auto stored = store.finish(t.id, opts.worker, o.state, metrics, p, m,
                             o.error);
  if (!stored)
    return stored.takeError();
  if (!*stored) {
    if (opts.progress)
      *opts.progress << llvm::formatv("[mixq-search] trial {0}: result "
                                      "dropped, the trial was taken from "
                                      "this worker\n",
                                      t.number);
    return llvm::Error::success();
  }
  if (o.state == TrialState::Complete)
    ++summary.complete;
  else if (o.state == TrialState::Pruned)
    ++summary.pruned;
  else {
    ++summary.failed;
    if (opts.progress)
      *opts.progress << llvm::formatv("[mixq-search] trial {0} failed: {1}\n",
                                      t.number, o.error);
  }
  showProgress(t, o, seconds);
  return llvm::Error::success();
}

llvm::Expected<RunSummary> Driver::run() {
  RunSummary summary;
  if (opts.worker.empty())
    opts.worker = defaultWorkerId();
  if (opts.configDir.empty()) {
    llvm::SmallString<256> dir;
    if (std::error_code ec =
            llvm::sys::fs::createUniqueDirectory("mixq-search", dir))
      return llvm::createStringError(ec, "cannot create a temporary "
                                         "directory: %s",
                                     ec.message().c_str());
    opts.configDir = dir.str().str();
  } else if (std::error_code ec =
                 llvm::sys::fs::create_directories(opts.configDir)) {
    return llvm::createStringError(ec, "cannot create %s: %s",
                                   opts.configDir.c_str(),
                                   ec.message().c_str());
  }
  int idleAsks = 0;
  while (opts.maxTrialsThisWorker < 0 ||
         summary.evaluated < opts.maxTrialsThisWorker) {
    auto reaped = store.reapStale(study.id, opts.staleAfterSeconds,
                                  opts.worker);
    if (!reaped)
      return reaped.takeError();
    auto claimed = store.claim(study.id, opts.worker);
    if (!claimed)
      return claimed.takeError();
    if (*claimed) {
      idleAsks = 0;
      if (auto err = evaluate(**claimed, summary))
        return std::move(err);
      continue;
    }
    bool finished = false, budgetSpent = false;
    int pending = 0;
    auto added = askStrategy(finished, budgetSpent, pending);
    if (!added)
      return added.takeError();
    if (*added > 0) {
      idleAsks = 0;
      continue;
    }
    summary.strategyFinished = finished;
    if (pending == 0 && (finished || budgetSpent || ++idleAsks > 3))
      break; // done, or the budget is spent and nothing runs any more
    if (pending > 0)
      sleepSeconds(opts.pollSeconds);
  }
  return summary;
}
