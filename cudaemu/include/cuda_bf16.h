//===- cuda_bf16.h - __nv_bfloat16 of the CPU emulator ----------*- C++ -*-===//
//
// Conversions bit-exact with CUDA's: float -> bf16 rounds to nearest even,
// NaN becomes the canonical NaN 0x7fff (as CUDA's conversion does), bf16 ->
// float is exact.
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_CUDA_EMU_CUDA_BF16_H
#define MIXQ_CUDA_EMU_CUDA_BF16_H

#include "mixq_cuda_emu.h"

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
} // namespace mixq_emu

struct __nv_bfloat16 {
  unsigned short __x;
  __nv_bfloat16() = default;
  __nv_bfloat16(float f) : __x(::mixq_emu::floatToBf16Bits(f)) {}
  operator float() const { return ::mixq_emu::bf16BitsToFloat(__x); }
};
typedef __nv_bfloat16 nv_bfloat16;

inline __nv_bfloat16 __float2bfloat16_rn(float f) {
  __nv_bfloat16 r;
  r.__x = ::mixq_emu::floatToBf16Bits(f);
  return r;
}
inline __nv_bfloat16 __float2bfloat16(float f) {
  return __float2bfloat16_rn(f);
}
inline float __bfloat162float(__nv_bfloat16 b) {
  return ::mixq_emu::bf16BitsToFloat(b.__x);
}

#endif // MIXQ_CUDA_EMU_CUDA_BF16_H
