//===- KernelsAVX512.cpp - AVX-512 microkernels and dequantizers -*- C++ -*-===//
//
// Compiled with the default flags of the project: every function that uses
// AVX-512 carries a target attribute, so nothing here (nor any inline
// template instantiated here) requires AVX-512 unless it is called, and it is
// only called after detectISA() says the CPU has it.
//
//===----------------------------------------------------------------------===//

#include "KernelsInternal.h"

#if defined(__x86_64__) && defined(__GNUC__)

#include <immintrin.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

// GCC 12 reports the _mm512_undefined_*() placeholders inside
// avx512fintrin.h (e.g. in _mm512_cvtepu8_epi32) as uninitialized: a known
// false positive of the intrinsic headers, not of this file.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#define MIXQ_AVX512                                                            \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))
#define MIXQ_AVX512BF16                                                        \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,avx512bf16")))

namespace mixq {
namespace kernels {
namespace detail {

namespace {

constexpr int kMr = 4, kNr = 6;

//===----------------------------------------------------------------------===//
// Microkernels
//===----------------------------------------------------------------------===//

/// Sums of the 16 lanes of each of v[0..N), N <= 8, into out.
template <int N>
MIXQ_AVX512 inline void reduceN(const __m512 *v, float *out) {
  for (int j = 0; j < N; ++j)
    out[j] = _mm512_reduce_add_ps(v[j]);
}

template <int MR, int NR>
MIXQ_AVX512 void microF32(const float *a, int64_t lda, const float *b,
                          int64_t ldb, int64_t kPad, float *c, int64_t ldc,
                          bool accumulate) {
  __m512 acc[MR][NR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j)
      acc[i][j] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kPad; k += 16) {
    __m512 bv[NR];
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j)
      bv[j] = _mm512_loadu_ps(b + j * ldb + k);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      __m512 av = _mm512_loadu_ps(a + i * lda + k);
#pragma GCC unroll 8
      for (int j = 0; j < NR; ++j)
        acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < MR; ++i) {
    float s[NR];
    reduceN<NR>(acc[i], s);
    for (int j = 0; j < NR; ++j)
      c[i * ldc + j] = accumulate ? c[i * ldc + j] + s[j] : s[j];
  }
}

template <int MR, int NR>
MIXQ_AVX512BF16 void microBF16(const uint16_t *a, int64_t lda,
                               const uint16_t *b, int64_t ldb, int64_t kPad,
                               float *c, int64_t ldc, bool accumulate) {
  __m512 acc[MR][NR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j)
      acc[i][j] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kPad; k += 32) {
    __m512bh bv[NR];
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j)
      bv[j] = (__m512bh)_mm512_loadu_si512(b + j * ldb + k);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      __m512bh av = (__m512bh)_mm512_loadu_si512(a + i * lda + k);
#pragma GCC unroll 8
      for (int j = 0; j < NR; ++j)
        acc[i][j] = _mm512_dpbf16_ps(acc[i][j], av, bv[j]);
    }
  }
  for (int i = 0; i < MR; ++i) {
    float s[NR];
    reduceN<NR>(acc[i], s);
    for (int j = 0; j < NR; ++j)
      c[i * ldc + j] = accumulate ? c[i * ldc + j] + s[j] : s[j];
  }
}

using MicroFn = void (*)(const float *, int64_t, const float *, int64_t,
                         int64_t, float *, int64_t, bool);
using MicroBFn = void (*)(const uint16_t *, int64_t, const uint16_t *, int64_t,
                          int64_t, float *, int64_t, bool);

#define MIXQ_ROW(T, I)                                                         \
  {T<I, 1>, T<I, 2>, T<I, 3>, T<I, 4>, T<I, 5>, T<I, 6>}
const MicroFn kMicroF32[kMr][kNr] = {MIXQ_ROW(microF32, 1),
                                     MIXQ_ROW(microF32, 2),
                                     MIXQ_ROW(microF32, 3),
                                     MIXQ_ROW(microF32, 4)};
const MicroBFn kMicroBF16[kMr][kNr] = {MIXQ_ROW(microBF16, 1),
                                       MIXQ_ROW(microBF16, 2),
                                       MIXQ_ROW(microBF16, 3),
                                       MIXQ_ROW(microBF16, 4)};
#undef MIXQ_ROW

void microF32Dispatch(const float *a, int64_t lda, const float *b, int64_t ldb,
                      int64_t kPad, int mr, int nr, float *c, int64_t ldc,
                      bool accumulate) {
  kMicroF32[mr - 1][nr - 1](a, lda, b, ldb, kPad, c, ldc, accumulate);
}

void microBF16Dispatch(const uint16_t *a, int64_t lda, const uint16_t *b,
                       int64_t ldb, int64_t kPad, int mr, int nr, float *c,
                       int64_t ldc, bool accumulate) {
  kMicroBF16[mr - 1][nr - 1](a, lda, b, ldb, kPad, c, ldc, accumulate);
}

//===----------------------------------------------------------------------===//
// Dequantizers (bit-identical to dequantizeRow)
//===----------------------------------------------------------------------===//

/// 32 4-bit codes (16 bytes, first element in the high nibble) as two
/// vectors of 16 int32 codes in element order.
MIXQ_AVX512 inline void unpackNibbles32(const uint8_t *src, __m512i &lo16,
                                        __m512i &hi16) {
  __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i *>(src));
  __m128i mask = _mm_set1_epi8(0x0F);
  __m128i hiN = _mm_and_si128(_mm_srli_epi16(v, 4), mask);
  __m128i loN = _mm_and_si128(v, mask);
  lo16 = _mm512_cvtepu8_epi32(_mm_unpacklo_epi8(hiN, loN));
  hi16 = _mm512_cvtepu8_epi32(_mm_unpackhi_epi8(hiN, loN));
}

/// 16 codes of an int2 row starting at element c (c % 16 == 0), as int32.
MIXQ_AVX512 inline __m512i unpackInt2x16(const uint8_t *row, int64_t c) {
  uint32_t word;
  std::memcpy(&word, row + c / 4, 4);
  // Element e sits in byte e/4 (little-endian in the word), MSB-first.
  const __m512i shift = _mm512_setr_epi32(6, 4, 2, 0, 14, 12, 10, 8, 22, 20,
                                          18, 16, 30, 28, 26, 24);
  return _mm512_and_si512(
      _mm512_srlv_epi32(_mm512_set1_epi32(static_cast<int>(word)), shift),
      _mm512_set1_epi32(3));
}

/// 16 codes of an int3 row starting at element c (c % 16 == 0), as int32;
/// rowEnd bounds the bytes that may be read.
MIXQ_AVX512 inline __m512i unpackInt3x16(const uint8_t *row, int64_t c,
                                         const uint8_t *rowEnd) {
  // 16 codes = 48 bits = 6 bytes; read them big-endian into the top of a
  // 64-bit word so element e is at bits 61 - 3e (the low 16 bits are never
  // used: every shift is >= 16).
  const uint8_t *src = row + c / 8 * 3;
  uint64_t be;
  if (rowEnd - src >= 8) {
    std::memcpy(&be, src, 8);
    be = __builtin_bswap64(be);
  } else {
    be = 0;
    for (int i = 0; i < 6; ++i)
      be |= static_cast<uint64_t>(src[i]) << (56 - 8 * i);
  }
  const __m512i v = _mm512_set1_epi64(static_cast<long long>(be));
  const __m512i s0 = _mm512_setr_epi64(61, 58, 55, 52, 49, 46, 43, 40);
  const __m512i s1 = _mm512_setr_epi64(37, 34, 31, 28, 25, 22, 19, 16);
  __m256i lo = _mm512_cvtepi64_epi32(_mm512_srlv_epi64(v, s0));
  __m256i hi = _mm512_cvtepi64_epi32(_mm512_srlv_epi64(v, s1));
  __m512i both = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
  return _mm512_and_si512(both, _mm512_set1_epi32(7));
}

/// int2/int3 tile chunk: out[i] = fma(alpha, q, beta), 16 values per step.
template <int Bits>
MIXQ_AVX512 void dequantIntLow(const uint8_t *row, const uint8_t *rowEnd,
                               int64_t c0, int64_t n, float alpha, float beta,
                               float *out) {
  __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  for (int64_t i = 0; i < n; i += 16) {
    __m512i q = Bits == 2 ? unpackInt2x16(row, c0 + i)
                          : unpackInt3x16(row, c0 + i, rowEnd);
    _mm512_storeu_ps(out + i, _mm512_fmadd_ps(va, _mm512_cvtepi32_ps(q), vb));
  }
}

/// nf4/fp4: out[i] = lut[code] * scale, 32 values per step.
MIXQ_AVX512 void dequantLut4(const uint8_t *row, int64_t c0, int64_t n,
                             const float *lut16, float scale, float *out) {
  __m512 lut = _mm512_loadu_ps(lut16);
  __m512 s = _mm512_set1_ps(scale);
  for (int64_t i = 0; i < n; i += 32) {
    __m512i q0, q1;
    unpackNibbles32(row + (c0 + i) / 2, q0, q1);
    _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_permutexvar_ps(q0, lut), s));
    _mm512_storeu_ps(out + i + 16,
                     _mm512_mul_ps(_mm512_permutexvar_ps(q1, lut), s));
  }
}

/// int4 tile: out[i] = fma(alpha, q, beta), 32 values per step.
MIXQ_AVX512 void dequantInt4(const uint8_t *row, int64_t c0, int64_t n,
                             float alpha, float beta, float *out) {
  __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  for (int64_t i = 0; i < n; i += 32) {
    __m512i q0, q1;
    unpackNibbles32(row + (c0 + i) / 2, q0, q1);
    _mm512_storeu_ps(out + i,
                     _mm512_fmadd_ps(va, _mm512_cvtepi32_ps(q0), vb));
    _mm512_storeu_ps(out + i + 16,
                     _mm512_fmadd_ps(va, _mm512_cvtepi32_ps(q1), vb));
  }
}

/// int8: out[i] = q * step, 16 values per step.
MIXQ_AVX512 void dequantInt8(const uint8_t *row, int64_t c0, int64_t n,
                             float step, float *out) {
  __m512 s = _mm512_set1_ps(step);
  for (int64_t i = 0; i < n; i += 16) {
    __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i *>(row + c0 + i));
    __m512 f = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(v));
    _mm512_storeu_ps(out + i, _mm512_mul_ps(f, s));
  }
}

MIXQ_AVX512 void dequantBF16(const uint8_t *row, int64_t c0, int64_t n,
                             float *out) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256i v =
        _mm256_loadu_si256(reinterpret_cast<const __m256i *>(row + 2 * (c0 + i)));
    __m512i w = _mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16);
    _mm512_storeu_ps(out + i, _mm512_castsi512_ps(w));
  }
  for (; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, row + 2 * (c0 + i), 2);
    out[i] = bf16ToFloat(h);
  }
}

/// Decodes nb double-quantized absmax values starting at flat block idx0.
MIXQ_AVX512 void decodeDoubleQuant(const QuantizedTensor &q, const float *map,
                                   int64_t idx0, int64_t nb, float *out) {
  const uint8_t *codes = q.scaleCodes.data();
  const float *absmax = q.scaleAbsmax.data();
  const __m512 off = _mm512_set1_ps(q.scaleOffset);
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
                                         12, 13, 14, 15);
  int64_t i = 0;
  for (; i + 16 <= nb; i += 16) {
    __m128i cv =
        _mm_loadu_si128(reinterpret_cast<const __m128i *>(codes + idx0 + i));
    __m512 v = _mm512_i32gather_ps(_mm512_cvtepu8_epi32(cv), map, 4);
    __m512i blk = _mm512_srli_epi32(
        _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(idx0 + i)), lane),
        8);
    __m512 s = _mm512_i32gather_ps(blk, absmax, 4);
    _mm512_storeu_ps(out + i, _mm512_fmadd_ps(v, s, off));
  }
  for (; i < nb; ++i)
    out[i] = __builtin_fmaf(map[codes[idx0 + i]],
                            absmax[(idx0 + i) / kDoubleQuantBlock],
                            q.scaleOffset);
}

/// Calls fn(chunkBegin, chunkLen, group) over [c0, c1) split at multiples of
/// `group`; returns false (doing nothing) unless c0 is group-aligned and every
/// chunk is a multiple of `step`.
template <typename Fn>
bool forGroups(int64_t c0, int64_t c1, int64_t group, int64_t step, Fn fn) {
  if (group % step || c0 % group || (c1 - c0) % step)
    return false;
  for (int64_t c = c0; c < c1; c += group)
    fn(c, c + group < c1 ? group : c1 - c, c / group);
  return true;
}

void dequantRowAVX512(const QuantizedTensor &q, int64_t r, int64_t c0,
                      int64_t c1, float *out) {
  const uint8_t *row = q.codes.data() + r * q.rowBytes;
  bool done = false;
  switch (q.spec.format) {
  case QuantFormat::F32:
    std::memcpy(out, row + 4 * c0, 4 * (c1 - c0));
    return;
  case QuantFormat::BF16:
    dequantBF16(row, c0, c1 - c0, out);
    return;
  case QuantFormat::NF4:
  case QuantFormat::FP4: {
    const float *lut = q.spec.format == QuantFormat::NF4
                           ? kNF4Codebook.data()
                           : kFP4Codebook.data();
    // Block scales of the range, decoded 64 at a time (SIMD for double
    // quantization).
    const int64_t bpr = q.blocksPerRow();
    float scales[64];
    int64_t first = -1;
    done = forGroups(c0, c1, q.spec.block, 32, [&](int64_t c, int64_t n, int64_t b) {
      if (first < 0 || b - first >= 64) {
        first = b;
        int64_t nb = std::min<int64_t>(64, bpr - b);
        if (q.spec.doubleQuant)
          decodeDoubleQuant(q, dynamicMap8().data(), r * bpr + b, nb, scales);
        else
          std::memcpy(scales, q.scales.data() + r * bpr + b, 4 * nb);
      }
      dequantLut4(row, c, n, lut, scales[b - first], out + (c - c0));
    });
    break;
  }
  case QuantFormat::Int8:
    done = forGroups(c0, c1, q.spec.block, 16, [&](int64_t c, int64_t n, int64_t b) {
      dequantInt8(row, c, n, q.blockScale(r, b) / 127.0f, out + (c - c0));
    });
    break;
  case QuantFormat::Int4: {
    const int64_t base = (r / q.spec.tileRows) * q.tileColCount();
    done = forGroups(c0, c1, q.spec.tileCols, 32,
                     [&](int64_t c, int64_t n, int64_t t) {
                       dequantInt4(row, c, n, q.scales[base + t],
                                   q.zeros[base + t], out + (c - c0));
                     });
    break;
  }
  case QuantFormat::Int3:
  case QuantFormat::Int2: {
    const int64_t base = (r / q.spec.tileRows) * q.tileColCount();
    const bool two = q.spec.format == QuantFormat::Int2;
    done = forGroups(c0, c1, q.spec.tileCols, 16,
                     [&](int64_t c, int64_t n, int64_t t) {
                       const uint8_t *end = row + q.rowBytes;
                       if (two)
                         dequantIntLow<2>(row, end, c, n, q.scales[base + t],
                                          q.zeros[base + t], out + (c - c0));
                       else
                         dequantIntLow<3>(row, end, c, n, q.scales[base + t],
                                          q.zeros[base + t], out + (c - c0));
                     });
    break;
  }
  default:
    break;
  }
  if (!done)
    dequantizeRow(q, r, c0, c1, out);
}

//===----------------------------------------------------------------------===//
// Small-m path: dequantize in registers, stream W once
//===----------------------------------------------------------------------===//

enum class SmallKind { Lut4, Int4, Int8, Int3, Int2 };

/// 32 weights of a row at column c as two vectors (dequantized, bit-identical
/// to dequantizeRow).
template <SmallKind K>
MIXQ_AVX512 inline void decode32(const uint8_t *row, const uint8_t *rowEnd,
                                 int64_t c, __m512 lut,
                                 __m512 sc, __m512 zr, __m512 &v0,
                                 __m512 &v1) {
  if (K == SmallKind::Int8) {
    __m128i b0 = _mm_loadu_si128(reinterpret_cast<const __m128i *>(row + c));
    __m128i b1 =
        _mm_loadu_si128(reinterpret_cast<const __m128i *>(row + c + 16));
    v0 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b0)), sc);
    v1 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b1)), sc);
    return;
  }
  if (K == SmallKind::Int3 || K == SmallKind::Int2) {
    __m512i q0 = K == SmallKind::Int2 ? unpackInt2x16(row, c)
                                      : unpackInt3x16(row, c, rowEnd);
    __m512i q1 = K == SmallKind::Int2 ? unpackInt2x16(row, c + 16)
                                      : unpackInt3x16(row, c + 16, rowEnd);
    v0 = _mm512_fmadd_ps(sc, _mm512_cvtepi32_ps(q0), zr);
    v1 = _mm512_fmadd_ps(sc, _mm512_cvtepi32_ps(q1), zr);
    return;
  }
  __m512i q0, q1;
  unpackNibbles32(row + c / 2, q0, q1);
  if (K == SmallKind::Lut4) {
    v0 = _mm512_mul_ps(_mm512_permutexvar_ps(q0, lut), sc);
    v1 = _mm512_mul_ps(_mm512_permutexvar_ps(q1, lut), sc);
  } else {
    v0 = _mm512_fmadd_ps(sc, _mm512_cvtepi32_ps(q0), zr);
    v1 = _mm512_fmadd_ps(sc, _mm512_cvtepi32_ps(q1), zr);
  }
}

/// R consecutive rows of W against M rows of A. sc[r] / zr[r]: per-group
/// scale and offset of row r (group = block or tile width, a multiple of 32).
template <SmallKind K, int M, int R>
MIXQ_AVX512 void smallRows(const float *a, int64_t lda, const uint8_t *const *rows,
                           const float *const *sc, const float *const *zr,
                           int64_t cols, int64_t group, const float *lut16,
                           float *c, int64_t ldc, bool accumulate) {
  __m512 acc[M][R][2];
#pragma GCC unroll 4
  for (int i = 0; i < M; ++i)
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r)
      acc[i][r][0] = acc[i][r][1] = _mm512_setzero_ps();
  const __m512 lut = _mm512_loadu_ps(lut16);
  const __m512 zero = _mm512_setzero_ps();
  const int bits = K == SmallKind::Int8   ? 8
                   : K == SmallKind::Int3 ? 3
                   : K == SmallKind::Int2 ? 2
                                          : 4;
  const int64_t rowBytes = (cols * bits + 7) / 8;
  for (int64_t g0 = 0, g = 0; g0 < cols; g0 += group, ++g) {
    __m512 s[R], z[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      s[r] = _mm512_set1_ps(sc[r][g]);
      z[r] = (K == SmallKind::Int4 || K == SmallKind::Int3 ||
              K == SmallKind::Int2)
                 ? _mm512_set1_ps(zr[r][g])
                 : zero;
    }
    for (int64_t k = g0; k < g0 + group; k += 32) {
      __m512 x[M][2];
#pragma GCC unroll 4
      for (int i = 0; i < M; ++i) {
        x[i][0] = _mm512_loadu_ps(a + i * lda + k);
        x[i][1] = _mm512_loadu_ps(a + i * lda + k + 16);
      }
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        __m512 v0, v1;
        decode32<K>(rows[r], rows[r] + rowBytes, k, lut, s[r], z[r], v0, v1);
#pragma GCC unroll 4
        for (int i = 0; i < M; ++i) {
          acc[i][r][0] = _mm512_fmadd_ps(x[i][0], v0, acc[i][r][0]);
          acc[i][r][1] = _mm512_fmadd_ps(x[i][1], v1, acc[i][r][1]);
        }
      }
    }
  }
  for (int i = 0; i < M; ++i)
    for (int r = 0; r < R; ++r) {
      float v = _mm512_reduce_add_ps(_mm512_add_ps(acc[i][r][0], acc[i][r][1]));
      c[i * ldc + r] = accumulate ? c[i * ldc + r] + v : v;
    }
}

using SmallRowsFn = void (*)(const float *, int64_t, const uint8_t *const *,
                             const float *const *, const float *const *,
                             int64_t, int64_t, const float *, float *, int64_t,
                             bool);

template <SmallKind K> struct SmallTable {
  // [m - 1][0]: 4 (m <= 2) or 2 (m > 2) rows at a time; [m - 1][1]: one row.
  static constexpr SmallRowsFn fns[4][2] = {
      {smallRows<K, 1, 4>, smallRows<K, 1, 1>},
      {smallRows<K, 2, 4>, smallRows<K, 2, 1>},
      {smallRows<K, 3, 2>, smallRows<K, 3, 1>},
      {smallRows<K, 4, 2>, smallRows<K, 4, 1>}};
};

constexpr int64_t kSmallMaxM = 4;

bool isIntTile(QuantFormat f) {
  return f == QuantFormat::Int4 || f == QuantFormat::Int3 ||
         f == QuantFormat::Int2;
}

bool smallMSupportedAVX512(const QuantizedTensor &q, int64_t m) {
  if (m < 1 || m > kSmallMaxM || q.cols % 32)
    return false;
  switch (q.spec.format) {
  case QuantFormat::NF4:
  case QuantFormat::FP4:
  case QuantFormat::Int8:
    return q.spec.block % 32 == 0 && q.cols % q.spec.block == 0;
  case QuantFormat::Int4:
  case QuantFormat::Int3:
  case QuantFormat::Int2:
    return q.spec.tileCols % 32 == 0 && q.cols % q.spec.tileCols == 0;
  default:
    return false;
  }
}

void smallMAVX512(const float *a, int64_t lda, int64_t m,
                  const QuantizedTensor &q, int64_t n0, int64_t n1, float *c,
                  int64_t ldc, bool accumulate) {
  const QuantFormat f = q.spec.format;
  SmallKind kind = SmallKind::Lut4;
  const SmallRowsFn(*table)[2] = SmallTable<SmallKind::Lut4>::fns;
  if (f == QuantFormat::Int8) {
    kind = SmallKind::Int8;
    table = SmallTable<SmallKind::Int8>::fns;
  } else if (f == QuantFormat::Int4) {
    kind = SmallKind::Int4;
    table = SmallTable<SmallKind::Int4>::fns;
  } else if (f == QuantFormat::Int3) {
    kind = SmallKind::Int3;
    table = SmallTable<SmallKind::Int3>::fns;
  } else if (f == QuantFormat::Int2) {
    kind = SmallKind::Int2;
    table = SmallTable<SmallKind::Int2>::fns;
  }
  const int rowsAtOnce = m <= 2 ? 4 : 2;
  const bool tile = isIntTile(f);
  const int64_t group = tile ? q.spec.tileCols : q.spec.block;
  const int64_t groups = q.cols / group;
  const bool decode = !tile && (q.spec.doubleQuant || kind == SmallKind::Int8);
  const float *lut =
      f == QuantFormat::FP4 ? kFP4Codebook.data() : kNF4Codebook.data();
  const float *map = dynamicMap8().data();
  thread_local std::vector<float> buf;
  if (decode)
    buf.resize(4 * groups);
  for (int64_t r0 = n0; r0 < n1;) {
    const int nr = n1 - r0 >= rowsAtOnce ? rowsAtOnce : 1;
    const uint8_t *rows[4];
    const float *sc[4], *zr[4] = {nullptr, nullptr, nullptr, nullptr};
    for (int r = 0; r < nr; ++r) {
      const int64_t row = r0 + r;
      rows[r] = q.codes.data() + row * q.rowBytes;
      if (tile) {
        int64_t base = (row / q.spec.tileRows) * q.tileColCount();
        sc[r] = q.scales.data() + base;
        zr[r] = q.zeros.data() + base;
      } else if (!decode) {
        sc[r] = q.scales.data() + row * groups;
      } else {
        float *out = buf.data() + r * groups;
        if (q.spec.doubleQuant)
          decodeDoubleQuant(q, map, row * groups, groups, out);
        else
          for (int64_t g = 0; g < groups; ++g)
            out[g] = q.scales[row * groups + g];
        if (kind == SmallKind::Int8)
          for (int64_t g = 0; g < groups; ++g)
            out[g] /= 127.0f;
        sc[r] = out;
      }
    }
    table[m - 1][nr == 1](a, lda, rows, sc, zr, q.cols, group, lut, c + r0,
                          ldc, accumulate);
    r0 += nr;
  }
}

MIXQ_AVX512BF16 void toBF16AVX512(const float *in, uint16_t *out, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256bh h = _mm512_cvtneps_pbh(_mm512_loadu_ps(in + i));
    _mm256_storeu_si256(reinterpret_cast<__m256i *>(out + i), (__m256i)h);
  }
  for (; i < n; ++i)
    out[i] = floatToBF16(in[i]);
}

//===----------------------------------------------------------------------===//
// Outer-product f32 GEMM (broadcast A, vectors of B along n)
//===----------------------------------------------------------------------===//
//
// The dot-product microkernel above ends every tile with MR x NR horizontal
// reductions, which dominate when k is small (a 64-wide model, rank-8
// adapters). This form keeps MR x 3 vectors of C in registers, streams a
// packed panel Bp [kc][48] of B (n contiguous) and broadcasts A, so it needs
// no reduction, no packing of A (any strides) and no padding of k. Each C
// element is summed in k order by one thread: results do not depend on the
// thread count.

constexpr int64_t kOuterNc = 48; ///< panel width (3 vectors)
constexpr int64_t kOuterKc = 128; ///< k block: panel of 24 KiB (L1)
constexpr int kOuterMr = 8;

template <int MR, int NV, bool Contig>
MIXQ_AVX512 void outerMicro(const float *a, int64_t rs, int64_t cs,
                            const float *bp, int64_t kc, float *c,
                            int64_t ldc, __mmask16 last, bool accumulate) {
  __m512 acc[MR][NV];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 3
    for (int v = 0; v < NV; ++v)
      acc[i][v] = _mm512_setzero_ps();
  const float *ai[MR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
    ai[i] = a + i * rs;
  for (int64_t kk = 0; kk < kc; ++kk) {
    __m512 bv[NV];
#pragma GCC unroll 3
    for (int v = 0; v < NV; ++v)
      bv[v] = _mm512_load_ps(bp + kk * kOuterNc + 16 * v);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      __m512 av = _mm512_set1_ps(Contig ? ai[i][kk] : ai[i][kk * cs]);
#pragma GCC unroll 3
      for (int v = 0; v < NV; ++v)
        acc[i][v] = _mm512_fmadd_ps(av, bv[v], acc[i][v]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 3
    for (int v = 0; v < NV; ++v) {
      const __mmask16 mk = v == NV - 1 ? last : __mmask16(0xFFFF);
      float *dst = c + i * ldc + 16 * v;
      __m512 r = acc[i][v];
      if (accumulate)
        r = _mm512_add_ps(_mm512_maskz_loadu_ps(mk, dst), r);
      _mm512_mask_storeu_ps(dst, mk, r);
    }
}

using OuterFn = void (*)(const float *, int64_t, int64_t, const float *,
                         int64_t, float *, int64_t, __mmask16, bool);

#define MIXQ_OUTER(I, C) {outerMicro<I, 1, C>, outerMicro<I, 2, C>,             \
                          outerMicro<I, 3, C>}
const OuterFn kOuter[2][kOuterMr][3] = {
    {MIXQ_OUTER(1, false), MIXQ_OUTER(2, false), MIXQ_OUTER(3, false),
     MIXQ_OUTER(4, false), MIXQ_OUTER(5, false), MIXQ_OUTER(6, false),
     MIXQ_OUTER(7, false), MIXQ_OUTER(8, false)},
    {MIXQ_OUTER(1, true), MIXQ_OUTER(2, true), MIXQ_OUTER(3, true),
     MIXQ_OUTER(4, true), MIXQ_OUTER(5, true), MIXQ_OUTER(6, true),
     MIXQ_OUTER(7, true), MIXQ_OUTER(8, true)}};
#undef MIXQ_OUTER

/// Packs B rows [n0, n0+nc) x cols [k0, k0+kc) as bp[kk][j] (row stride
/// kOuterNc), zero from nc up to the next multiple of 16.
void packOuterB(const BSource &b, int64_t n0, int64_t nc, int64_t k0,
                int64_t kc, float *bp, std::vector<float> &row) {
  const int64_t ncPad = (nc + 15) / 16 * 16;
  if (nc < ncPad)
    for (int64_t kk = 0; kk < kc; ++kk)
      std::fill(bp + kk * kOuterNc + nc, bp + kk * kOuterNc + ncPad, 0.0f);
  if (b.kind == BSource::QuantT) {
    // B(n, k) = W(k, n): W row k0+kk, columns n0.., is a panel row.
    for (int64_t kk = 0; kk < kc; ++kk)
      dequantRowAVX512(*b.q, k0 + kk, n0, n0 + nc, bp + kk * kOuterNc);
    return;
  }
  const float *src;
  int64_t rs, cs;
  if (b.kind == BSource::Quant) {
    row.resize(size_t(nc * kc));
    for (int64_t j = 0; j < nc; ++j)
      dequantRowAVX512(*b.q, n0 + j, k0, k0 + kc, row.data() + j * kc);
    src = row.data();
    rs = kc;
    cs = 1;
  } else {
    src = b.dense.data + n0 * b.dense.rs + k0 * b.dense.cs;
    rs = b.dense.rs;
    cs = b.dense.cs;
  }
  if (rs == 1) {
    for (int64_t kk = 0; kk < kc; ++kk)
      std::memcpy(bp + kk * kOuterNc, src + kk * cs, 4 * nc);
    return;
  }
  for (int64_t j = 0; j < nc; ++j)
    for (int64_t kk = 0; kk < kc; ++kk)
      bp[kk * kOuterNc + j] = src[j * rs + kk * cs];
}

void outerSliceAVX512(const MatView &a, const BSource &b, int64_t mBegin,
                      int64_t mEnd, int64_t nBegin, int64_t nEnd, int64_t k,
                      float *c, int64_t ldc, bool accumulate) {
  struct Ws {
    float *bp = nullptr;
    std::vector<float> row;
    Ws() {
      bp = static_cast<float *>(
          std::aligned_alloc(64, sizeof(float) * kOuterNc * kOuterKc));
    }
    ~Ws() { std::free(bp); }
  };
  thread_local Ws ws;
  const bool contig = a.cs == 1;
  for (int64_t n0 = nBegin; n0 < nEnd; n0 += kOuterNc) {
    const int64_t nc = std::min(kOuterNc, nEnd - n0);
    const int nv = static_cast<int>((nc + 15) / 16);
    const __mmask16 last =
        static_cast<__mmask16>((1u << (nc - 16 * (nv - 1))) - 1u);
    for (int64_t k0 = 0; k0 < k; k0 += kOuterKc) {
      const int64_t kc = std::min(kOuterKc, k - k0);
      const bool acc = accumulate || k0 > 0;
      packOuterB(b, n0, nc, k0, kc, ws.bp, ws.row);
      for (int64_t i = mBegin; i < mEnd; i += kOuterMr) {
        const int mr = static_cast<int>(std::min<int64_t>(kOuterMr, mEnd - i));
        kOuter[contig][mr - 1][nv - 1](a.data + i * a.rs + k0 * a.cs, a.rs,
                                       a.cs, ws.bp, kc, c + i * ldc + n0, ldc,
                                       last, acc);
      }
    }
  }
}

} // namespace

const IsaKernels *avx512Kernels() {
  static const IsaKernels k = {
      KernelISA::AVX512,
      kMr,
      kNr,
      microF32Dispatch,
      cpuHasAVX512BF16() ? microBF16Dispatch : nullptr,
      dequantRowAVX512,
      cpuHasAVX512BF16() ? toBF16AVX512 : nullptr,
      smallMAVX512,
      smallMSupportedAVX512,
      outerSliceAVX512};
  return &k;
}

} // namespace detail
} // namespace kernels
} // namespace mixq

#else

namespace mixq {
namespace kernels {
namespace detail {
const IsaKernels *avx512Kernels() { return nullptr; }
} // namespace detail
} // namespace kernels
} // namespace mixq

#endif
