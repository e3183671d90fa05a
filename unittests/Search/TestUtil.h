//===- TestUtil.h - helpers for the search unit tests ------------*- C++ -*-===//

#ifndef MIXQ_UNITTESTS_SEARCH_TESTUTIL_H
#define MIXQ_UNITTESTS_SEARCH_TESTUTIL_H

#include <cstdlib>
#include <string>
#include <unistd.h>

namespace mixq::search::testing {

/// A temporary directory removed with its contents at scope exit.
class TempDir {
public:
  TempDir() {
    char tmpl[] = "/tmp/mixq-search-test-XXXXXX";
    dir = mkdtemp(tmpl) ? tmpl : "/tmp";
  }
  ~TempDir() {
    if (dir != "/tmp")
      std::system(("rm -rf '" + dir + "'").c_str());
  }
  std::string path(const std::string &name) const { return dir + "/" + name; }
  const std::string &str() const { return dir; }

private:
  std::string dir;
};

/// The synthetic objective script of the lit tests.
inline std::string objectiveScript() {
  return std::string(MIXQ_SOURCE_DIR) +
         "/test/Tools/Inputs/search-objective.py";
}

inline std::string mixqSearchBinary() {
  return std::string(MIXQ_BINARY_DIR) + "/bin/mixq-search";
}

} // namespace mixq::search::testing

#endif
