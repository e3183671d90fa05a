//===- cuda_fp16.h - __half of the CPU emulator -----------------*- C++ -*-===//
//
// float -> half rounds to nearest even (subnormals, overflow to infinity;
// NaN becomes 0x7fff as in CUDA's conversion); half -> float is exact (NaN
// becomes 0x7fffffff, as CUDA's host conversion). Compared with CUDA 13's
// host conversions for all 2^32 floats and 2^16 halves: identical.
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_CUDA_EMU_CUDA_FP16_H
#define MIXQ_CUDA_EMU_CUDA_FP16_H

#include "mixq_cuda_emu.h"
#include "mixq_cuda_emu_convert.h"

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
