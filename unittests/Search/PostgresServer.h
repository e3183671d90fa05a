//===- PostgresServer.h - a throw-away PostgreSQL server for tests -*- C++ -*-===//
//
// Starts Debian's PostgreSQL 15 (initdb + pg_ctl) in a temporary directory on
// a free loopback port, once per test binary, as the `postgres` user when
// running as root (initdb refuses root). Tests that need it call
// postgresURL() and skip with its reason when it could not start.
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_UNITTESTS_SEARCH_POSTGRESSERVER_H
#define MIXQ_UNITTESTS_SEARCH_POSTGRESSERVER_H

#include <optional>
#include <string>

namespace mixq::search::testing {

/// A URL of a fresh, empty database on the shared test server, or nullopt
/// with `why` set when no server could be started.
std::optional<std::string> freshPostgresDatabase(std::string &why);

} // namespace mixq::search::testing

#endif
