//===- SqlConnection.cpp - engine-independent SQL helpers --------*- C++ -*-===//

#include "mixq/Search/SqlConnection.h"

#include <cstdio>

using namespace mixq::search;

SqlConnection::~SqlConnection() = default;

SqlValue mixq::search::sqlInt(int64_t v) { return std::to_string(v); }

SqlValue mixq::search::sqlReal(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.17g", v);
  return std::string(buf);
}

SqlValue mixq::search::sqlText(llvm::StringRef s) { return s.str(); }

llvm::Error SqlConnection::exec(llvm::StringRef sql,
                                const std::vector<SqlValue> &params) {
  auto rows = query(sql, params);
  if (!rows)
    return rows.takeError();
  return llvm::Error::success();
}

void SqlConnection::rollback() {
  if (auto err = exec("ROLLBACK"))
    llvm::consumeError(std::move(err));
}

llvm::Expected<std::unique_ptr<SqlConnection>>
mixq::search::openDatabase(llvm::StringRef url, int busyTimeoutMs) {
  if (url.starts_with("postgresql://") || url.starts_with("postgres://"))
    return openPostgres(url);
  llvm::StringRef path = url;
  if (path.consume_front("sqlite://")) {
    // sqlite:///abs/path -> /abs/path; sqlite://rel/path -> rel/path.
  } else if (url.contains("://")) {
    return llvm::createStringError(
        llvm::inconvertibleErrorCode(),
        "unsupported study URL '%s': expected sqlite:///path or "
        "postgresql://...",
        url.str().c_str());
  }
  bool readOnly = false;
  size_t q = path.find('?');
  if (q != llvm::StringRef::npos) {
    llvm::StringRef opts = path.substr(q + 1);
    path = path.take_front(q);
    if (opts == "mode=ro")
      readOnly = true;
    else if (opts != "mode=rw")
      return llvm::createStringError(
          llvm::inconvertibleErrorCode(),
          "unsupported option '%s' in study URL '%s' (mode=ro or mode=rw)",
          opts.str().c_str(), url.str().c_str());
  }
  return openSqlite(path, readOnly, busyTimeoutMs);
}
