//===- mma.h - nvcuda::wmma of the CPU emulator -----------------*- C++ -*-===//
//
// 16x16x16 fragments. Every lane holds the whole tile (x[] has 256 elements:
// element-wise code over x[0..num_elements) does the same on every lane, as
// on a GPU). Loads and stores are done by each lane; mma_sync computes D =
// A * B + C in f32 (products of bf16/fp16 operands are exact in f32, summed
// in k order) once per warp: the first lane of a warp to reach its n-th
// mma_sync since the last barrier computes it, the others copy it
// (mixq_emu::detail::wmmaSlot; MIXQ_EMU_WMMA=private|verify changes that).
// Tensor cores sum in an unspecified order, so results on a GPU may differ in
// the last bits.
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_CUDA_EMU_MMA_H
#define MIXQ_CUDA_EMU_MMA_H

#include "cuda_bf16.h"
#include "cuda_fp16.h"
#include "mixq_cuda_emu.h"

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <typename Use, int M, int N, int K, typename T, typename Layout = void>
struct fragment {
  static_assert(M == 16 && N == 16 && K == 16,
                "the emulator supports the 16x16x16 WMMA shape only");
  static_assert(std::is_same<Use, accumulator>::value
                    ? std::is_same<T, float>::value
                    : (std::is_same<T, __nv_bfloat16>::value ||
                       std::is_same<T, __half>::value),
                "the emulator supports bf16/fp16 operands and f32 "
                "accumulators");
  enum { num_elements = 256 };
  /// The tile: A as [m][k], B as [k][n], the accumulator as [m][n].
  T x[256];
};

namespace detail {
template <typename T> inline float toFloat(T v) {
  return static_cast<float>(v);
}
} // namespace detail

template <typename Use, typename T, typename Layout>
inline void fill_fragment(fragment<Use, 16, 16, 16, T, Layout> &f,
                          const typename std::enable_if<true, T>::type &v) {
  for (int i = 0; i < 256; ++i)
    f.x[i] = v;
}

namespace detail {
/// Element (r, c) of a 16 x 16 tile at p: p[r * ldm + c] when row-major,
/// p[c * ldm + r] when column-major.
template <typename T>
inline T &tileAt(T *p, unsigned ldm, bool rowMajor, int r, int c) {
  return rowMajor ? p[static_cast<size_t>(r) * ldm + c]
                  : p[static_cast<size_t>(c) * ldm + r];
}
template <typename T>
inline void loadTile(T *x, const T *p, unsigned ldm, bool rowMajor) {
  for (int r = 0; r < 16; ++r)
    for (int c = 0; c < 16; ++c)
      x[r * 16 + c] = tileAt(p, ldm, rowMajor, r, c);
}
} // namespace detail

// A [m][k] and B [k][n]: row_major reads p[row * ldm + col], col_major
// p[col * ldm + row].
template <typename Use, typename T>
inline void load_matrix_sync(fragment<Use, 16, 16, 16, T, row_major> &f,
                             const T *p, unsigned ldm) {
  detail::loadTile(f.x, p, ldm, true);
}
template <typename Use, typename T>
inline void load_matrix_sync(fragment<Use, 16, 16, 16, T, col_major> &f,
                             const T *p, unsigned ldm) {
  detail::loadTile(f.x, p, ldm, false);
}
inline void load_matrix_sync(fragment<accumulator, 16, 16, 16, float> &f,
                             const float *p, unsigned ldm, layout_t layout) {
  detail::loadTile(f.x, p, ldm, layout == mem_row_major);
}
inline void store_matrix_sync(float *p,
                              const fragment<accumulator, 16, 16, 16, float> &f,
                              unsigned ldm, layout_t layout) {
  for (int r = 0; r < 16; ++r)
    for (int c = 0; c < 16; ++c)
      detail::tileAt(p, ldm, layout == mem_row_major, r, c) = f.x[r * 16 + c];
}

namespace detail {
template <typename T, typename LA, typename LB>
inline void mmaCompute(float *d, const fragment<matrix_a, 16, 16, 16, T, LA> &a,
                       const fragment<matrix_b, 16, 16, 16, T, LB> &b,
                       const fragment<accumulator, 16, 16, 16, float> &c) {
  float fa[256], fb[256];
  for (int i = 0; i < 256; ++i) {
    fa[i] = toFloat(a.x[i]);
    fb[i] = toFloat(b.x[i]);
  }
  for (int m = 0; m < 16; ++m)
    for (int n = 0; n < 16; ++n) {
      float s = c.x[m * 16 + n];
      for (int k = 0; k < 16; ++k)
        s += fa[m * 16 + k] * fb[k * 16 + n];
      d[m * 16 + n] = s;
    }
}
} // namespace detail

template <typename T, typename LA, typename LB>
inline void mma_sync(fragment<accumulator, 16, 16, 16, float> &d,
                     const fragment<matrix_a, 16, 16, 16, T, LA> &a,
                     const fragment<matrix_b, 16, 16, 16, T, LB> &b,
                     const fragment<accumulator, 16, 16, 16, float> &c) {
  bool compute = false;
  float *slot = ::mixq_emu::detail::wmmaSlot(&compute);
  if (compute) {
    detail::mmaCompute(slot, a, b, c);
  } else if (::mixq_emu::detail::wmmaMode() == 2) {
    float own[256];
    detail::mmaCompute(own, a, b, c);
    if (std::memcmp(own, slot, sizeof own) != 0)
      ::mixq_emu::detail::failLaunch(
          "mma_sync: the lanes of a warp passed different fragments");
  }
  std::memcpy(d.x, slot, sizeof d.x);
}

} // namespace wmma
} // namespace nvcuda

#endif // MIXQ_CUDA_EMU_MMA_H
