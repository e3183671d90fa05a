//===- Random.cpp - seeded, serialisable random numbers -----------*- C++ -*-===//

#include "mixq/Runtime/Random.h"

#include <cmath>

namespace mixq {
namespace runtime {

static uint64_t splitmix64(uint64_t &x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void Rng::seedWith(uint64_t seed) {
  for (uint64_t &w : s_)
    w = splitmix64(seed);
}

uint64_t Rng::next() {
  uint64_t result = rotl(s_[1] * 5, 7) * 9;
  uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

float Rng::uniform() { return float(next() >> 40) * (1.0f / 16777216.0f); }

uint64_t Rng::below(uint64_t n) {
  // Rejection sampling for an unbiased result.
  uint64_t limit = ~uint64_t(0) - (~uint64_t(0) % n);
  uint64_t r;
  do
    r = next();
  while (r >= limit);
  return r % n;
}

float Rng::normal() {
  double u1 = (double(next() >> 11) + 1.0) * (1.0 / 9007199254740992.0);
  double u2 = double(next() >> 11) * (1.0 / 9007199254740992.0);
  return float(std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2));
}

} // namespace runtime
} // namespace mixq
