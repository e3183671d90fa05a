//===- BuiltinTrialTest.cpp - forked trials and the built-in trial -*- C++ -*-===//

#include "TestUtil.h"

#include "mixq/Search/BuiltinTrial.h"
#include "mixq/Search/Space.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MemoryBuffer.h"

#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <fstream>
#include <thread>
#include <unistd.h>

using namespace mixq::search;
using namespace mixq::search::testing;

namespace {

int parentCounter = 0;

/// A forked objective whose child does what the test says.
class ScriptedTrial : public ForkedObjective {
public:
  enum Mode { Ok, Crash, Error, Hang, Garbage };
  ScriptedTrial(std::string dir, Mode mode, double timeout = 0)
      : ForkedObjective(std::move(dir), timeout), mode(mode) {}
  std::string describe() const override { return "scripted"; }

protected:
  llvm::Expected<std::string> runTrial(const TrialRequest &req,
                                       llvm::StringRef dir) override {
    ++parentCounter; // the child's copy only
    llvm::errs() << "child of trial " << req.number << " in " << dir << "\n";
    switch (mode) {
    case Ok:
      return llvm::formatv(R"({{"accuracy": {{"t": {{"acc": 0.25}}, )"
                           R"("peak_bytes": {{"total": {0}}})",
                           1000 + req.number)
          .str();
    case Crash:
      std::raise(SIGSEGV);
      return std::string();
    case Error:
      return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                     "the config is impossible");
    case Hang:
      std::this_thread::sleep_for(std::chrono::seconds(60));
      return std::string();
    case Garbage:
      return std::string("not json");
    }
    return std::string();
  }

private:
  Mode mode;
};

TrialOutcome runScripted(const TempDir &tmp, ScriptedTrial::Mode mode,
                         double timeout = 0, bool keep = true) {
  ScriptedTrial obj(tmp.path("work"), mode, timeout);
  TrialRequest req{7, "test", tmp.path("s-trial-7.json")};
  return obj.evaluate(req, [&] { return keep; });
}

TEST(ForkedObjective, CompleteTrialReturnsTheChildsMetrics) {
  TempDir tmp;
  parentCounter = 0;
  TrialOutcome o = runScripted(tmp, ScriptedTrial::Ok);
  ASSERT_EQ(o.state, TrialState::Complete) << o.error;
  EXPECT_DOUBLE_EQ(o.metrics->performance, 0.25);
  EXPECT_DOUBLE_EQ(o.metrics->memory, 1007);
  // The work ran in the child: the parent's memory is untouched.
  EXPECT_EQ(parentCounter, 0);
  // The trial directory is named after the config file; it holds the log.
  auto log = llvm::MemoryBuffer::getFile(tmp.path("work/s-trial-7/trial.log"));
  ASSERT_TRUE(bool(log));
  EXPECT_NE((*log)->getBuffer().find("child of trial 7"), llvm::StringRef::npos);
  EXPECT_TRUE(llvm::sys::fs::exists(tmp.path("work/s-trial-7/metrics.json")));
}

TEST(ForkedObjective, CrashIsAFailedTrialWithTheLog) {
  TempDir tmp;
  TrialOutcome o = runScripted(tmp, ScriptedTrial::Crash);
  EXPECT_EQ(o.state, TrialState::Failed);
  EXPECT_NE(o.error.find("killed by signal 11"), std::string::npos) << o.error;
  EXPECT_NE(o.error.find("child of trial 7"), std::string::npos) << o.error;
  // The worker goes on: the next trial in the same process completes.
  EXPECT_EQ(runScripted(tmp, ScriptedTrial::Ok).state, TrialState::Complete);
}

TEST(ForkedObjective, ErrorTextIsRecorded) {
  TempDir tmp;
  TrialOutcome o = runScripted(tmp, ScriptedTrial::Error);
  EXPECT_EQ(o.state, TrialState::Failed);
  EXPECT_NE(o.error.find("exited with status 1"), std::string::npos) << o.error;
  EXPECT_NE(o.error.find("the config is impossible"), std::string::npos)
      << o.error;
  TrialOutcome g = runScripted(tmp, ScriptedTrial::Garbage);
  EXPECT_EQ(g.state, TrialState::Failed);
  EXPECT_NE(g.error.find("not a metrics JSON"), std::string::npos) << g.error;
}

TEST(ForkedObjective, TimeoutKillsTheChild) {
  TempDir tmp;
  auto t0 = std::chrono::steady_clock::now();
  TrialOutcome o = runScripted(tmp, ScriptedTrial::Hang, 0.3);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                           t0)
                 .count();
  EXPECT_EQ(o.state, TrialState::Failed);
  EXPECT_NE(o.error.find("timed out after 0.3s"), std::string::npos) << o.error;
  EXPECT_LT(s, 20.0);
}

TEST(ForkedObjective, AbandonedWhenTheTrialIsNoLongerOurs) {
  TempDir tmp;
  TrialOutcome o = runScripted(tmp, ScriptedTrial::Hang, 0, /*keep=*/false);
  EXPECT_EQ(o.state, TrialState::Failed);
  EXPECT_NE(o.error.find("abandoned"), std::string::npos) << o.error;
}

//===----------------------------------------------------------------------===//
// The built-in trial on stories260K (real weights, a few examples)
//===----------------------------------------------------------------------===//

std::string dataPath(const std::string &rel) {
  return std::string(MIXQ_DATA_DIR) + "/" + rel;
}

class BuiltinTrialTest : public ::testing::Test {
protected:
  void SetUp() override {
    model = dataPath("models/stories260K-hf");
    if (!llvm::sys::fs::exists(model + "/config.json"))
      GTEST_SKIP() << "no shared data at " << MIXQ_DATA_DIR;
    auto s = SearchSpace::fromModelDir(model, {4, 8}, {2, 4, 128});
    ASSERT_TRUE(bool(s)) << llvm::toString(s.takeError());
    space = std::move(*s);
    recipe.checkpoint = model;
    recipe.tokenizer = dataPath("models/stories260K/tok512.bin");
    recipe.dataDir = MIXQ_DATA_DIR;
    recipe.tasks = {"babi:qa1"};
    recipe.batch = 4;
    recipe.trainLimit = 8;
    recipe.evalLimit = 4;
    recipe.threads = 1;
  }
  std::string writeConfig(const std::string &name, int bitsIdx, int rankIdx) {
    std::string path = tmp.path(name);
    std::ofstream(path) << llvm::formatv(
        "{0}", toConfigJSON(space, uniformConfig(space, bitsIdx, rankIdx, 0)))
        .str();
    return path;
  }
  TrialOutcome run(BuiltinTrial &t, const std::string &config, int64_t n) {
    return t.evaluate({n, "test", config}, [] { return true; });
  }

  TempDir tmp;
  std::string model;
  SearchSpace space;
  TrialRecipe recipe;
};

TEST_F(BuiltinTrialTest, CompilesFineTunesAndEvaluates) {
  auto trial = BuiltinTrial::create(recipe, tmp.path("work"), 120);
  ASSERT_TRUE(bool(trial)) << llvm::toString(trial.takeError());
  TrialOutcome small = run(**trial, writeConfig("s-trial-0.json", 0, 0), 0);
  ASSERT_EQ(small.state, TrialState::Complete) << small.error;
  TrialOutcome big = run(**trial, writeConfig("s-trial-1.json", 1, 1), 1);
  ASSERT_EQ(big.state, TrialState::Complete) << big.error;

  // The runtime's metrics: accuracy per task over the limited items, the
  // measured peak, the loss curve of 8 examples at batch 4.
  auto m = llvm::json::parse(small.metrics->text);
  ASSERT_TRUE(bool(m));
  const llvm::json::Object *o = m->getAsObject();
  const llvm::json::Object *acc = o->getObject("accuracy");
  ASSERT_TRUE(acc && acc->getObject("babi:qa1"));
  EXPECT_EQ(acc->getObject("babi:qa1")->getInteger("n"), 4);
  EXPECT_EQ(o->getInteger("steps"), 2);
  EXPECT_EQ(o->getInteger("examples"), 8);
  EXPECT_GT(small.metrics->memory, 0);
  EXPECT_GE(small.metrics->performance, 0);
  EXPECT_LE(small.metrics->performance, 1);
  // 4-bit weights with rank 2 adapters need less than 8-bit with rank 4.
  EXPECT_LT(small.metrics->memory, big.metrics->memory);
  // The variant and the fine-tuned adapter are in the trial's directory.
  EXPECT_TRUE(
      llvm::sys::fs::exists(tmp.path("work/s-trial-0/variant/manifest.json")));
  EXPECT_TRUE(llvm::sys::fs::exists(
      tmp.path("work/s-trial-1/adapter/adapter_config.json")));
}

TEST_F(BuiltinTrialTest, ImpossibleConfigIsAFailedTrial) {
  auto trial = BuiltinTrial::create(recipe, tmp.path("work"), 120);
  ASSERT_TRUE(bool(trial)) << llvm::toString(trial.takeError());
  // Rank 128 on 64-wide projections: the compiler refuses it.
  TrialOutcome o = run(**trial, writeConfig("s-trial-0.json", 1, 2), 0);
  EXPECT_EQ(o.state, TrialState::Failed);
  EXPECT_NE(o.error.find("compiling"), std::string::npos) << o.error;
  EXPECT_NE(o.error.find("rank"), std::string::npos) << o.error;
}

TEST_F(BuiltinTrialTest, BadRecipeAndCheckpointAreErrors) {
  TrialRecipe r = recipe;
  r.checkpoint = tmp.path("missing");
  auto t = BuiltinTrial::create(r, tmp.path("work"), 0);
  ASSERT_FALSE(bool(t));
  EXPECT_NE(llvm::toString(t.takeError()).find(tmp.path("missing")),
            std::string::npos);
  r = recipe;
  r.tasks = {"ppl:x.txt"};
  auto p = BuiltinTrial::create(r, tmp.path("work"), 0);
  ASSERT_FALSE(bool(p));
  EXPECT_NE(llvm::toString(p.takeError()).find("perplexity"),
            std::string::npos);
  auto back = TrialRecipe::fromJSON(recipe.toJSON(), "x");
  ASSERT_TRUE(bool(back));
  EXPECT_EQ(back->toJSON(), recipe.toJSON());
}

} // namespace
