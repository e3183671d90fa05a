//===- mixq_cuda_emu_convert.h - bf16/fp16 <-> f32 bit conversions -*- C++
//-*-===//
//
// The emulator's conversions, free of every other header of it so that a
// test compiled by nvcc can compare them with CUDA's own
// (test/CodeGen/emu-conversions.test: all 2^32 floats and 2^16 codes).
// float -> bf16/half: round to nearest even, NaN -> 0x7fff; half: subnormals
// and overflow to infinity. bf16/half -> float exact, half NaN ->
// 0x7fffffff (as CUDA's host conversion).
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_CUDA_EMU_CONVERT_H
#define MIXQ_CUDA_EMU_CONVERT_H

#include <cmath>
#include <cstdint>
#include <cstring>

namespace mixq_emu {
inline unsigned short floatToBf16Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u)
    return 0x7fff;
  // Round to nearest, ties to even: add 0x7fff plus the lowest kept bit.
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<unsigned short>(u >> 16);
}
inline float bf16BitsToFloat(unsigned short b) {
  uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

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
  // NaN becomes the canonical 0x7fffffff (as CUDA's host conversion).
  uint32_t u = exp == 31 ? (mant ? 0x7fffffffu : (sign | 0x7f800000u))
                         : (sign | ((exp + 112u) << 23) | (mant << 13));
  std::memcpy(&f, &u, 4);
  return f;
}
} // namespace mixq_emu

#endif // MIXQ_CUDA_EMU_CONVERT_H
