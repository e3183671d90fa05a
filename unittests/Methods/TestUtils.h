//===- TestUtils.h - helpers of the MixQMethods unit tests --------*- C++ -*-===//

#ifndef MIXQ_UNITTESTS_METHODS_TESTUTILS_H
#define MIXQ_UNITTESTS_METHODS_TESTUTILS_H

#include "llvm/Support/Error.h"

#include "gtest/gtest.h"

#include <cstdint>
#include <random>
#include <vector>

namespace mixq {
namespace test {

/// n values ~ N(0, stddev), seeded.
inline std::vector<float> randomMatrix(int64_t n, uint32_t seed,
                                       float stddev = 0.05f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, stddev);
  std::vector<float> v(n);
  for (float &x : v)
    x = dist(rng);
  return v;
}

/// Unwraps an Expected, failing the test with the error's message.
template <typename T> T unwrap(llvm::Expected<T> v) {
  if (!v) {
    ADD_FAILURE() << llvm::toString(v.takeError());
    return T();
  }
  return std::move(*v);
}

inline float maxAbsDiff(const std::vector<float> &a,
                        const std::vector<float> &b) {
  EXPECT_EQ(a.size(), b.size());
  float m = 0.0f;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i)
    m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

} // namespace test
} // namespace mixq

#endif // MIXQ_UNITTESTS_METHODS_TESTUTILS_H
