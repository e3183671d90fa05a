//===- FusedLinear.h - Fused dequant + GEMM + adapter kernels ---*- C++ -*-===//
//
// Forward and backward of one frozen quantized linear layer with a trainable
// low-rank adapter, all matrices row-major f32:
//
//   X  [m, in]      activations (one row per token)
//   W  [out, in]    frozen, a QuantizedTensor (never dequantized whole)
//   Y  [m, out] =  X * dequant(W)^T  +  s * adapter(Xa)
//
// where Xa is the adapter input (X, or a dropout of X given separately) and
//
//   LoRA      adapter(Xa) = Xa * A^T * B^T            A [r, in],  B [out, r]
//   Q-BLoRA   adapter(Xa) = repeat_interleave(AvgPool_l(Xa) * A^T * B^T, l)
//                                                     A [l*r, in/l], B [out/l, l*r]
//   QA-BLoRA  adapter(Xa) = repeat_interleave(AvgPool_l1(Xa) * H^T, l2)
//                                                     H [out/l2, in/l1]
//
// (PEFT layout: lora_A.weight is [r, in], lora_B.weight is [out, r].) AvgPool
// averages groups of l consecutive input features; repeat_interleave repeats
// each output feature l times. For QA-BLoRA l1 x l2 must equal the int tile
// (tileCols x tileRows) of W so the adapter folds into the zero points.
//
// Backward, given dY [m, out]: dX = dY * dequant(W) + (adapter path), and
// dA / dB / dH of the adapter. All paths (AVX-512, AVX2, scalar) are chosen at
// run time by CPU features and agree with the scalar reference to the
// tolerance of docs/kernels.md.
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_KERNELS_FUSEDLINEAR_H
#define MIXQ_KERNELS_FUSEDLINEAR_H

#include "mixq/Config/VariantConfig.h"
#include "mixq/Kernels/Quant.h"

#include "llvm/Support/Error.h"

#include <cstdint>

namespace mixq {
namespace kernels {

//===----------------------------------------------------------------------===//
// Kernel selection
//===----------------------------------------------------------------------===//

enum class KernelISA { Auto, Scalar, AVX2, AVX512 };
/// F32: f32 products, f32 accumulation. BF16: X and the dequantized W are
/// rounded to bf16 and multiplied with avx512_bf16 (f32 accumulation); falls
/// back to F32 on machines without avx512_bf16.
enum class ComputePrecision { F32, BF16 };

struct KernelOptions {
  KernelISA isa = KernelISA::Auto; ///< Auto = best the CPU supports
  ComputePrecision precision = ComputePrecision::F32;
  int threads = 0; ///< 0 = default (min(2, hardware threads)); 1 = caller only
};

/// The best ISA this CPU supports (Scalar, AVX2 = avx2+fma, AVX512 =
/// avx512f+bw+vl+dq).
KernelISA detectISA();
/// True if the CPU has avx512_bf16.
bool cpuHasAVX512BF16();
const char *isaName(KernelISA isa);
/// The ISA `opts` resolves to on this CPU (an unsupported request falls back
/// to the best supported one below it).
KernelISA resolveISA(const KernelOptions &opts);

//===----------------------------------------------------------------------===//
// Adapters
//===----------------------------------------------------------------------===//

/// Non-owning view of an adapter's parameters.
struct AdapterView {
  AdapterKind kind = AdapterKind::None;
  /// Inner dimension as stored: r for LoRA, l*r for Q-BLoRA (unused by
  /// QA-BLoRA).
  int64_t rank = 0;
  int64_t poolIn = 1;    ///< AvgPool factor on X (Q-BLoRA l, QA-BLoRA l1)
  int64_t repeatOut = 1; ///< repeat_interleave factor (l, QA-BLoRA l2)
  float scale = 0.0f;    ///< s (e.g. alpha / r)
  const float *A = nullptr; ///< [rank, in / poolIn]
  const float *B = nullptr; ///< [out / repeatOut, rank]
  const float *H = nullptr; ///< QA-BLoRA: [out / repeatOut, in / poolIn]
};

/// Shapes of the adapter matrices for a layer [out, in] (rows x cols each; a
/// matrix the kind does not use is 0 x 0).
struct AdapterShapes {
  int64_t aRows = 0, aCols = 0, bRows = 0, bCols = 0, hRows = 0, hCols = 0;
};

/// The shapes for `adapter` on a layer with `in` inputs and `out` outputs;
/// errors if in/out are not divisible by the pooling factors or the rank is
/// not positive.
llvm::Expected<AdapterShapes> adapterShapes(const AdapterView &adapter,
                                            int64_t in, int64_t out);

/// An AdapterView (without data pointers) for a config AdapterSpec:
/// LoRA rank = spec.rank; Q-BLoRA rank = lambda * spec.rank, pool = repeat =
/// lambda; QA-BLoRA pool = lambdaCols, repeat = lambdaRows. scale = alpha /
/// spec.rank (0 if rank is 0) for LoRA and Q-BLoRA, alpha for QA-BLoRA (it
/// has no rank).
AdapterView adapterViewFromSpec(const AdapterSpec &spec);

//===----------------------------------------------------------------------===//
// Kernels
//===----------------------------------------------------------------------===//

/// Y [m, out] = X [m, in] * dequant(W)^T (+ Y if accumulate).
llvm::Error quantMatmul(const QuantizedTensor &w, const float *x, int64_t m,
                        float *y, bool accumulate = false,
                        const KernelOptions &opts = {});

/// dX [m, in] = dY [m, out] * dequant(W) (+ dX if accumulate).
llvm::Error quantMatmulTransposed(const QuantizedTensor &w, const float *dy,
                                  int64_t m, float *dx,
                                  bool accumulate = false,
                                  const KernelOptions &opts = {});

/// Y = X * dequant(W)^T + s * adapter(Xa), Xa = adapterX ? adapterX : X.
llvm::Error fusedLinearForward(const QuantizedTensor &w,
                               const AdapterView &adapter, const float *x,
                               int64_t m, float *y,
                               const KernelOptions &opts = {},
                               const float *adapterX = nullptr);

/// Where the gradients go. Null pointers are not computed.
struct LinearGrads {
  /// [m, in], overwritten: dY * W, plus the adapter path unless dXAdapter.
  float *dX = nullptr;
  /// [m, in], overwritten: the adapter path alone (d loss / d Xa), for a
  /// caller that applied dropout to the adapter input.
  float *dXAdapter = nullptr;
  float *dA = nullptr; ///< shape of A
  float *dB = nullptr; ///< shape of B
  float *dH = nullptr; ///< shape of H
  bool accumulate = false; ///< add into dA/dB/dH (gradient accumulation)
};

/// Backward of fusedLinearForward for dY [m, out].
llvm::Error fusedLinearBackward(const QuantizedTensor &w,
                                const AdapterView &adapter, const float *x,
                                const float *dy, int64_t m,
                                const LinearGrads &grads,
                                const KernelOptions &opts = {},
                                const float *adapterX = nullptr);

//===----------------------------------------------------------------------===//
// Merging
//===----------------------------------------------------------------------===//

/// W [out, in] += s * DeltaW of a LoRA / Q-BLoRA / QA-BLoRA adapter (dense
/// f32 weight, e.g. before re-quantizing or exporting a 16-bit model).
llvm::Error mergeAdapterDense(const AdapterView &adapter, float *w,
                              int64_t out, int64_t in);

/// QA-BLoRA: folds s * H / l1 into the zero points beta of an int tile tensor
/// whose tile is repeatOut x poolIn (the result is again a pure low-bit
/// tensor; dequant(W') = dequant(W) + s * DeltaW exactly up to f32 rounding).
llvm::Error mergeQABLoRAIntoZeros(QuantizedTensor &w,
                                  const AdapterView &adapter);

} // namespace kernels
} // namespace mixq

#endif // MIXQ_KERNELS_FUSEDLINEAR_H
