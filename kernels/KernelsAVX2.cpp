//===- KernelsAVX2.cpp - AVX2/FMA microkernel ----------------------*- C++ -*-===//
//
// The f32 microkernel for CPUs with AVX2 + FMA but no AVX-512 (target
// attributes, as in KernelsAVX512.cpp). Dequantization uses the scalar
// reference (dequantizeRow); there is no bf16 product on this path.
//
//===----------------------------------------------------------------------===//

#include "KernelsInternal.h"

#if defined(__x86_64__) && defined(__GNUC__)

#include <immintrin.h>

#define MIXQ_AVX2 __attribute__((target("avx2,fma")))

namespace mixq {
namespace kernels {
namespace detail {

namespace {

constexpr int kMr = 3, kNr = 4;

MIXQ_AVX2 inline float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <int MR, int NR>
MIXQ_AVX2 void microF32(const float *a, int64_t lda, const float *b,
                        int64_t ldb, int64_t kPad, float *c, int64_t ldc,
                        bool accumulate) {
  __m256 acc[MR][NR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j)
      acc[i][j] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kPad; k += 8) {
    __m256 av[MR];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
      av[i] = _mm256_loadu_ps(a + i * lda + k);
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) {
      __m256 bv = _mm256_loadu_ps(b + j * ldb + k);
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i)
        acc[i][j] = _mm256_fmadd_ps(av[i], bv, acc[i][j]);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) {
      float s = hsum256(acc[i][j]);
      c[i * ldc + j] = accumulate ? c[i * ldc + j] + s : s;
    }
}

using MicroFn = void (*)(const float *, int64_t, const float *, int64_t,
                         int64_t, float *, int64_t, bool);
#define MIXQ_ROW(I) {microF32<I, 1>, microF32<I, 2>, microF32<I, 3>, microF32<I, 4>}
const MicroFn kMicro[kMr][kNr] = {MIXQ_ROW(1), MIXQ_ROW(2), MIXQ_ROW(3)};
#undef MIXQ_ROW

void microDispatch(const float *a, int64_t lda, const float *b, int64_t ldb,
                   int64_t kPad, int mr, int nr, float *c, int64_t ldc,
                   bool accumulate) {
  kMicro[mr - 1][nr - 1](a, lda, b, ldb, kPad, c, ldc, accumulate);
}

} // namespace

const IsaKernels *avx2Kernels() {
  static const IsaKernels k = {KernelISA::AVX2, kMr,     kNr,
                               microDispatch,   nullptr, dequantizeRow,
                               nullptr};
  return &k;
}

} // namespace detail
} // namespace kernels
} // namespace mixq

#else

namespace mixq {
namespace kernels {
namespace detail {
const IsaKernels *avx2Kernels() { return nullptr; }
} // namespace detail
} // namespace kernels
} // namespace mixq

#endif
