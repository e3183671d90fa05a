//===- AdapterInit.h - gaussian, LoftQ and PiSSA initialisation ---*- C++ -*-===//
//
// Initial adapter parameters for a linear W [out, in] (row-major f32) with a
// quant format and an adapter (LoRA, Q-BLoRA, QA-BLoRA), as PEFT lays them
// out: A [rank, in / pool], B [out / repeat, rank], H [out / l2, in / l1]
// (rank = r for LoRA, lambda * r for Q-BLoRA; see FusedLinear.h). With the
// scale s = alpha / r the layer computes dequant(Q) + s * DeltaW:
//
//   gaussian  A ~ N(0, 1/r) (PEFT init_lora_weights="gaussian") or PEFT's
//             Kaiming-uniform (bound 1/sqrt(fan_in)); B = 0; H = 0; Q =
//             quant(W).
//   loftq     T = init_iters alternations, starting from s*DeltaW = 0:
//               Q = quant(W - s*DeltaW);  s*DeltaW = best rank-r
//               approximation of W - dequant(Q) in the adapter's space.
//   pissa     s*DeltaW = the best rank-r approximation of W (principal
//             singular triplets); Q = quant(W - s*DeltaW).
//
// For Q-BLoRA the adapter's space is the lambda x lambda block-constant
// matrices: the best approximation of R is the truncated SVD of the block
// sums / lambda (Frobenius-optimal because every block has lambda^2
// entries). The factors split the singular values evenly: A = sqrt(S/s) V^T,
// B = U sqrt(S/s). SVDs run in double precision (Eigen BDCSVD).
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_METHODS_ADAPTERINIT_H
#define MIXQ_METHODS_ADAPTERINIT_H

#include "mixq/Config/VariantConfig.h"
#include "mixq/Kernels/Quant.h"

#include "llvm/Support/Error.h"

#include <cstdint>
#include <vector>

namespace mixq {
namespace methods {

/// How init = gaussian draws A.
enum class GaussianKind { Normal, Kaiming };

struct AdapterInitResult {
  /// The f32 matrix whose quantization is `quant`: W for gaussian,
  /// W - s*DeltaW_{T-1} for LoftQ, the residual for PiSSA.
  std::vector<float> base;
  kernels::QuantizedTensor quant; ///< quantize(base, spec.quant)
  std::vector<float> A, B, H;     ///< empty when the kind has none
  int64_t aRows = 0, aCols = 0, bRows = 0, bCols = 0, hRows = 0, hCols = 0;
  /// ||W - dequant(Q) - s*DeltaW||_F of the initialised layer.
  double error = 0.0;
  /// ||W - dequant(quant(W))||_F (QLoRA: plain quantization, no adapter).
  double qloraError = 0.0;
};

/// Initialises the adapter of `spec` for W [out, in]. `seed` seeds the
/// random A of gaussian init. Errors on a spec the shape cannot take.
llvm::Expected<AdapterInitResult>
initAdapter(const float *w, int64_t out, int64_t in, const LinearSpec &spec,
            uint64_t seed, GaussianKind gaussian = GaussianKind::Normal);

/// DeltaW [out, in] of an adapter (without the scale), expanded as the
/// kernels compute it: (B A)[i / repeat, j / pool] / pool.
std::vector<float> expandDelta(const std::vector<float> &ba, int64_t out,
                               int64_t in, int64_t repeat, int64_t pool);

/// ||a - b||_F over n values, in double.
double frobeniusDistance(const float *a, const float *b, int64_t n);

} // namespace methods
} // namespace mixq

#endif // MIXQ_METHODS_ADAPTERINIT_H
