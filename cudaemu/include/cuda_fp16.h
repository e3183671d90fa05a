//===- cuda_fp16.h - __half of the CPU emulator -----------------*- C++ -*-===//
//
// float -> half rounds to nearest even (subnormals, overflow to infinity;
// NaN becomes 0x7fff as in CUDA's conversion); half -> float is exact.
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_CUDA_EMU_CUDA_FP16_H
#define MIXQ_CUDA_EMU_CUDA_FP16_H

#include "mixq_cuda_emu.h"

namespace mixq_emu {
inline unsigned short floatToHalfBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u)
    return 0x7fff;
  if (a >= 0x477ff000u) // rounds to 65536 or more (or is infinite)
    return static_cast<unsigned short>(sign | 0x7c00u);
  if (a < 0x38800000u) {
    // Subnormal half (or zero): the value in units of 2^-24, rounded to
    // nearest even. Below 2^-25 everything rounds to zero.
    if (a < 0x33000000u)
      return static_cast<unsigned short>(sign);
    const uint32_t exp = a >> 23;
    const uint32_t mant = (a & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126u - exp; // 14 + (127 - 1 - exp) + ... in [14, 24]
    // value = mant * 2^(exp - 150); in units of 2^-24: mant >> (126 - exp).
    const uint32_t q = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1u);
    const uint32_t half = 1u << (shift - 1);
    uint32_t r = q + (rem > half || (rem == half && (q & 1u)));
    return static_cast<unsigned short>(sign | r);
  }
  // Normal: rebias the exponent (127 -> 15) and round 13 mantissa bits away.
  uint32_t r = a - 0x38000000u;
  r += 0xfffu + ((r >> 13) & 1u);
  return static_cast<unsigned short>(sign | (r >> 13));
}
inline float halfBitsToFloat(unsigned short h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  float f;
  if (exp == 0) {
    f = std::ldexp(static_cast<float>(mant), -24);
    uint32_t u;
    std::memcpy(&u, &f, 4);
    u |= sign;
    std::memcpy(&f, &u, 4);
    return f;
  }
  uint32_t u = exp == 31 ? (sign | 0x7f800000u | (mant << 13))
                         : (sign | ((exp + 112u) << 23) | (mant << 13));
  std::memcpy(&f, &u, 4);
  return f;
}
} // namespace mixq_emu

struct __half {
  unsigned short __x;
  __half() = default;
  __half(float f) : __x(::mixq_emu::floatToHalfBits(f)) {}
  operator float() const { return ::mixq_emu::halfBitsToFloat(__x); }
};
typedef __half half;

inline __half __float2half_rn(float f) {
  __half r;
  r.__x = ::mixq_emu::floatToHalfBits(f);
  return r;
}
inline __half __float2half(float f) { return __float2half_rn(f); }
inline float __half2float(__half h) {
  return ::mixq_emu::halfBitsToFloat(h.__x);
}

#endif // MIXQ_CUDA_EMU_CUDA_FP16_H
