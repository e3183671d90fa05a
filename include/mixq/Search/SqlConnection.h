//===- SqlConnection.h - a minimal SQL connection (SQLite, PostgreSQL) -*- C++ -*-===//
//
// The study store speaks SQL through this small interface so that one store
// implementation runs on both engines. Statements use `?` placeholders; the
// PostgreSQL connection rewrites them to `$1, $2, ...`. Values travel as text
// (or NULL), which both engines convert to the column type.
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_SEARCH_SQLCONNECTION_H
#define MIXQ_SEARCH_SQLCONNECTION_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mixq::search {

/// One bound parameter or result cell: NULL or text.
using SqlValue = std::optional<std::string>;
using SqlRow = std::vector<SqlValue>;

/// Helpers to build parameters.
SqlValue sqlInt(int64_t v);
SqlValue sqlReal(double v);
SqlValue sqlText(llvm::StringRef s);
inline SqlValue sqlNull() { return std::nullopt; }

enum class SqlEngine { SQLite, PostgreSQL };

/// A connection to one database.
class SqlConnection {
public:
  virtual ~SqlConnection();
  virtual SqlEngine engine() const = 0;
  /// Runs one statement and returns its rows (empty for statements without
  /// results). Errors name the database and quote the engine's message.
  virtual llvm::Expected<std::vector<SqlRow>>
  query(llvm::StringRef sql, const std::vector<SqlValue> &params = {}) = 0;
  /// Runs a statement, discarding its rows.
  llvm::Error exec(llvm::StringRef sql,
                   const std::vector<SqlValue> &params = {});
  /// Starts a write transaction: `BEGIN IMMEDIATE` on SQLite (takes the
  /// write lock now, so two workers never both read-then-write), `BEGIN` on
  /// PostgreSQL (rows are locked with FOR UPDATE).
  virtual llvm::Error beginWrite() = 0;
  llvm::Error commit() { return exec("COMMIT"); }
  /// Rolls back, ignoring errors (used on error paths).
  void rollback();
  /// Human-readable description of where the database lives.
  virtual std::string describe() const = 0;
};

/// Opens `sqlite:///abs/path.db` (optionally `?mode=ro`) or a plain path.
/// `busyTimeoutMs` is how long a locked database is waited for.
llvm::Expected<std::unique_ptr<SqlConnection>>
openSqlite(llvm::StringRef path, bool readOnly, int busyTimeoutMs);

/// Opens a libpq connection string or URI (`postgresql://...`).
llvm::Expected<std::unique_ptr<SqlConnection>>
openPostgres(llvm::StringRef conninfo);

/// Parses a study URL (`sqlite:///path`, `sqlite:///path?mode=ro`,
/// `postgresql://...`, `postgres://...`) and opens it.
llvm::Expected<std::unique_ptr<SqlConnection>>
openDatabase(llvm::StringRef url, int busyTimeoutMs = 10000);

} // namespace mixq::search

#endif // MIXQ_SEARCH_SQLCONNECTION_H
