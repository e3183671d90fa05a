//===- Random.h - seeded, serialisable random numbers ------------*- C++ -*-===//
//
// A small deterministic generator (xoshiro256**, seeded through splitmix64)
// whose whole state is four words, so fine-tune checkpoints can store and
// restore it exactly. Independent of the C++ library's distributions.
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_RUNTIME_RANDOM_H
#define MIXQ_RUNTIME_RANDOM_H

#include <array>
#include <cstdint>

namespace mixq {
namespace runtime {

class Rng {
public:
  explicit Rng(uint64_t seed = 0) { seedWith(seed); }
  void seedWith(uint64_t seed);
  uint64_t next();
  /// Uniform in [0, 1) with 24 bits of precision.
  float uniform();
  /// Uniform integer in [0, n).
  uint64_t below(uint64_t n);
  /// Standard normal (Box-Muller, no cached second value).
  float normal();

  std::array<uint64_t, 4> state() const { return s_; }
  void setState(const std::array<uint64_t, 4> &s) { s_ = s; }

private:
  std::array<uint64_t, 4> s_{};
};

} // namespace runtime
} // namespace mixq

#endif // MIXQ_RUNTIME_RANDOM_H
