//===- Store.cpp - the study store on SQLite and PostgreSQL ------*- C++ -*-===//

#include "mixq/Search/Store.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/FormatVariadic.h"

#include <chrono>
#include <cstdlib>

using namespace mixq::search;

namespace {

llvm::Error storeError(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg.str());
}

const char *const kTrialColumns =
    "id, number, state, stage, config, config_key, metrics, performance, "
    "memory, worker, heartbeat, created_at, started_at, finished_at, error, "
    "retry_of";

std::optional<double> toDouble(const SqlValue &v) {
  if (!v)
    return std::nullopt;
  char *end = nullptr;
  double d = std::strtod(v->c_str(), &end);
  if (end == v->c_str())
    return std::nullopt;
  return d;
}

int64_t toInt(const SqlValue &v) {
  if (!v)
    return 0;
  return std::strtoll(v->c_str(), nullptr, 10);
}

llvm::Expected<Trial> rowToTrial(const SqlRow &r) {
  if (r.size() != 16)
    return storeError("unexpected trial row width");
  Trial t;
  t.id = toInt(r[0]);
  t.number = toInt(r[1]);
  std::optional<TrialState> st = parseTrialState(r[2].value_or(""));
  if (!st)
    return storeError("trial " + llvm::Twine(t.number) + " has unknown state '" +
                      r[2].value_or("NULL") + "'");
  t.state = *st;
  t.stage = r[3].value_or("");
  t.config = r[4].value_or("");
  t.configKey = r[5].value_or("");
  t.metrics = r[6];
  t.performance = toDouble(r[7]);
  t.memory = toDouble(r[8]);
  t.worker = r[9].value_or("");
  t.heartbeat = toDouble(r[10]);
  t.createdAt = toDouble(r[11]);
  t.startedAt = toDouble(r[12]);
  t.finishedAt = toDouble(r[13]);
  t.error = r[14].value_or("");
  if (r[15])
    t.retryOf = toInt(r[15]);
  return t;
}

/// Runs `body` in a write transaction, rolling back on error.
template <typename Fn>
auto inWriteTxn(SqlConnection &c, Fn body) -> decltype(body()) {
  if (auto err = c.beginWrite())
    return std::move(err);
  auto result = body();
  if (!result) {
    c.rollback();
    return result;
  }
  if (auto err = c.commit()) {
    c.rollback();
    return std::move(err);
  }
  return result;
}

} // namespace

llvm::StringRef mixq::search::trialStateName(TrialState s) {
  switch (s) {
  case TrialState::Waiting:
    return "waiting";
  case TrialState::Running:
    return "running";
  case TrialState::Complete:
    return "complete";
  case TrialState::Failed:
    return "failed";
  case TrialState::Pruned:
    return "pruned";
  }
  return "?";
}

std::optional<TrialState> mixq::search::parseTrialState(llvm::StringRef s) {
  return llvm::StringSwitch<std::optional<TrialState>>(s)
      .Case("waiting", TrialState::Waiting)
      .Case("running", TrialState::Running)
      .Case("complete", TrialState::Complete)
      .Case("failed", TrialState::Failed)
      .Case("pruned", TrialState::Pruned)
      .Default(std::nullopt);
}

double mixq::search::nowSeconds() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

//===----------------------------------------------------------------------===//
// Schema
//===----------------------------------------------------------------------===//

llvm::Expected<std::unique_ptr<StudyStore>>
StudyStore::open(llvm::StringRef url, bool readOnly, int busyTimeoutMs) {
  std::string u = url.str();
  if (readOnly && u.rfind("sqlite://", 0) == 0 &&
      u.find('?') == std::string::npos)
    u += "?mode=ro";
  auto conn = openDatabase(u, busyTimeoutMs);
  if (!conn)
    return conn.takeError();
  std::unique_ptr<StudyStore> store(new StudyStore(std::move(*conn)));
  if (auto err = store->initSchema(readOnly))
    return std::move(err);
  return std::move(store);
}

llvm::Error StudyStore::initSchema(bool readOnly) {
  const char *listTables =
      conn->engine() == SqlEngine::SQLite
          ? "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT "
            "LIKE 'sqlite_%' ORDER BY name"
          : "SELECT table_name FROM information_schema.tables WHERE "
            "table_schema = current_schema() ORDER BY table_name";
  auto rows = conn->query(listTables);
  if (!rows)
    return rows.takeError();
  std::vector<std::string> tables;
  for (const SqlRow &r : *rows)
    tables.push_back(r[0].value_or(""));
  if (tables.empty()) {
    if (readOnly)
      return storeError(conn->describe() + " holds no MixQ study (it is "
                                           "empty)");
    return createSchema();
  }
  if (!llvm::is_contained(tables, "schema_version"))
    return storeError(conn->describe() +
                      " is not a MixQ study database: it has tables (" +
                      llvm::join(tables, ", ") +
                      ") but no schema_version table");
  auto ver = conn->query("SELECT version FROM schema_version");
  if (!ver)
    return ver.takeError();
  if (ver->size() != 1 || !(*ver)[0][0])
    return storeError(conn->describe() +
                      ": schema_version must hold exactly one row");
  int64_t v = toInt((*ver)[0][0]);
  if (v != kStudySchemaVersion)
    return storeError(llvm::formatv("{0} has study schema version {1}; this "
                                    "mixq-search reads version {2} only",
                                    conn->describe(), v, kStudySchemaVersion)
                          .str());
  for (const char *t : {"studies", "trials", "strategy_state"})
    if (!llvm::is_contained(tables, t))
      return storeError(conn->describe() + " claims schema version 1 but has "
                                           "no '" + t + "' table");
  return llvm::Error::success();
}

llvm::Error StudyStore::createSchema() {
  bool pg = conn->engine() == SqlEngine::PostgreSQL;
  std::string pk = pg ? "BIGSERIAL PRIMARY KEY" : "INTEGER PRIMARY KEY";
  std::vector<std::string> ddl = {
      "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
      "CREATE TABLE IF NOT EXISTS studies (id " + pk +
          ", name TEXT NOT NULL UNIQUE, space TEXT NOT NULL, objectives TEXT "
          "NOT NULL, strategy TEXT NOT NULL, settings TEXT NOT NULL, "
          "created_at DOUBLE PRECISION NOT NULL)",
      "CREATE TABLE IF NOT EXISTS trials (id " + pk +
          ", study_id BIGINT NOT NULL REFERENCES studies(id), number BIGINT "
          "NOT NULL, state TEXT NOT NULL CHECK (state IN ('waiting', "
          "'running', 'complete', 'failed', 'pruned')), stage TEXT NOT NULL, "
          "config TEXT NOT NULL, config_key TEXT NOT NULL, metrics TEXT, "
          "performance DOUBLE PRECISION, memory DOUBLE PRECISION, worker "
          "TEXT, heartbeat DOUBLE PRECISION, created_at DOUBLE PRECISION NOT "
          "NULL, started_at DOUBLE PRECISION, finished_at DOUBLE PRECISION, "
          "error TEXT, retry_of BIGINT, UNIQUE (study_id, number))",
      "CREATE INDEX IF NOT EXISTS trials_by_state ON trials (study_id, "
      "state, number)",
      "CREATE TABLE IF NOT EXISTS strategy_state (study_id BIGINT PRIMARY "
      "KEY REFERENCES studies(id), state TEXT NOT NULL, updated_at DOUBLE "
      "PRECISION NOT NULL)"};
  auto body = [&]() -> llvm::Expected<int> {
    // Two workers may create the schema at once: serialise them.
    if (pg)
      if (auto err = conn->exec("SELECT pg_advisory_xact_lock(72616)"))
        return std::move(err);
    for (const std::string &s : ddl)
      if (auto err = conn->exec(s))
        return std::move(err);
    auto rows = conn->query("SELECT COUNT(*) FROM schema_version");
    if (!rows)
      return rows.takeError();
    if (toInt((*rows)[0][0]) == 0)
      if (auto err = conn->exec("INSERT INTO schema_version (version) "
                                "VALUES (?)",
                                {sqlInt(kStudySchemaVersion)}))
        return std::move(err);
    return 0;
  };
  auto r = inWriteTxn(*conn, body);
  if (!r)
    return r.takeError();
  return llvm::Error::success();
}

//===----------------------------------------------------------------------===//
// Studies
//===----------------------------------------------------------------------===//

llvm::Expected<StudyInfo> StudyStore::loadStudy(llvm::StringRef name) {
  auto rows = conn->query("SELECT id, name, space, objectives, strategy, "
                          "settings FROM studies WHERE name = ?",
                          {sqlText(name)});
  if (!rows)
    return rows.takeError();
  if (rows->empty()) {
    auto names = studyNames();
    std::string known =
        names ? (names->empty() ? std::string("none")
                                : llvm::join(*names, ", "))
              : llvm::toString(names.takeError());
    return storeError(conn->describe() + " has no study named '" + name +
                      "' (studies: " + known + ")");
  }
  const SqlRow &r = rows->front();
  StudyInfo s;
  s.id = toInt(r[0]);
  s.name = r[1].value_or("");
  s.space = r[2].value_or("");
  s.objectives = r[3].value_or("");
  s.strategy = r[4].value_or("");
  s.settings = r[5].value_or("");
  return s;
}

llvm::Expected<std::vector<std::string>> StudyStore::studyNames() {
  auto rows = conn->query("SELECT name FROM studies ORDER BY id");
  if (!rows)
    return rows.takeError();
  std::vector<std::string> names;
  for (const SqlRow &r : *rows)
    names.push_back(r[0].value_or(""));
  return names;
}

llvm::Expected<StudyInfo>
StudyStore::createOrLoadStudy(const StudyInfo &wanted) {
  auto inserted = inWriteTxn(*conn, [&]() -> llvm::Expected<int> {
    if (auto err = conn->exec(
            "INSERT INTO studies (name, space, objectives, strategy, "
            "settings, created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT "
            "(name) DO NOTHING",
            {sqlText(wanted.name), sqlText(wanted.space),
             sqlText(wanted.objectives), sqlText(wanted.strategy),
             sqlText(wanted.settings), sqlReal(nowSeconds())}))
      return std::move(err);
    return 0;
  });
  if (!inserted)
    return inserted.takeError();
  auto s = loadStudy(wanted.name);
  if (!s)
    return s.takeError();
  auto sameJSON = [](llvm::StringRef a, llvm::StringRef b) {
    auto va = llvm::json::parse(a), vb = llvm::json::parse(b);
    if (!va || !vb) {
      llvm::consumeError(va.takeError());
      llvm::consumeError(vb.takeError());
      return a == b;
    }
    return *va == *vb;
  };
  if (!sameJSON(s->space, wanted.space))
    return storeError("study '" + wanted.name + "' in " + conn->describe() +
                      " was created with another search space: " + s->space);
  if (s->strategy != wanted.strategy)
    return storeError("study '" + wanted.name + "' in " + conn->describe() +
                      " uses strategy '" + s->strategy + "', not '" +
                      wanted.strategy + "'; use another --name");
  return s;
}

//===----------------------------------------------------------------------===//
// Trials
//===----------------------------------------------------------------------===//

llvm::Error StudyStore::lockStudy(int64_t studyId) {
  // SQLite: BEGIN IMMEDIATE already holds the database write lock.
  if (conn->engine() == SqlEngine::SQLite)
    return llvm::Error::success();
  return conn->exec("SELECT id FROM studies WHERE id = ? FOR UPDATE",
                    {sqlInt(studyId)});
}

llvm::Expected<std::vector<Trial>>
StudyStore::trialsWhere(llvm::StringRef cond, std::vector<SqlValue> params) {
  std::string sql = std::string("SELECT ") + kTrialColumns +
                    " FROM trials WHERE " + cond.str() + " ORDER BY number";
  auto rows = conn->query(sql, params);
  if (!rows)
    return rows.takeError();
  std::vector<Trial> out;
  out.reserve(rows->size());
  for (const SqlRow &r : *rows) {
    auto t = rowToTrial(r);
    if (!t)
      return t.takeError();
    out.push_back(std::move(*t));
  }
  return out;
}

llvm::Expected<std::vector<Trial>> StudyStore::trials(int64_t studyId) {
  return trialsWhere("study_id = ?", {sqlInt(studyId)});
}

llvm::Expected<std::optional<Trial>>
StudyStore::claim(int64_t studyId, llvm::StringRef worker) {
  bool pg = conn->engine() == SqlEngine::PostgreSQL;
  return inWriteTxn(
      *conn, [&]() -> llvm::Expected<std::optional<Trial>> {
        std::string sql = "SELECT id FROM trials WHERE study_id = ? AND "
                          "state = 'waiting' ORDER BY number LIMIT 1";
        if (pg)
          sql += " FOR UPDATE SKIP LOCKED";
        auto rows = conn->query(sql, {sqlInt(studyId)});
        if (!rows)
          return rows.takeError();
        if (rows->empty())
          return std::optional<Trial>();
        int64_t id = toInt((*rows)[0][0]);
        double now = nowSeconds();
        if (auto err = conn->exec(
                "UPDATE trials SET state = 'running', worker = ?, heartbeat "
                "= ?, started_at = ? WHERE id = ?",
                {sqlText(worker), sqlReal(now), sqlReal(now), sqlInt(id)}))
          return std::move(err);
        auto t = trialsWhere("id = ?", {sqlInt(id)});
        if (!t)
          return t.takeError();
        return std::optional<Trial>(t->front());
      });
}

llvm::Expected<bool> StudyStore::heartbeat(int64_t trialId,
                                           llvm::StringRef worker) {
  auto rows = conn->query("UPDATE trials SET heartbeat = ? WHERE id = ? AND "
                          "state = 'running' AND worker = ? RETURNING id",
                          {sqlReal(nowSeconds()), sqlInt(trialId),
                           sqlText(worker)});
  if (!rows)
    return rows.takeError();
  return !rows->empty();
}

llvm::Expected<bool>
StudyStore::finish(int64_t trialId, llvm::StringRef worker, TrialState state,
                   std::optional<std::string> metrics,
                   std::optional<double> performance,
                   std::optional<double> memory, llvm::StringRef error) {
  auto optReal = [](std::optional<double> v) {
    return v ? sqlReal(*v) : sqlNull();
  };
  return inWriteTxn(*conn, [&]() -> llvm::Expected<bool> {
    double now = nowSeconds();
    auto rows = conn->query(
        "UPDATE trials SET state = ?, metrics = ?, performance = ?, memory = "
        "?, error = ?, finished_at = ?, heartbeat = ? WHERE id = ? AND state "
        "= 'running' AND worker = ? RETURNING id",
        {sqlText(trialStateName(state)),
         metrics ? sqlText(*metrics) : sqlNull(), optReal(performance),
         optReal(memory), error.empty() ? sqlNull() : sqlText(error),
         sqlReal(now), sqlReal(now), sqlInt(trialId), sqlText(worker)});
    if (!rows)
      return rows.takeError();
    return !rows->empty();
  });
}

llvm::Expected<int>
StudyStore::insertTrials(int64_t studyId, const std::vector<NewTrial> &trials,
                         std::optional<int64_t> retryOf) {
  auto rows = conn->query(
      "SELECT COALESCE(MAX(number), -1) FROM trials WHERE study_id = ?",
      {sqlInt(studyId)});
  if (!rows)
    return rows.takeError();
  int64_t next = toInt((*rows)[0][0]) + 1;
  double now = nowSeconds();
  for (const NewTrial &t : trials) {
    if (auto err = conn->exec(
            "INSERT INTO trials (study_id, number, state, stage, config, "
            "config_key, created_at, retry_of) VALUES (?, ?, 'waiting', ?, "
            "?, ?, ?, ?)",
            {sqlInt(studyId), sqlInt(next++), sqlText(t.stage),
             sqlText(t.config), sqlText(t.configKey), sqlReal(now),
             retryOf ? sqlInt(*retryOf) : sqlNull()}))
      return std::move(err);
  }
  return static_cast<int>(trials.size());
}

llvm::Expected<int> StudyStore::reapStale(int64_t studyId, double staleAfter,
                                          llvm::StringRef reaper) {
  double cutoff = nowSeconds() - staleAfter;
  // Cheap check first, outside the write lock.
  auto stale = trialsWhere("study_id = ? AND state = 'running' AND "
                           "heartbeat < ?",
                           {sqlInt(studyId), sqlReal(cutoff)});
  if (!stale)
    return stale.takeError();
  if (stale->empty())
    return 0;
  return inWriteTxn(*conn, [&]() -> llvm::Expected<int> {
    if (auto err = lockStudy(studyId))
      return std::move(err);
    auto again = trialsWhere("study_id = ? AND state = 'running' AND "
                             "heartbeat < ?",
                             {sqlInt(studyId), sqlReal(cutoff)});
    if (!again)
      return again.takeError();
    for (const Trial &t : *again) {
      std::string why = llvm::formatv("lost: worker {0} stopped beating "
                                      "(last heartbeat {1:f1}s ago); "
                                      "retried by {2}",
                                      t.worker,
                                      nowSeconds() - t.heartbeat.value_or(0),
                                      reaper)
                            .str();
      if (auto err = conn->exec(
              "UPDATE trials SET state = 'failed', error = ?, finished_at = "
              "? WHERE id = ? AND state = 'running'",
              {sqlText(why), sqlReal(nowSeconds()), sqlInt(t.id)}))
        return std::move(err);
      auto n = insertTrials(studyId, {{t.stage, t.config, t.configKey}},
                            t.number);
      if (!n)
        return n.takeError();
    }
    return static_cast<int>(again->size());
  });
}

llvm::Expected<int> StudyStore::enqueue(int64_t studyId,
                                        const std::vector<NewTrial> &extra) {
  return inWriteTxn(*conn, [&]() -> llvm::Expected<int> {
    if (auto err = lockStudy(studyId))
      return std::move(err);
    return insertTrials(studyId, extra, std::nullopt);
  });
}

llvm::Expected<llvm::json::Object>
StudyStore::strategyState(int64_t studyId) {
  auto rows = conn->query("SELECT state FROM strategy_state WHERE study_id = ?",
                          {sqlInt(studyId)});
  if (!rows)
    return rows.takeError();
  if (rows->empty() || !(*rows)[0][0])
    return llvm::json::Object();
  auto v = llvm::json::parse(*(*rows)[0][0]);
  if (!v)
    return storeError(conn->describe() + ": strategy state of study " +
                      llvm::Twine(studyId) +
                      " is not valid JSON: " + llvm::toString(v.takeError()));
  if (!v->getAsObject())
    return storeError(conn->describe() + ": strategy state is not an object");
  return std::move(*v->getAsObject());
}

llvm::Error StudyStore::saveState(int64_t studyId,
                                  const llvm::json::Object &state) {
  std::string text =
      llvm::formatv("{0}", llvm::json::Value(llvm::json::Object(state))).str();
  return conn->exec(
      "INSERT INTO strategy_state (study_id, state, updated_at) VALUES (?, "
      "?, ?) ON CONFLICT (study_id) DO UPDATE SET state = excluded.state, "
      "updated_at = excluded.updated_at",
      {sqlInt(studyId), sqlText(text), sqlReal(nowSeconds())});
}

llvm::Expected<int> StudyStore::askLocked(int64_t studyId, AskFn ask) {
  return inWriteTxn(*conn, [&]() -> llvm::Expected<int> {
    if (auto err = lockStudy(studyId))
      return std::move(err);
    auto waiting = conn->query("SELECT COUNT(*) FROM trials WHERE study_id = "
                               "? AND state = 'waiting'",
                               {sqlInt(studyId)});
    if (!waiting)
      return waiting.takeError();
    if (toInt((*waiting)[0][0]) > 0)
      return 0;
    auto all = trials(studyId);
    if (!all)
      return all.takeError();
    auto state = strategyState(studyId);
    if (!state)
      return state.takeError();
    auto fresh = ask(*all, *state);
    if (!fresh)
      return fresh.takeError();
    auto n = insertTrials(studyId, *fresh, std::nullopt);
    if (!n)
      return n.takeError();
    if (auto err = saveState(studyId, *state))
      return std::move(err);
    return *n;
  });
}

llvm::Error StudyStore::updateStateLocked(int64_t studyId,
                                          StateUpdateFn update) {
  auto done = inWriteTxn(*conn, [&]() -> llvm::Expected<int> {
    if (auto err = lockStudy(studyId))
      return std::move(err);
    auto state = strategyState(studyId);
    if (!state)
      return state.takeError();
    if (auto err = update(*state))
      return std::move(err);
    if (auto err = saveState(studyId, *state))
      return std::move(err);
    return 0;
  });
  return done ? llvm::Error::success() : done.takeError();
}
