//===- PostgresConnection.cpp - PostgreSQL engine of the study store -*- C++ -*-===//
//
// libpq with text parameters; `?` placeholders become `$n`. Claims use
// `FOR UPDATE SKIP LOCKED` (see Store.cpp).
//
//===----------------------------------------------------------------------===//

#include "mixq/Search/SqlConnection.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FormatVariadic.h"

#include <libpq-fe.h>

using namespace mixq::search;

namespace {

class PostgresConnection : public SqlConnection {
public:
  PostgresConnection(PGconn *conn, std::string where)
      : conn(conn), where(std::move(where)) {}
  ~PostgresConnection() override { PQfinish(conn); }

  SqlEngine engine() const override { return SqlEngine::PostgreSQL; }
  std::string describe() const override {
    return "postgresql database " + where;
  }
  llvm::Expected<std::vector<SqlRow>>
  query(llvm::StringRef sql, const std::vector<SqlValue> &params) override;
  llvm::Error beginWrite() override { return exec("BEGIN"); }

private:
  PGconn *conn;
  std::string where;
};

/// Rewrites `?` placeholders to `$1..$n` (outside single-quoted literals).
std::string numberPlaceholders(llvm::StringRef sql) {
  std::string out;
  out.reserve(sql.size() + 16);
  bool inQuote = false;
  int n = 0;
  for (char c : sql) {
    if (c == '\'')
      inQuote = !inQuote;
    if (c == '?' && !inQuote) {
      out += "$" + std::to_string(++n);
      continue;
    }
    out += c;
  }
  return out;
}

} // namespace

llvm::Expected<std::vector<SqlRow>>
PostgresConnection::query(llvm::StringRef sql,
                          const std::vector<SqlValue> &params) {
  std::string text = numberPlaceholders(sql);
  std::vector<const char *> values;
  values.reserve(params.size());
  for (const SqlValue &p : params)
    values.push_back(p ? p->c_str() : nullptr);
  PGresult *res =
      PQexecParams(conn, text.c_str(), static_cast<int>(values.size()),
                   nullptr, values.data(), nullptr, nullptr, 0);
  ExecStatusType st = PQresultStatus(res);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    std::string msg = PQresultErrorMessage(res);
    if (msg.empty())
      msg = PQerrorMessage(conn);
    PQclear(res);
    return llvm::createStringError(
        llvm::inconvertibleErrorCode(),
        llvm::formatv("{0}: {1} [while running: {2}]", describe(),
                      llvm::StringRef(msg).trim(), sql.take_front(60))
            .str());
  }
  std::vector<SqlRow> rows;
  int nRows = PQntuples(res), nCols = PQnfields(res);
  rows.reserve(nRows);
  for (int r = 0; r < nRows; ++r) {
    SqlRow row;
    row.reserve(nCols);
    for (int c = 0; c < nCols; ++c) {
      if (PQgetisnull(res, r, c))
        row.push_back(std::nullopt);
      else
        row.push_back(std::string(PQgetvalue(res, r, c), PQgetlength(res, r, c)));
    }
    rows.push_back(std::move(row));
  }
  PQclear(res);
  return rows;
}

llvm::Expected<std::unique_ptr<SqlConnection>>
mixq::search::openPostgres(llvm::StringRef conninfo) {
  std::string info = conninfo.str();
  PGconn *conn = PQconnectdb(info.c_str());
  if (!conn)
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "libpq: out of memory");
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string msg = llvm::StringRef(PQerrorMessage(conn)).trim().str();
    PQfinish(conn);
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "cannot connect to PostgreSQL %s: %s",
                                   info.c_str(), msg.c_str());
  }
  // Keep server notices (e.g. "relation already exists, skipping") quiet.
  PQsetNoticeProcessor(
      conn, [](void *, const char *) {}, nullptr);
  std::string where = std::string(PQhost(conn) ? PQhost(conn) : "?") + ":" +
                      (PQport(conn) ? PQport(conn) : "?") + "/" +
                      (PQdb(conn) ? PQdb(conn) : "?");
  return std::unique_ptr<SqlConnection>(
      std::make_unique<PostgresConnection>(conn, where));
}
