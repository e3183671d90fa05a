//===- cuda_bf16.h - __nv_bfloat16 of the CPU emulator ----------*- C++ -*-===//
//
// Conversions bit-exact with CUDA's: float -> bf16 rounds to nearest even,
// NaN becomes the canonical NaN 0x7fff (as CUDA's conversion does), bf16 ->
// float is exact. Compared with CUDA 13's host conversions for all 2^32
// floats and 2^16 codes: identical.
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_CUDA_EMU_CUDA_BF16_H
#define MIXQ_CUDA_EMU_CUDA_BF16_H

#include "mixq_cuda_emu.h"
#include "mixq_cuda_emu_convert.h"

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
