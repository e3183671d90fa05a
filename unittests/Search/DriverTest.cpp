//===- DriverTest.cpp - workers, resume, kill -9 -----------------*- C++ -*-===//

#include "PostgresServer.h"
#include "TestUtil.h"

#include "mixq/Search/Driver.h"

#include "llvm/Support/MemoryBuffer.h"

#include <gtest/gtest.h>

#include <csignal>
#include <map>
#include <set>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace mixq::search;
using namespace mixq::search::testing;

namespace {

/// An in-process objective (the shape the built-in trial will have): a
/// separable synthetic (P, M); every `failEvery`-th call fails.
class SyntheticObjective : public Objective {
public:
  explicit SyntheticObjective(int failEvery = 0) : failEvery(failEvery) {}
  std::string describe() const override { return "synthetic"; }
  TrialOutcome evaluate(const TrialRequest &req, KeepAlive) override {
    ++calls;
    TrialOutcome o;
    if (failEvery && calls % failEvery == 0) {
      o.error = "synthetic failure";
      return o;
    }
    auto v = readJSONFile(req.configPath);
    if (!v) {
      o.error = llvm::toString(v.takeError());
      return o;
    }
    double p = 0, m = 0;
    for (const llvm::json::Value &e : *v->getAsObject()->getArray("layers")) {
      const llvm::json::Object *o2 = e.getAsObject();
      double bits = *o2->getNumber("bits"), rank = *o2->getNumber("rank");
      p += (1 - std::pow(2.0, -bits / 2)) * (1 - 0.5 / (1 + rank));
      m += bits * 10 + rank;
    }
    TrialMetrics met;
    met.performance = p;
    met.memory = m;
    met.text = "{}";
    o.state = TrialState::Complete;
    o.metrics = met;
    return o;
  }
  int calls = 0;
  int failEvery;
};

SearchSpace tinySpace(int layers = 4) {
  auto s = SearchSpace::fromJSON(
      llvm::json::Object{{"layers", layers},
                         {"bits", llvm::json::Array{4, 8}},
                         {"ranks", llvm::json::Array{2, 4, 8, 16}}},
      "test-space");
  EXPECT_TRUE(bool(s));
  return *s;
}

struct RunResult {
  std::vector<Trial> trials;
  RunSummary summary;
};

RunResult runStudy(const std::string &url, const std::string &name,
                   StrategySettings settings, int64_t budget,
                   Objective &objective, const std::string &configDir) {
  RunResult out;
  auto store = StudyStore::open(url);
  EXPECT_TRUE(bool(store));
  SearchSpace space = tinySpace();
  StudyInfo wanted;
  wanted.name = name;
  wanted.space = llvm::formatv("{0}", space.toJSON()).str();
  wanted.strategy = settings.name;
  wanted.settings = llvm::formatv("{0}", settings.toJSON()).str();
  wanted.objectives = "{}";
  auto study = (*store)->createOrLoadStudy(wanted);
  EXPECT_TRUE(bool(study)) << llvm::toString(study.takeError());
  auto strategy = createStrategy(settings);
  EXPECT_TRUE(bool(strategy));
  RunOptions opts;
  opts.budget = budget;
  opts.worker = "test";
  opts.configDir = configDir;
  Driver d(**store, *study, space, settings, **strategy, objective, opts);
  auto summary = d.run();
  EXPECT_TRUE(bool(summary)) << llvm::toString(summary.takeError());
  out.summary = *summary;
  out.trials = *(*store)->trials(study->id);
  return out;
}

TEST(Driver, RunsEveryStrategyToItsBudgetWithoutRepeats) {
  TempDir tmp;
  for (const char *name :
       {"uniform", "random", "exhaustive", "automixq", "qr-adaptor"}) {
    SyntheticObjective obj;
    StrategySettings st;
    st.name = name;
    st.seed = 7;
    st.initial = 4;
    st.candidates = 200;
    RunResult r = runStudy("sqlite://" + tmp.path("all.db"), name, st, 14,
                           obj, tmp.str());
    std::set<std::string> keys;
    for (const Trial &t : r.trials) {
      EXPECT_EQ(t.state, TrialState::Complete) << name << " " << t.number;
      keys.insert(t.configKey);
    }
    EXPECT_EQ(keys.size(), r.trials.size()) << name << ": a repeat";
    // uniform has only 8 configurations in this space.
    size_t expected = std::string(name) == "uniform" ? 8 : 14;
    EXPECT_EQ(r.trials.size(), expected) << name;
    EXPECT_EQ(obj.calls, int(expected)) << name;
  }
}

TEST(Driver, QRAdaptorRunsItsThreeStagesInOrder) {
  TempDir tmp;
  SyntheticObjective obj;
  StrategySettings st;
  st.name = "qr-adaptor";
  st.seed = 3;
  st.population = 4;
  st.generations = 2;
  st.offspring = 3;
  RunResult r = runStudy("sqlite://" + tmp.path("qr.db"), "qr", st, 20, obj,
                         tmp.str());
  ASSERT_EQ(r.trials.size(), 20u);
  // 1 init, 3 more population, 2 generations x 3 children, then BO.
  std::vector<std::string> stages;
  for (const Trial &t : r.trials)
    stages.push_back(t.stage);
  EXPECT_EQ(stages[0], "qr:init");
  for (int i = 1; i < 10; ++i)
    EXPECT_EQ(stages[i], "qr:prga") << i;
  for (int i = 10; i < 20; ++i)
    EXPECT_EQ(stages[i], "qr:bo") << i;
}

TEST(Driver, QRAdaptorStageSubsets) {
  TempDir tmp;
  struct Case {
    std::vector<int> stages;
    std::set<std::string> allowed;
  } cases[] = {{{1}, {"qr:init"}},
               {{2}, {"qr:prga"}},
               {{3}, {"qr:bo"}},
               {{1, 3}, {"qr:init", "qr:bo"}},
               {{2, 3}, {"qr:prga", "qr:bo"}}};
  for (const Case &c : cases) {
    SyntheticObjective obj;
    StrategySettings st;
    st.name = "qr-adaptor";
    st.stages = c.stages;
    std::string name = "qr" + std::to_string(c.stages.size()) +
                       std::to_string(c.stages.front());
    RunResult r = runStudy("sqlite://" + tmp.path("sub.db"), name, st, 12, obj,
                           tmp.str());
    for (const Trial &t : r.trials)
      EXPECT_TRUE(c.allowed.count(t.stage)) << name << ": " << t.stage;
    if (c.stages == std::vector<int>{1}) {
      EXPECT_EQ(r.trials.size(), 1u);
      EXPECT_TRUE(r.summary.strategyFinished);
    } else {
      EXPECT_EQ(r.trials.size(), 12u) << name;
    }
  }
}

TEST(Driver, ResumedStudyContinuesExactlyWhereItStopped) {
  TempDir tmp;
  StrategySettings st;
  st.name = "qr-adaptor";
  st.seed = 11;
  st.population = 5;
  st.generations = 3;
  st.offspring = 5;
  SyntheticObjective a, b, c;
  // 10 = init + 4 population + one generation: a stage boundary.
  runStudy("sqlite://" + tmp.path("resume.db"), "s", st, 10, a, tmp.str());
  RunResult resumed = runStudy("sqlite://" + tmp.path("resume.db"), "s", st,
                               24, b, tmp.str());
  RunResult straight = runStudy("sqlite://" + tmp.path("straight.db"), "s", st,
                                24, c, tmp.str());
  EXPECT_EQ(b.calls, 14);
  ASSERT_EQ(resumed.trials.size(), straight.trials.size());
  for (size_t i = 0; i < resumed.trials.size(); ++i) {
    EXPECT_EQ(resumed.trials[i].configKey, straight.trials[i].configKey) << i;
    EXPECT_EQ(resumed.trials[i].stage, straight.trials[i].stage) << i;
  }
}

TEST(Driver, FailedTrialsAreRecordedAndCountTowardsTheBudget) {
  TempDir tmp;
  SyntheticObjective obj(/*failEvery=*/3);
  StrategySettings st;
  st.name = "automixq";
  st.initial = 3;
  st.candidates = 100;
  RunResult r = runStudy("sqlite://" + tmp.path("f.db"), "f", st, 12, obj,
                         tmp.str());
  ASSERT_EQ(r.trials.size(), 12u);
  int failed = 0;
  for (const Trial &t : r.trials)
    if (t.state == TrialState::Failed) {
      ++failed;
      EXPECT_EQ(t.error, "synthetic failure");
      EXPECT_FALSE(t.performance);
    }
  EXPECT_EQ(failed, 4);
  EXPECT_EQ(r.summary.failed, 4);
}

//===----------------------------------------------------------------------===//
// kill -9: a worker dies mid-trial, another resumes the study
//===----------------------------------------------------------------------===//

pid_t spawn(const std::vector<std::string> &args, const std::string &log) {
  pid_t pid = fork();
  if (pid == 0) {
    FILE *f = freopen(log.c_str(), "a", stderr);
    (void)f;
    std::vector<char *> argv;
    for (const std::string &a : args)
      argv.push_back(const_cast<char *>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

std::vector<std::string> workerArgs(const std::string &url,
                                    const std::string &space,
                                    const std::string &objLog,
                                    const std::string &id,
                                    const std::string &configDir) {
  return {mixqSearchBinary(),
          "run",
          "--study=" + url,
          "--space=" + space,
          "--objective-cmd=sh " + std::string(MIXQ_SOURCE_DIR) +
              "/test/Tools/Inputs/search-objective-sleep.sh 0.5 " + objLog,
          "--strategy=random",
          "--seed=5",
          "--trials=6",
          "--heartbeat=0.2",
          "--stale-after=1.5",
          "--poll=0.1",
          "--worker-id=" + id,
          "--config-dir=" + configDir};
}

class KillTest : public ::testing::TestWithParam<std::string> {};

TEST_P(KillTest, KilledWorkerLosesNothingAndNothingRunsTwice) {
  TempDir tmp;
  std::string url;
  if (GetParam() == "postgresql") {
    std::string why;
    auto u = freshPostgresDatabase(why);
    if (!u)
      GTEST_SKIP() << "PostgreSQL tests skipped: " << why;
    url = *u;
  } else {
    url = "sqlite://" + tmp.path("kill.db");
  }
  std::string space = tmp.path("space.json");
  FILE *f = fopen(space.c_str(), "w");
  fputs(R"({"layers": 3, "bits": [4, 8], "ranks": [2, 4, 8]})", f);
  fclose(f);
  std::string objLog = tmp.path("objective.log");
  pid_t a = spawn(workerArgs(url, space, objLog, "A", tmp.str()),
                  tmp.path("a.log"));
  ASSERT_GT(a, 0);
  // Wait until A has completed two trials and is running a third.
  int64_t killedTrial = -1;
  std::set<int64_t> completedByA;
  for (int i = 0; i < 400 && killedTrial < 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    auto store = StudyStore::open(url);
    if (!store) {
      llvm::consumeError(store.takeError());
      continue;
    }
    auto study = (*store)->loadStudy("default");
    if (!study) {
      llvm::consumeError(study.takeError());
      continue;
    }
    auto trials = (*store)->trials(study->id);
    ASSERT_TRUE(bool(trials));
    std::set<int64_t> done;
    int64_t running = -1;
    for (const Trial &t : *trials) {
      if (t.state == TrialState::Complete)
        done.insert(t.number);
      if (t.state == TrialState::Running)
        running = t.number;
    }
    if (done.size() >= 2 && running >= 0) {
      // Let the objective get going, then kill the worker.
      std::this_thread::sleep_for(std::chrono::milliseconds(150));
      kill(a, SIGKILL);
      killedTrial = running;
      completedByA = done;
    }
  }
  int status = 0;
  waitpid(a, &status, 0);
  ASSERT_GE(killedTrial, 0) << "worker A never reached its third trial";
  ASSERT_TRUE(WIFSIGNALED(status));

  // Worker B resumes: reaps A's trial after the stale limit and retries it.
  pid_t b = spawn(workerArgs(url, space, objLog, "B", tmp.str()),
                  tmp.path("b.log"));
  waitpid(b, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "worker B failed; see " << tmp.path("b.log");

  auto store = StudyStore::open(url);
  ASSERT_TRUE(bool(store));
  auto study = (*store)->loadStudy("default");
  ASSERT_TRUE(bool(study));
  auto trials = (*store)->trials(study->id);
  ASSERT_TRUE(bool(trials));
  int complete = 0;
  std::set<std::string> completeKeys;
  std::map<int64_t, const Trial *> byNumber;
  for (const Trial &t : *trials) {
    byNumber[t.number] = &t;
    if (t.state == TrialState::Complete) {
      ++complete;
      EXPECT_TRUE(completeKeys.insert(t.configKey).second)
          << "configuration completed twice";
    }
  }
  EXPECT_EQ(complete, 6);
  EXPECT_EQ(trials->size(), 7u);
  // A's completed trials are kept, with A's results.
  for (int64_t n : completedByA) {
    EXPECT_EQ(byNumber[n]->state, TrialState::Complete);
    EXPECT_EQ(byNumber[n]->worker, "A");
  }
  // The killed trial is failed as lost, and retried once by B.
  const Trial *killed = byNumber[killedTrial];
  EXPECT_EQ(killed->state, TrialState::Failed);
  EXPECT_NE(killed->error.find("lost: worker A stopped beating"),
            std::string::npos)
      << killed->error;
  int retries = 0;
  for (const Trial &t : *trials)
    if (t.retryOf && *t.retryOf == killedTrial) {
      ++retries;
      EXPECT_EQ(t.state, TrialState::Complete);
      EXPECT_EQ(t.worker, "B");
      EXPECT_EQ(t.configKey, killed->configKey);
    }
  EXPECT_EQ(retries, 1);
  // The report reads the study on either engine.
  std::string reportOut = tmp.path("report.json");
  ASSERT_EQ(std::system((mixqSearchBinary() + " report --study '" + url +
                         "' --json > " + reportOut + " 2>&1")
                            .c_str()),
            0);
  auto report = llvm::MemoryBuffer::getFile(reportOut);
  ASSERT_TRUE(bool(report));
  auto json = llvm::json::parse((*report)->getBuffer());
  ASSERT_TRUE(bool(json)) << (*report)->getBuffer().str();
  const llvm::json::Object *counts =
      json->getAsObject()->getObject("trials");
  ASSERT_TRUE(counts);
  EXPECT_EQ(counts->getInteger("complete"), 6);
  EXPECT_EQ(counts->getInteger("lost"), 1);
  EXPECT_GT(*json->getAsObject()->getNumber("hypervolume"), 0);

  // The objective log: each complete trial ended exactly once, the killed
  // run never ended (its process died with worker A).
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  auto logText = llvm::MemoryBuffer::getFile(objLog);
  ASSERT_TRUE(bool(logText));
  std::map<std::string, int> ends;
  llvm::SmallVector<llvm::StringRef> lines;
  (*logText)->getBuffer().split(lines, '\n', -1, false);
  for (llvm::StringRef l : lines)
    if (l.consume_front("end "))
      ++ends[l.str()];
  for (const Trial &t : *trials) {
    std::string file = "default-trial-" + std::to_string(t.number) + ".json";
    int expected = t.state == TrialState::Complete ? 1 : 0;
    EXPECT_EQ(ends[file], expected) << file;
  }
}

INSTANTIATE_TEST_SUITE_P(Engines, KillTest,
                         ::testing::Values("sqlite", "postgresql"));

} // namespace
