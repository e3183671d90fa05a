//===- ObjectiveTest.cpp - metrics JSON and the command objective -*- C++ -*-===//

#include "TestUtil.h"

#include "mixq/Search/Objective.h"

#include <gtest/gtest.h>

#include <fstream>

using namespace mixq::search;
using namespace mixq::search::testing;

namespace {

std::string metricsError(llvm::StringRef text) {
  auto m = parseMetrics(text, "trial 3");
  return m ? std::string() : llvm::toString(m.takeError());
}

TEST(Metrics, NumberAndPerTaskForms) {
  auto a = parseMetrics(R"({"accuracy": 0.5, "peak_bytes": 1000})", "x");
  ASSERT_TRUE(bool(a));
  EXPECT_DOUBLE_EQ(a->performance, 0.5);
  EXPECT_DOUBLE_EQ(a->memory, 1000);
  auto b = parseMetrics(R"({"accuracy": {"boolq": {"acc": 0.6, "acc_norm": 0.7},
                                         "piqa": {"acc": 0.8}},
                            "peak_bytes": {"total": 5e9, "weights": 3e9}})",
                        "x");
  ASSERT_TRUE(bool(b));
  EXPECT_DOUBLE_EQ(b->performance, 0.7);
  EXPECT_DOUBLE_EQ(b->memory, 5e9);
  // Log lines before the JSON are tolerated.
  auto c = parseMetrics("loading...\n{\"accuracy\": 1, \"peak_bytes\": 2}\n",
                        "x");
  ASSERT_TRUE(bool(c));
  auto p = parseMetrics(R"({"pruned": true})", "x");
  ASSERT_TRUE(bool(p));
  EXPECT_TRUE(p->pruned);
}

TEST(Metrics, BadMetricsAreRefusedClearly) {
  EXPECT_NE(metricsError("").find("trial 3: the output is not a metrics JSON "
                                  "object: (empty output)"),
            std::string::npos);
  EXPECT_NE(metricsError("Traceback (most recent call last)").find(
                "'Traceback (most recent call last)'"),
            std::string::npos);
  EXPECT_NE(metricsError("[1, 2]").find("must be an object"),
            std::string::npos);
  EXPECT_NE(metricsError(R"({"accuracy": 0.5})").find("no 'peak_bytes'"),
            std::string::npos);
  EXPECT_NE(metricsError(R"({"peak_bytes": 5})").find("no 'accuracy'"),
            std::string::npos);
  EXPECT_NE(metricsError(R"({"accuracy": "high", "peak_bytes": 5})")
                .find("'accuracy' must be a number"),
            std::string::npos);
  EXPECT_NE(metricsError(R"({"accuracy": {"t": {"acc_norm": 1}},
                             "peak_bytes": 5})")
                .find("task 't' has no numeric 'acc'"),
            std::string::npos);
  EXPECT_NE(metricsError(R"({"accuracy": 1, "peak_bytes": {"weights": 5}})")
                .find("numeric 'total'"),
            std::string::npos);
  EXPECT_NE(metricsError(R"({"accuracy": 1, "peak_bytes": -5})")
                .find("non-negative"),
            std::string::npos);
}

class CommandObjectiveTest : public ::testing::Test {
protected:
  void SetUp() override {
    config = tmp.path("trial-0.json");
    std::ofstream(config) << R"({"version": 1, "default": {},
      "layers": [{"layer": 0, "bits": 8, "rank": 4},
                 {"layer": 1, "bits": 4, "rank": 2}]})";
  }
  TrialOutcome run(const std::string &flags, double timeout = 0) {
    CommandObjective obj("python3 " + objectiveScript() + " " + flags, timeout,
                         0.05);
    return obj.evaluate({0, "test", config}, [] { return true; });
  }
  TempDir tmp;
  std::string config;
};

TEST_F(CommandObjectiveTest, ReadsMetricsFromStdout) {
  TrialOutcome o = run("");
  ASSERT_EQ(o.state, TrialState::Complete) << o.error;
  EXPECT_GT(o.metrics->performance, 0.3);
  EXPECT_DOUBLE_EQ(o.metrics->memory, 1e8 + 2e7 * 12 / 8 + 6e6);
  TrialOutcome t = run("--mode tasks");
  ASSERT_EQ(t.state, TrialState::Complete) << t.error;
  EXPECT_NEAR(t.metrics->performance, o.metrics->performance - 0.005, 1e-6);
}

TEST_F(CommandObjectiveTest, CrashIsAFailedTrialWithItsStderr) {
  TrialOutcome o = run("--mode crash");
  EXPECT_EQ(o.state, TrialState::Failed);
  EXPECT_NE(o.error.find("exited with status 3"), std::string::npos) << o.error;
  EXPECT_NE(o.error.find("simulated crash"), std::string::npos) << o.error;
  TrialOutcome s = run("--mode segv");
  EXPECT_EQ(s.state, TrialState::Failed);
  EXPECT_NE(s.error.find("signal 11, Segmentation fault"), std::string::npos)
      << s.error;
}

TEST_F(CommandObjectiveTest, GarbageAndMissingFieldsAreFailedTrials) {
  TrialOutcome g = run("--mode garbage");
  EXPECT_EQ(g.state, TrialState::Failed);
  EXPECT_NE(g.error.find("not a metrics JSON"), std::string::npos) << g.error;
  TrialOutcome n = run("--mode nopeak");
  EXPECT_EQ(n.state, TrialState::Failed);
  EXPECT_NE(n.error.find("no 'peak_bytes'"), std::string::npos) << n.error;
}

TEST_F(CommandObjectiveTest, HangIsKilledAtTheTimeout) {
  double start = nowSeconds();
  TrialOutcome o = run("--mode hang", 0.5);
  double took = nowSeconds() - start;
  EXPECT_EQ(o.state, TrialState::Failed);
  EXPECT_NE(o.error.find("timed out after 0.5s"), std::string::npos) << o.error;
  EXPECT_LT(took, 5.0);
}

TEST_F(CommandObjectiveTest, AbandonsWhenTheTrialIsTakenAway) {
  CommandObjective obj("python3 " + objectiveScript() + " --mode hang", 0,
                       0.05);
  int beats = 0;
  TrialOutcome o =
      obj.evaluate({0, "test", config}, [&] { return ++beats < 3; });
  EXPECT_EQ(o.state, TrialState::Failed);
  EXPECT_NE(o.error.find("abandoned"), std::string::npos);
  EXPECT_EQ(beats, 3);
}

TEST(ShellQuote, QuotesSingleQuotes) {
  EXPECT_EQ(shellQuote("a b"), "'a b'");
  EXPECT_EQ(shellQuote("it's"), "'it'\\''s'");
}

} // namespace
