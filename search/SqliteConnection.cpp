//===- SqliteConnection.cpp - SQLite engine of the study store ---*- C++ -*-===//
//
// WAL journal, a busy timeout for concurrent workers, and BEGIN IMMEDIATE for
// every read-modify-write transaction.
//
//===----------------------------------------------------------------------===//

#include "mixq/Search/SqlConnection.h"

#include "llvm/Support/FormatVariadic.h"

#include <sqlite3.h>

using namespace mixq::search;

namespace {

class SqliteConnection : public SqlConnection {
public:
  SqliteConnection(sqlite3 *db, std::string path) : db(db), path(path) {}
  ~SqliteConnection() override { sqlite3_close_v2(db); }

  SqlEngine engine() const override { return SqlEngine::SQLite; }
  std::string describe() const override { return "sqlite database " + path; }

  llvm::Expected<std::vector<SqlRow>>
  query(llvm::StringRef sql, const std::vector<SqlValue> &params) override;
  llvm::Error beginWrite() override { return exec("BEGIN IMMEDIATE"); }

private:
  llvm::Error fail(int rc, llvm::StringRef sql) const;

  sqlite3 *db;
  std::string path;
};

} // namespace

llvm::Error SqliteConnection::fail(int rc, llvm::StringRef sql) const {
  std::string msg = sqlite3_errmsg(db);
  int primary = rc & 0xff;
  std::string hint;
  if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED)
    hint = " (another process holds the database lock; raise --busy-timeout "
           "or stop the other writer)";
  else if (primary == SQLITE_READONLY)
    hint = " (the database or its directory is read-only)";
  else if (primary == SQLITE_NOTADB || primary == SQLITE_CORRUPT)
    hint = " (the file is not an intact SQLite database)";
  std::string stmt = sql.take_front(60).str();
  return llvm::createStringError(
      llvm::inconvertibleErrorCode(),
      llvm::formatv("{0}: {1}{2} [while running: {3}]", path, msg, hint, stmt)
          .str());
}

llvm::Expected<std::vector<SqlRow>>
SqliteConnection::query(llvm::StringRef sql,
                        const std::vector<SqlValue> &params) {
  sqlite3_stmt *stmt = nullptr;
  int rc = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()),
                              &stmt, nullptr);
  if (rc != SQLITE_OK)
    return fail(rc, sql);
  for (size_t i = 0; i < params.size(); ++i) {
    int idx = static_cast<int>(i + 1);
    if (!params[i])
      rc = sqlite3_bind_null(stmt, idx);
    else
      rc = sqlite3_bind_text(stmt, idx, params[i]->data(),
                             static_cast<int>(params[i]->size()),
                             SQLITE_TRANSIENT);
    if (rc != SQLITE_OK) {
      sqlite3_finalize(stmt);
      return fail(rc, sql);
    }
  }
  std::vector<SqlRow> rows;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    int n = sqlite3_column_count(stmt);
    SqlRow row;
    row.reserve(n);
    for (int c = 0; c < n; ++c) {
      if (sqlite3_column_type(stmt, c) == SQLITE_NULL) {
        row.push_back(std::nullopt);
        continue;
      }
      const unsigned char *text = sqlite3_column_text(stmt, c);
      int len = sqlite3_column_bytes(stmt, c);
      row.push_back(std::string(reinterpret_cast<const char *>(text), len));
    }
    rows.push_back(std::move(row));
  }
  if (rc != SQLITE_DONE) {
    llvm::Error err = fail(rc, sql);
    sqlite3_finalize(stmt);
    return std::move(err);
  }
  sqlite3_finalize(stmt);
  return rows;
}

llvm::Expected<std::unique_ptr<SqlConnection>>
mixq::search::openSqlite(llvm::StringRef path, bool readOnly,
                         int busyTimeoutMs) {
  if (path.empty())
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "empty SQLite database path");
  sqlite3 *db = nullptr;
  int flags = readOnly ? SQLITE_OPEN_READONLY
                       : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  flags |= SQLITE_OPEN_FULLMUTEX;
  std::string p = path.str();
  int rc = sqlite3_open_v2(p.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close_v2(db);
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "cannot open SQLite database %s: %s",
                                   p.c_str(), msg.c_str());
  }
  sqlite3_busy_timeout(db, busyTimeoutMs);
  auto conn = std::make_unique<SqliteConnection>(db, p);
  if (!readOnly) {
    // WAL lets readers (reports) run beside a writing worker. Switching the
    // journal mode needs the lock and reads the header: this is where a
    // corrupt or locked file is first noticed.
    auto rows = conn->query("PRAGMA journal_mode=WAL", {});
    if (!rows)
      return rows.takeError();
    if (auto err = conn->exec("PRAGMA synchronous=NORMAL"))
      return std::move(err);
  }
  if (auto err = conn->exec("PRAGMA foreign_keys=ON"))
    return std::move(err);
  return std::unique_ptr<SqlConnection>(std::move(conn));
}
