//===- Store.h - the study store (SQLite or PostgreSQL) ----------*- C++ -*-===//
//
// One schema on both engines (version 1):
//
//   schema_version(version)
//   studies(id, name UNIQUE, space, objectives, strategy, settings, created_at)
//   trials(id, study_id, number, state, stage, config, config_key, metrics,
//          performance, memory, worker, heartbeat, created_at, started_at,
//          finished_at, error, retry_of, UNIQUE(study_id, number))
//   strategy_state(study_id, state, updated_at)
//
// Trial states: waiting -> running -> complete | failed | pruned. Workers
// claim the lowest-numbered waiting trial in a write transaction (BEGIN
// IMMEDIATE on SQLite, FOR UPDATE SKIP LOCKED on PostgreSQL); a running trial
// whose heartbeat is older than the stale limit is marked failed and a new
// waiting trial with the same configuration (retry_of = its number) is
// queued. A result is stored only while the trial is still running under the
// reporting worker, so a reaped trial's late result is dropped: nothing is
// completed twice.
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_SEARCH_STORE_H
#define MIXQ_SEARCH_STORE_H

#include "mixq/Search/SqlConnection.h"

#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/Support/JSON.h"

#include <optional>
#include <string>
#include <vector>

namespace mixq::search {

inline constexpr int64_t kStudySchemaVersion = 1;

enum class TrialState { Waiting, Running, Complete, Failed, Pruned };
llvm::StringRef trialStateName(TrialState s);
std::optional<TrialState> parseTrialState(llvm::StringRef s);

struct Trial {
  int64_t id = 0;
  int64_t number = 0;
  TrialState state = TrialState::Waiting;
  std::string stage;
  std::string config;    ///< config JSON text
  std::string configKey; ///< genes, see configKey()
  std::optional<std::string> metrics;
  std::optional<double> performance;
  std::optional<double> memory;
  std::string worker;
  std::optional<double> heartbeat, createdAt, startedAt, finishedAt;
  std::string error;
  std::optional<int64_t> retryOf;
};

struct StudyInfo {
  int64_t id = 0;
  std::string name;
  std::string space;      ///< space JSON text
  std::string objectives; ///< objectives JSON text
  std::string strategy;
  std::string settings;   ///< strategy settings JSON text
};

/// A trial the strategy asks for.
struct NewTrial {
  std::string stage;
  std::string config;
  std::string configKey;
};

/// Seconds since the epoch (wall clock), the store's time unit.
double nowSeconds();

class StudyStore {
public:
  /// Opens (and for writers, initialises) the database at `url`. Errors when
  /// the database is corrupt, locked, read-only, not a MixQ study database,
  /// or of another schema version.
  static llvm::Expected<std::unique_ptr<StudyStore>>
  open(llvm::StringRef url, bool readOnly = false, int busyTimeoutMs = 10000);

  SqlEngine engine() const { return conn->engine(); }
  std::string describe() const { return conn->describe(); }

  /// Creates the study, or loads it and checks that space and strategy match.
  llvm::Expected<StudyInfo> createOrLoadStudy(const StudyInfo &wanted);
  llvm::Expected<StudyInfo> loadStudy(llvm::StringRef name);
  llvm::Expected<std::vector<std::string>> studyNames();

  /// Claims the lowest-numbered waiting trial for `worker`, or none.
  llvm::Expected<std::optional<Trial>> claim(int64_t studyId,
                                             llvm::StringRef worker);
  /// Refreshes the heartbeat; false if the trial is no longer ours.
  llvm::Expected<bool> heartbeat(int64_t trialId, llvm::StringRef worker);
  /// Stores a result; false (and nothing written) if the trial is no longer
  /// running under `worker`.
  llvm::Expected<bool> finish(int64_t trialId, llvm::StringRef worker,
                              TrialState state,
                              std::optional<std::string> metrics,
                              std::optional<double> performance,
                              std::optional<double> memory,
                              llvm::StringRef error);
  /// Marks running trials whose heartbeat is older than `staleAfter` seconds
  /// failed and queues a retry of each. Returns how many were reaped.
  llvm::Expected<int> reapStale(int64_t studyId, double staleAfter,
                                llvm::StringRef reaper);
  /// Every trial of the study, by number.
  llvm::Expected<std::vector<Trial>> trials(int64_t studyId);
  /// Queues `extra` trials outside the strategy (e.g. --enqueue).
  llvm::Expected<int> enqueue(int64_t studyId,
                              const std::vector<NewTrial> &extra);

  /// The strategy step. Under the study's write lock: if a waiting trial
  /// exists, does nothing and returns 0; otherwise calls `ask` with every
  /// trial and the strategy state (which `ask` may change), inserts what it
  /// returns as waiting trials, saves the state, and returns how many.
  using AskFn = llvm::function_ref<llvm::Expected<std::vector<NewTrial>>(
      const std::vector<Trial> &, llvm::json::Object &)>;
  llvm::Expected<int> askLocked(int64_t studyId, AskFn ask);
  /// Under the study's write lock: reads the strategy state, lets `update`
  /// change it and saves it (nothing is saved if `update` fails).
  using StateUpdateFn = llvm::function_ref<llvm::Error(llvm::json::Object &)>;
  llvm::Error updateStateLocked(int64_t studyId, StateUpdateFn update);
  /// The saved strategy state (empty if none).
  llvm::Expected<llvm::json::Object> strategyState(int64_t studyId);

  /// Direct access for tests and reports.
  SqlConnection &connection() { return *conn; }

private:
  explicit StudyStore(std::unique_ptr<SqlConnection> c) : conn(std::move(c)) {}
  llvm::Error initSchema(bool readOnly);
  llvm::Error createSchema();
  llvm::Error lockStudy(int64_t studyId);
  llvm::Expected<std::vector<Trial>> trialsWhere(llvm::StringRef cond,
                                                 std::vector<SqlValue> params);
  llvm::Expected<int> insertTrials(int64_t studyId,
                                   const std::vector<NewTrial> &trials,
                                   std::optional<int64_t> retryOf);
  llvm::Error saveState(int64_t studyId, const llvm::json::Object &state);

  std::unique_ptr<SqlConnection> conn;
};

} // namespace mixq::search

#endif // MIXQ_SEARCH_STORE_H
