//===- StoreTest.cpp - the study store on SQLite and PostgreSQL ---*- C++ -*-===//

#include "PostgresServer.h"
#include "TestUtil.h"

#include "mixq/Search/Store.h"

#include "llvm/Support/FileSystem.h"

#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <set>
#include <thread>

using namespace mixq::search;
using namespace mixq::search::testing;

namespace {

StudyInfo demoStudy(const std::string &name = "s") {
  StudyInfo s;
  s.name = name;
  s.space = R"({"layers":2,"bits":[4,8],"ranks":[2,4]})";
  s.objectives = R"({"performance":"accuracy"})";
  s.strategy = "random";
  s.settings = R"({"name":"random"})";
  return s;
}

NewTrial demoTrial(int i) {
  return {"test", "{\"version\":1,\"i\":" + std::to_string(i) + "}",
          "0.0.0." + std::to_string(i % 2)};
}

/// Fills the waiting queue through the strategy path.
void addTrials(StudyStore &store, int64_t studyId, int n) {
  auto added = store.askLocked(
      studyId, [&](const std::vector<Trial> &, llvm::json::Object &state)
                   -> llvm::Expected<std::vector<NewTrial>> {
        std::vector<NewTrial> out;
        for (int i = 0; i < n; ++i)
          out.push_back(demoTrial(i));
        state["asked"] = true;
        return out;
      });
  ASSERT_TRUE(bool(added)) << llvm::toString(added.takeError());
  ASSERT_EQ(*added, n);
}

class StoreTest : public ::testing::TestWithParam<std::string> {
protected:
  void SetUp() override {
    if (GetParam() == "postgresql") {
      std::string why;
      auto u = freshPostgresDatabase(why);
      if (!u)
        GTEST_SKIP() << "PostgreSQL tests skipped: " << why;
      url = *u;
    } else {
      url = "sqlite://" + tmp.path("study.db");
    }
  }
  std::unique_ptr<StudyStore> open() {
    auto s = StudyStore::open(url);
    EXPECT_TRUE(bool(s)) << (s ? "" : llvm::toString(s.takeError()));
    return s ? std::move(*s) : nullptr;
  }
  TempDir tmp;
  std::string url;
};

TEST_P(StoreTest, CreatesSchemaAndStudyOnce) {
  auto store = open();
  ASSERT_TRUE(store);
  auto a = store->createOrLoadStudy(demoStudy());
  ASSERT_TRUE(bool(a)) << llvm::toString(a.takeError());
  auto store2 = open();
  auto b = store2->createOrLoadStudy(demoStudy());
  ASSERT_TRUE(bool(b)) << llvm::toString(b.takeError());
  EXPECT_EQ(a->id, b->id);
  // Same name, other strategy: refused with a clear message.
  StudyInfo other = demoStudy();
  other.strategy = "automixq";
  auto c = store2->createOrLoadStudy(other);
  ASSERT_FALSE(bool(c));
  EXPECT_NE(llvm::toString(c.takeError()).find("uses strategy 'random'"),
            std::string::npos);
  auto ver = store2->connection().query("SELECT version FROM schema_version");
  ASSERT_TRUE(bool(ver));
  ASSERT_EQ(ver->size(), 1u);
  EXPECT_EQ(*(*ver)[0][0], "1");
}

TEST_P(StoreTest, ClaimsInOrderAndFinishesOnlyOwnRunningTrials) {
  auto store = open();
  auto study = store->createOrLoadStudy(demoStudy());
  ASSERT_TRUE(bool(study));
  addTrials(*store, study->id, 3);
  // While a waiting trial exists the strategy is not asked.
  auto again = store->askLocked(
      study->id, [](const std::vector<Trial> &, llvm::json::Object &)
                     -> llvm::Expected<std::vector<NewTrial>> {
        ADD_FAILURE() << "asked while trials were waiting";
        return std::vector<NewTrial>();
      });
  ASSERT_TRUE(bool(again));
  EXPECT_EQ(*again, 0);

  auto t0 = store->claim(study->id, "w1");
  ASSERT_TRUE(t0 && *t0);
  EXPECT_EQ((*t0)->number, 0);
  EXPECT_EQ((*t0)->state, TrialState::Running);
  auto t1 = store->claim(study->id, "w2");
  ASSERT_TRUE(t1 && *t1);
  EXPECT_EQ((*t1)->number, 1);
  // w2 cannot finish w1's trial.
  auto wrong = store->finish((*t0)->id, "w2", TrialState::Complete, "{}", 1, 2,
                             "");
  ASSERT_TRUE(bool(wrong));
  EXPECT_FALSE(*wrong);
  auto ok = store->finish((*t0)->id, "w1", TrialState::Complete,
                          std::string("{\"accuracy\":0.5}"), 0.5, 1e6, "");
  ASSERT_TRUE(bool(ok));
  EXPECT_TRUE(*ok);
  // Finishing twice is refused: the trial is no longer running.
  auto twice = store->finish((*t0)->id, "w1", TrialState::Failed, std::nullopt,
                             std::nullopt, std::nullopt, "again");
  ASSERT_TRUE(bool(twice));
  EXPECT_FALSE(*twice);
  auto all = store->trials(study->id);
  ASSERT_TRUE(bool(all));
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].state, TrialState::Complete);
  EXPECT_DOUBLE_EQ(*(*all)[0].performance, 0.5);
  EXPECT_DOUBLE_EQ(*(*all)[0].memory, 1e6);
  EXPECT_EQ((*all)[1].state, TrialState::Running);
  EXPECT_EQ((*all)[1].worker, "w2");
  EXPECT_EQ((*all)[2].state, TrialState::Waiting);
  auto state = store->strategyState(study->id);
  ASSERT_TRUE(bool(state));
  EXPECT_EQ(state->getBoolean("asked"), true);
}

TEST_P(StoreTest, StaleTrialIsFailedAndRetriedOnce) {
  auto store = open();
  auto study = store->createOrLoadStudy(demoStudy());
  ASSERT_TRUE(bool(study));
  addTrials(*store, study->id, 1);
  auto t = store->claim(study->id, "dead");
  ASSERT_TRUE(t && *t);
  // Fresh heartbeat: nothing to reap.
  auto none = store->reapStale(study->id, 60, "reaper");
  ASSERT_TRUE(bool(none));
  EXPECT_EQ(*none, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  auto reaped = store->reapStale(study->id, 0.01, "reaper");
  ASSERT_TRUE(bool(reaped)) << llvm::toString(reaped.takeError());
  EXPECT_EQ(*reaped, 1);
  auto all = store->trials(study->id);
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].state, TrialState::Failed);
  EXPECT_NE((*all)[0].error.find("lost: worker dead stopped beating"),
            std::string::npos);
  EXPECT_EQ((*all)[1].state, TrialState::Waiting);
  EXPECT_EQ((*all)[1].retryOf, std::optional<int64_t>(0));
  EXPECT_EQ((*all)[1].config, (*all)[0].config);
  // The dead worker's late result and heartbeat are refused.
  auto late = store->finish((*t)->id, "dead", TrialState::Complete, "{}", 1, 1,
                            "");
  ASSERT_TRUE(bool(late));
  EXPECT_FALSE(*late);
  auto beat = store->heartbeat((*t)->id, "dead");
  ASSERT_TRUE(bool(beat));
  EXPECT_FALSE(*beat);
}

TEST_P(StoreTest, ConcurrentWorkersNeverClaimTheSameTrial) {
  {
    auto store = open();
    auto study = store->createOrLoadStudy(demoStudy());
    ASSERT_TRUE(bool(study));
    addTrials(*store, study->id, 40);
  }
  std::mutex mu;
  std::vector<int64_t> claimed;
  std::atomic<int> errors{0};
  auto worker = [&](int w) {
    auto s = StudyStore::open(url);
    if (!s) {
      llvm::consumeError(s.takeError());
      ++errors;
      return;
    }
    auto study = (*s)->loadStudy("s");
    while (true) {
      auto t = (*s)->claim(study->id, "w" + std::to_string(w));
      if (!t) {
        llvm::consumeError(t.takeError());
        ++errors;
        return;
      }
      if (!*t)
        return;
      std::lock_guard<std::mutex> lock(mu);
      claimed.push_back((*t)->number);
    }
  };
  std::vector<std::thread> threads;
  for (int w = 0; w < 4; ++w)
    threads.emplace_back(worker, w);
  for (std::thread &t : threads)
    t.join();
  EXPECT_EQ(errors.load(), 0);
  std::set<int64_t> unique(claimed.begin(), claimed.end());
  EXPECT_EQ(claimed.size(), 40u);
  EXPECT_EQ(unique.size(), 40u);
}

TEST_P(StoreTest, FailedStrategyStepLeavesNothingBehind) {
  auto store = open();
  auto study = store->createOrLoadStudy(demoStudy());
  ASSERT_TRUE(bool(study));
  auto r = store->askLocked(
      study->id, [](const std::vector<Trial> &, llvm::json::Object &state)
                     -> llvm::Expected<std::vector<NewTrial>> {
        state["half-done"] = true;
        return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                       "strategy exploded");
      });
  ASSERT_FALSE(bool(r));
  EXPECT_EQ(llvm::toString(r.takeError()), "strategy exploded");
  auto all = store->trials(study->id);
  ASSERT_TRUE(bool(all));
  EXPECT_TRUE(all->empty());
  auto state = store->strategyState(study->id);
  ASSERT_TRUE(bool(state));
  EXPECT_FALSE(state->get("half-done"));
  // The store is still usable.
  addTrials(*store, study->id, 2);
}

INSTANTIATE_TEST_SUITE_P(Engines, StoreTest,
                         ::testing::Values("sqlite", "postgresql"));

//===----------------------------------------------------------------------===//
// Bad databases (SQLite files)
//===----------------------------------------------------------------------===//

TEST(StoreBadInput, CorruptFileIsRefused) {
  TempDir tmp;
  std::string path = tmp.path("corrupt.db");
  std::ofstream(path) << std::string(8192, 'x');
  auto s = StudyStore::open("sqlite://" + path);
  ASSERT_FALSE(bool(s));
  std::string msg = llvm::toString(s.takeError());
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("not"), std::string::npos) << msg;
}

TEST(StoreBadInput, OtherSchemaVersionIsRefused) {
  TempDir tmp;
  std::string url = "sqlite://" + tmp.path("v2.db");
  {
    auto s = StudyStore::open(url);
    ASSERT_TRUE(bool(s));
    ASSERT_FALSE(bool((*s)->connection().exec("UPDATE schema_version SET "
                                              "version = 2")));
  }
  auto s = StudyStore::open(url);
  ASSERT_FALSE(bool(s));
  std::string msg = llvm::toString(s.takeError());
  EXPECT_NE(msg.find("schema version 2"), std::string::npos) << msg;
}

TEST(StoreBadInput, ForeignDatabaseIsRefusedAndUntouched) {
  TempDir tmp;
  std::string path = tmp.path("foreign.db");
  {
    auto c = openSqlite(path, false, 1000);
    ASSERT_TRUE(bool(c));
    ASSERT_FALSE(bool((*c)->exec("CREATE TABLE customers (id INTEGER)")));
  }
  auto s = StudyStore::open("sqlite://" + path);
  ASSERT_FALSE(bool(s));
  std::string msg = llvm::toString(s.takeError());
  EXPECT_NE(msg.find("not a MixQ study database"), std::string::npos) << msg;
  EXPECT_NE(msg.find("customers"), std::string::npos) << msg;
  auto c = openSqlite(path, true, 1000);
  ASSERT_TRUE(bool(c));
  auto rows = (*c)->query("SELECT COUNT(*) FROM sqlite_master");
  ASSERT_TRUE(bool(rows));
  EXPECT_EQ(*(*rows)[0][0], "1");
}

TEST(StoreBadInput, LockedDatabaseTimesOutWithAClearError) {
  TempDir tmp;
  std::string path = tmp.path("locked.db");
  auto first = StudyStore::open("sqlite://" + path);
  ASSERT_TRUE(bool(first));
  auto study = (*first)->createOrLoadStudy(demoStudy());
  ASSERT_TRUE(bool(study));
  auto holder = openSqlite(path, false, 1000);
  ASSERT_TRUE(bool(holder));
  ASSERT_FALSE(bool((*holder)->exec("BEGIN EXCLUSIVE")));
  auto second = StudyStore::open("sqlite://" + path, false, 200);
  // Opening may succeed (WAL readers), but a write must time out.
  if (second) {
    auto t = (*second)->claim(study->id, "w");
    ASSERT_FALSE(bool(t));
    std::string msg = llvm::toString(t.takeError());
    EXPECT_NE(msg.find("locked"), std::string::npos) << msg;
    EXPECT_NE(msg.find("--busy-timeout"), std::string::npos) << msg;
  } else {
    std::string msg = llvm::toString(second.takeError());
    EXPECT_NE(msg.find("locked"), std::string::npos) << msg;
  }
  (*holder)->rollback();
  auto again = (*first)->claim(study->id, "w");
  EXPECT_TRUE(bool(again));
}

TEST(StoreBadInput, ReadOnlyDatabaseRefusesWrites) {
  TempDir tmp;
  std::string path = tmp.path("ro.db");
  {
    auto s = StudyStore::open("sqlite://" + path);
    ASSERT_TRUE(bool(s));
    ASSERT_TRUE(bool((*s)->createOrLoadStudy(demoStudy())));
  }
  auto ro = StudyStore::open("sqlite://" + path + "?mode=ro");
  ASSERT_TRUE(bool(ro)) << llvm::toString(ro.takeError());
  auto study = (*ro)->loadStudy("s");
  ASSERT_TRUE(bool(study));
  auto r = (*ro)->enqueue(study->id, {demoTrial(0)});
  ASSERT_FALSE(bool(r));
  std::string msg = llvm::toString(r.takeError());
  EXPECT_NE(msg.find("read-only"), std::string::npos) << msg;
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
}

TEST(StoreBadInput, UnknownUrlAndMissingStudy) {
  auto s = StudyStore::open("mysql://x");
  ASSERT_FALSE(bool(s));
  EXPECT_NE(llvm::toString(s.takeError()).find("unsupported study URL"),
            std::string::npos);
  TempDir tmp;
  auto ok = StudyStore::open("sqlite://" + tmp.path("a.db"));
  ASSERT_TRUE(bool(ok));
  auto missing = (*ok)->loadStudy("nope");
  ASSERT_FALSE(bool(missing));
  EXPECT_NE(llvm::toString(missing.takeError()).find("no study named 'nope'"),
            std::string::npos);
}

} // namespace
