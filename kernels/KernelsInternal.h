//===- KernelsInternal.h - Private interfaces of MixQKernels -----*- C++ -*-===//
//
// The GEMM engine behind FusedLinear.h: C [m, n] (+)= A [m, k] * B [n, k]^T in
// the "dot product" form (both operands packed with k contiguous), where B is
// a dense f32 matrix or a quantized weight (dequantized panel by panel).
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_KERNELS_KERNELSINTERNAL_H
#define MIXQ_KERNELS_KERNELSINTERNAL_H

#include "mixq/Kernels/FusedLinear.h"
#include "mixq/Kernels/Quant.h"

#include <cstdint>
#include <functional>

namespace mixq {
namespace kernels {
namespace detail {

/// A strided f32 matrix: element (i, k) at data[i * rs + k * cs].
struct MatView {
  const float *data = nullptr;
  int64_t rs = 0, cs = 1;
  float at(int64_t i, int64_t k) const { return data[i * rs + k * cs]; }
};

/// The B operand, row n contiguous along k once packed.
struct BSource {
  enum Kind { Dense, Quant, QuantT } kind = Dense;
  MatView dense;                       ///< Dense: B(n, k) = dense(n, k)
  const QuantizedTensor *q = nullptr;  ///< Quant: W(n, k); QuantT: W(k, n)
};

/// Microkernel: C[i][j] (+)= sum_k a[i*lda + k] * b[j*ldb + k] for i < mr,
/// j < nr (mr <= MR, nr <= NR), kPad a multiple of 32 (zero padded).
using MicroF32 = void (*)(const float *a, int64_t lda, const float *b,
                          int64_t ldb, int64_t kPad, int mr, int nr, float *c,
                          int64_t ldc, bool accumulate);
/// The same on bf16 operands (uint16 bit patterns), f32 accumulation.
using MicroBF16 = void (*)(const uint16_t *a, int64_t lda, const uint16_t *b,
                           int64_t ldb, int64_t kPad, int mr, int nr, float *c,
                           int64_t ldc, bool accumulate);
/// Dequantizes columns [c0, c1) of row r into out (bit-identical to
/// dequantizeRow).
using DequantRowFn = void (*)(const QuantizedTensor &q, int64_t r, int64_t c0,
                              int64_t c1, float *out);
/// Rounds n floats to bf16 (nearest even).
using ToBF16Fn = void (*)(const float *in, uint16_t *out, int64_t n);

/// Small-m (decode) product fused with dequantization, no panel:
/// C[i][j] (+)= sum_k A[i][k] W[j][k] for i < m, rows j in [n0, n1). Only
/// called when smallMSupported(q, m) holds; A rows are contiguous (lda).
using SmallMFn = void (*)(const float *a, int64_t lda, int64_t m,
                          const QuantizedTensor &q, int64_t n0, int64_t n1,
                          float *c, int64_t ldc, bool accumulate);
using SmallMSupportedFn = bool (*)(const QuantizedTensor &q, int64_t m);

/// A whole f32 slice of the GEMM (rows [mBegin, mEnd) x cols [nBegin, nEnd)
/// of C) in the ISA's own blocking; replaces packing + micro for f32 when
/// set. Each C element is summed in k order by one call.
using SliceF32Fn = void (*)(const MatView &a, const BSource &b,
                            int64_t mBegin, int64_t mEnd, int64_t nBegin,
                            int64_t nEnd, int64_t k, float *c, int64_t ldc,
                            bool accumulate);

struct IsaKernels {
  KernelISA isa;
  int mr, nr;
  MicroF32 micro;
  MicroBF16 microBF16; ///< null if the ISA has no bf16 dot product
  DequantRowFn dequantRow;
  ToBF16Fn toBF16;
  SmallMFn smallM = nullptr; ///< null if the ISA has no fused small-m path
  SmallMSupportedFn smallMSupported = nullptr;
  SliceF32Fn sliceF32 = nullptr; ///< null: packed dot-product microkernels
  /// Column alignment of a thread's share of n (nr when sliceF32 is null).
  int nAlign() const { return sliceF32 ? 16 : nr; }
};

const IsaKernels &scalarKernels();
/// Null when the file was built without the ISA (non-x86 compilers).
const IsaKernels *avx2Kernels();
const IsaKernels *avx512Kernels();
/// The table for opts on this CPU.
const IsaKernels &selectKernels(const KernelOptions &opts);
/// Number of threads opts asks for on this machine (>= 1).
int resolveThreads(const KernelOptions &opts);

/// Runs fn(t, nThreads) on nThreads threads (the caller is thread 0); a small
/// persistent pool, no oversubscription.
void parallelRun(int nThreads, const std::function<void(int, int)> &fn);

/// C [m, n] (ldc) (+)= A [m, k] * B^T, B [n, k] from `b`.
void gemm(const MatView &a, const BSource &b, int64_t m, int64_t n, int64_t k,
          float *c, int64_t ldc, bool accumulate, const KernelOptions &opts);

} // namespace detail
} // namespace kernels
} // namespace mixq

#endif // MIXQ_KERNELS_KERNELSINTERNAL_H
