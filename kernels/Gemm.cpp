//===- Gemm.cpp - Panel GEMM driver over quantized or dense B ----*- C++ -*-===//
//
// C [m, n] (+)= A [m, k] * B [n, k]^T. Each thread owns a static slice of n
// (or of m when n is small). Per slice: for blocks of m (kMo rows) and k (kKc
// values) A is packed once (k contiguous, zero padded); B is dequantized kNc
// rows at a time into a cache-resident panel (never the whole matrix), and the
// ISA's microkernel multiplies micro-panels of A (MR rows, L1) with strips of
// the B panel (NR rows, L2).
//
//===----------------------------------------------------------------------===//

#include "KernelsInternal.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace mixq {
namespace kernels {
namespace detail {

namespace {

constexpr int64_t kKc = 1024; ///< k block (multiple of 32)
constexpr int64_t kMo = 512;  ///< m block of packed A
constexpr int64_t kNc = 48;   ///< rows of the dequantized B panel

int64_t roundUp(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

/// Per-thread workspace, reused across calls.
struct Workspace {
  std::vector<float> aF32, bF32, row;
  std::vector<uint16_t> aBF16, bBF16;
};

Workspace &threadWorkspace() {
  thread_local Workspace ws;
  return ws;
}

/// Packs A rows [i0, i0+mi) x cols [k0, k0+kc) into out [mi][kPad].
void packA(const MatView &a, int64_t i0, int64_t mi, int64_t k0, int64_t kc,
           int64_t kPad, float *out) {
  for (int64_t i = 0; i < mi; ++i) {
    float *dst = out + i * kPad;
    if (a.cs == 1) {
      std::memcpy(dst, a.data + (i0 + i) * a.rs + k0, 4 * kc);
    } else {
      for (int64_t k = 0; k < kc; ++k)
        dst[k] = a.at(i0 + i, k0 + k);
    }
    std::fill(dst + kc, dst + kPad, 0.0f);
  }
}

/// Packs B rows [n0, n0+nc) x cols [k0, k0+kc) into out [nc][kPad] (f32).
void packB(const BSource &b, const IsaKernels &isa, int64_t n0, int64_t nc,
           int64_t k0, int64_t kc, int64_t kPad, float *out,
           std::vector<float> &row) {
  if (b.kind == BSource::Dense) {
    packA(b.dense, n0, nc, k0, kc, kPad, out);
    return;
  }
  if (b.kind == BSource::Quant) {
    for (int64_t j = 0; j < nc; ++j) {
      float *dst = out + j * kPad;
      isa.dequantRow(*b.q, n0 + j, k0, k0 + kc, dst);
      std::fill(dst + kc, dst + kPad, 0.0f);
    }
    return;
  }
  // QuantT: B(n, k) = W(k, n): dequantize W rows k0.. (cols n0..n0+nc) and
  // scatter them transposed.
  row.resize(nc);
  for (int64_t kk = 0; kk < kc; ++kk) {
    isa.dequantRow(*b.q, k0 + kk, n0, n0 + nc, row.data());
    for (int64_t j = 0; j < nc; ++j)
      out[j * kPad + kk] = row[j];
  }
  for (int64_t j = 0; j < nc; ++j)
    std::fill(out + j * kPad + kc, out + (j + 1) * kPad, 0.0f);
}

/// One thread's share: rows [mBegin, mEnd) x cols [nBegin, nEnd) of C.
void gemmSlice(const MatView &a, const BSource &b, int64_t mBegin,
               int64_t mEnd, int64_t nBegin, int64_t nEnd, int64_t k, float *c,
               int64_t ldc, bool accumulate, const IsaKernels &isa,
               bool useBF16) {
  if (!useBF16 && isa.sliceF32) {
    isa.sliceF32(a, b, mBegin, mEnd, nBegin, nEnd, k, c, ldc, accumulate);
    return;
  }
  Workspace &ws = threadWorkspace();
  const int64_t kcMax = std::min(kKc, roundUp(k, 32));
  const int64_t moMax = std::min(kMo, mEnd - mBegin);
  ws.aF32.resize(moMax * kcMax);
  ws.bF32.resize(kNc * kcMax);
  if (useBF16) {
    ws.aBF16.resize(moMax * kcMax);
    ws.bBF16.resize(kNc * kcMax);
  }
  for (int64_t m0 = mBegin; m0 < mEnd; m0 += kMo) {
    const int64_t mo = std::min(kMo, mEnd - m0);
    for (int64_t k0 = 0; k0 < k; k0 += kKc) {
      const int64_t kc = std::min(kKc, k - k0), kPad = roundUp(kc, 32);
      const bool acc = accumulate || k0 > 0;
      packA(a, m0, mo, k0, kc, kPad, ws.aF32.data());
      if (useBF16)
        isa.toBF16(ws.aF32.data(), ws.aBF16.data(), mo * kPad);
      for (int64_t n0 = nBegin; n0 < nEnd; n0 += kNc) {
        const int64_t nc = std::min(kNc, nEnd - n0);
        packB(b, isa, n0, nc, k0, kc, kPad, ws.bF32.data(), ws.row);
        if (useBF16)
          isa.toBF16(ws.bF32.data(), ws.bBF16.data(), nc * kPad);
        for (int64_t i = 0; i < mo; i += isa.mr) {
          const int mr = static_cast<int>(std::min<int64_t>(isa.mr, mo - i));
          for (int64_t j = 0; j < nc; j += isa.nr) {
            const int nr = static_cast<int>(std::min<int64_t>(isa.nr, nc - j));
            float *cTile = c + (m0 + i) * ldc + n0 + j;
            if (useBF16)
              isa.microBF16(ws.aBF16.data() + i * kPad, kPad,
                            ws.bBF16.data() + j * kPad, kPad, kPad, mr, nr,
                            cTile, ldc, acc);
            else
              isa.micro(ws.aF32.data() + i * kPad, kPad,
                        ws.bF32.data() + j * kPad, kPad, kPad, mr, nr, cTile,
                        ldc, acc);
          }
        }
      }
    }
  }
}

} // namespace

void gemm(const MatView &a, const BSource &b, int64_t m, int64_t n, int64_t k,
          float *c, int64_t ldc, bool accumulate, const KernelOptions &opts) {
  if (m == 0 || n == 0)
    return;
  if (k == 0) {
    if (!accumulate)
      for (int64_t i = 0; i < m; ++i)
        std::fill(c + i * ldc, c + i * ldc + n, 0.0f);
    return;
  }
  const IsaKernels &isa = selectKernels(opts);
  const bool useBF16 = opts.precision == ComputePrecision::BF16 &&
                       isa.microBF16 != nullptr;
  int threads = resolveThreads(opts);
  // Small problems are not worth waking the second thread.
  if (static_cast<double>(m) * n * k < 1.0e6)
    threads = 1;
  // Decode-like m: dequantize in registers, stream W once (bandwidth bound;
  // f32 products even when bf16 is allowed: bf16 would not be faster here).
  if (b.kind == BSource::Quant && a.cs == 1 && isa.smallM &&
      isa.smallMSupported(*b.q, m)) {
    parallelRun(threads, [&](int t, int nt) {
      int64_t per = roundUp((n + nt - 1) / nt, 8);
      int64_t n0 = std::min(n, t * per), n1 = std::min(n, n0 + per);
      if (n0 < n1)
        isa.smallM(a.data, a.rs, m, *b.q, n0, n1, c, ldc, accumulate);
    });
    return;
  }
  const bool splitN = n >= 128 || m < 2 * isa.mr * threads;
  parallelRun(threads, [&](int t, int nt) {
    if (splitN) {
      int64_t per = roundUp((n + nt - 1) / nt, isa.nAlign());
      int64_t n0 = std::min(n, t * per), n1 = std::min(n, n0 + per);
      if (n0 < n1)
        gemmSlice(a, b, 0, m, n0, n1, k, c, ldc, accumulate, isa, useBF16);
    } else {
      int64_t per = roundUp((m + nt - 1) / nt, isa.mr);
      int64_t m0 = std::min(m, t * per), m1 = std::min(m, m0 + per);
      if (m0 < m1)
        gemmSlice(a, b, m0, m1, 0, n, k, c, ldc, accumulate, isa, useBF16);
    }
  });
}

//===----------------------------------------------------------------------===//
// Scalar kernels
//===----------------------------------------------------------------------===//

namespace {

constexpr int kScalarMr = 4, kScalarNr = 4;

void microScalar(const float *a, int64_t lda, const float *b, int64_t ldb,
                 int64_t kPad, int mr, int nr, float *c, int64_t ldc,
                 bool accumulate) {
  for (int i = 0; i < mr; ++i)
    for (int j = 0; j < nr; ++j) {
      // Eight partial sums (vectorizable without reassociation).
      float part[8] = {};
      const float *ai = a + i * lda, *bj = b + j * ldb;
      for (int64_t k = 0; k < kPad; k += 8)
        for (int u = 0; u < 8; ++u)
          part[u] += ai[k + u] * bj[k + u];
      float s = ((part[0] + part[1]) + (part[2] + part[3])) +
                ((part[4] + part[5]) + (part[6] + part[7]));
      float &dst = c[i * ldc + j];
      dst = accumulate ? dst + s : s;
    }
}

void toBF16Scalar(const float *in, uint16_t *out, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    out[i] = floatToBF16(in[i]);
}

} // namespace

const IsaKernels &scalarKernels() {
  static const IsaKernels k = {KernelISA::Scalar, kScalarMr, kScalarNr,
                               microScalar,       nullptr,   dequantizeRow,
                               toBF16Scalar};
  return k;
}

} // namespace detail
} // namespace kernels
} // namespace mixq
