//===- PostgresServer.cpp - a throw-away PostgreSQL server for tests -*- C++ -*-===//

#include "PostgresServer.h"

#include "mixq/Search/SqlConnection.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Program.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <cstdlib>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace mixq::search;

namespace {

const char *kBin = "/usr/lib/postgresql/15/bin";

int freePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = -1;
  if (bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &len) == 0)
    port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

/// Runs a shell command, returning its exit status.
int sh(const std::string &cmd) { return std::system(cmd.c_str()); }

class Server {
public:
  Server() { start(); }
  ~Server() {
    if (!url.empty())
      sh(asUser + kBin + "/pg_ctl -D " + dir + "/data -m immediate stop "
                          ">/dev/null 2>&1");
    if (!dir.empty())
      sh("rm -rf " + dir);
  }
  std::string url, why;

private:
  void start() {
    if (!llvm::sys::fs::exists(std::string(kBin) + "/initdb")) {
      why = std::string("PostgreSQL 15 is not installed (no ") + kBin +
            "/initdb; apt-get install postgresql)";
      return;
    }
    char tmpl[] = "/tmp/mixq-pg-XXXXXX";
    if (!mkdtemp(tmpl)) {
      why = "cannot create a temporary directory";
      return;
    }
    dir = tmpl;
    if (geteuid() == 0) {
      // initdb refuses to run as root: use the postgres account.
      if (!getpwnam("postgres")) {
        why = "running as root and there is no 'postgres' user for initdb";
        return;
      }
      sh("chown postgres " + dir);
      asUser = "runuser -u postgres -- ";
    }
    std::string log = dir + "/initdb.log";
    if (sh(asUser + kBin + "/initdb -D " + dir + "/data -A trust -U mixq " +
           "--no-sync >" + log + " 2>&1") != 0) {
      why = "initdb failed (see " + log + ")";
      return;
    }
    for (int attempt = 0; attempt < 3 && url.empty(); ++attempt) {
      int port = freePort();
      std::string opts = "-p " + std::to_string(port) + " -k " + dir +
                         " -c listen_addresses=127.0.0.1 -c fsync=off "
                         "-c max_connections=50";
      if (sh(asUser + kBin + "/pg_ctl -D " + dir + "/data -o \"" + opts +
             "\" -l " + dir + "/server.log -w start >/dev/null 2>&1") == 0)
        url = "postgresql://mixq@127.0.0.1:" + std::to_string(port);
    }
    if (url.empty())
      why = "pg_ctl could not start the server (see " + dir + "/server.log)";
  }
  std::string dir, asUser;
};

Server &server() {
  static Server s;
  return s;
}

} // namespace

std::optional<std::string>
mixq::search::testing::freshPostgresDatabase(std::string &why) {
  Server &s = server();
  if (s.url.empty()) {
    why = s.why;
    return std::nullopt;
  }
  static int counter = 0;
  std::string name = "t" + std::to_string(getpid()) + "_" +
                     std::to_string(counter++);
  auto admin = openPostgres(s.url + "/postgres");
  if (!admin) {
    why = llvm::toString(admin.takeError());
    return std::nullopt;
  }
  if (auto err = (*admin)->exec("CREATE DATABASE " + name)) {
    why = llvm::toString(std::move(err));
    return std::nullopt;
  }
  return s.url + "/" + name;
}
