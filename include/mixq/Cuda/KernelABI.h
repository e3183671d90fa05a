//===- KernelABI.h - the C ABI of the generated CUDA kernels -----*- C -*-===//
//
// The structs and launcher types through which host code calls the kernels
// that mixq-opt --mixq-emit-kernels generates (docs/cuda.md). One copy: the
// generator writes this file's text into every variant's
// kernels/mixq_kernels.h (lib/CodeGen embeds it at build time), and the
// runtime's CUDA executor, which dlopens a variant's compiled kernels,
// includes it. Plain C, so the generated header stays usable from C.
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_CUDA_KERNELABI_H
#define MIXQ_CUDA_KERNELABI_H

#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// A packed weight W [out, in] in the layout of include/mixq/Kernels/Quant.h
/// (QuantizedTensor's arrays copied to the device as they are). `codes` must
/// be 4-byte aligned.
typedef struct MixQCudaWeight {
  const uint8_t *codes;      /* out * rowBytes */
  const float *scales;       /* absmax per block, or alpha per tile */
  const float *zeros;        /* beta per tile (int4/3/2) */
  const uint8_t *scaleCodes; /* double quantization: 8-bit absmax codes */
  const float *scaleAbsmax;  /* double quantization: absmax per 256 codes */
  float scaleOffset;         /* double quantization: the mean subtracted */
} MixQCudaWeight;

/// LoRA / Q-BLoRA: A [rank, in / pool], B [out / repeat, rank]; QA-BLoRA:
/// H [out / repeat, in / pool]; scale s (alpha / r).
typedef struct MixQCudaAdapter {
  const float *A;
  const float *B;
  const float *H;
  float scale;
} MixQCudaAdapter;

/// Gradients of the backward (null = not computed), as LinearGrads of
/// include/mixq/Kernels/FusedLinear.h: dX [m, in] is overwritten with
/// dY W plus the adapter path unless dXAdapter takes it; dA/dB/dH are
/// overwritten, or added to when `accumulate` is non-zero.
typedef struct MixQCudaGrads {
  float *dX;
  float *dXAdapter;
  float *dA;
  float *dB;
  float *dH;
  int accumulate;
} MixQCudaGrads;

typedef size_t (*MixQCudaWorkspaceFn)(int64_t m);
typedef void (*MixQCudaDequantizeHostFn)(const MixQCudaWeight *w, float *out);
typedef cudaError_t (*MixQCudaForwardFn)(const MixQCudaWeight *w,
    const MixQCudaAdapter *adapter, const float *x, const float *xa,
    int64_t m, float *y, void *workspace, cudaStream_t stream);
typedef cudaError_t (*MixQCudaBackwardFn)(const MixQCudaWeight *w,
    const MixQCudaAdapter *adapter, const float *x, const float *xa,
    const float *dy, int64_t m, const MixQCudaGrads *grads, void *workspace,
    cudaStream_t stream);

/// One kernel of the variant: its key and its launchers.
typedef struct MixQCudaKernel {
  const char *name;
  int format; /* 0 f32, 1 bf16, 2 nf4, 3 fp4, 4 int8, 5 int4, 6 int3, 7 int2 */
  int64_t block;
  int doubleQuant;
  int64_t tileRows, tileCols;
  int64_t out, in;
  int adapter; /* 0 none, 1 LoRA, 2 Q-BLoRA, 3 QA-BLoRA */
  int64_t rank;       /* as in the IR */
  int64_t storedRank; /* inner dimension of A and B */
  int64_t poolIn, repeatOut;
  MixQCudaWorkspaceFn workspaceBytes;
  MixQCudaForwardFn forward;
  MixQCudaBackwardFn backward;
  /* The kernel's decoder compiled for the host: W [out, in] from a weight
     whose pointers are host pointers (tests the layout without a GPU). */
  MixQCudaDequantizeHostFn dequantizeHost;
} MixQCudaKernel;

/// mixq_cuda_find_kernel's type, for a loader that looks it up (dlsym).
typedef const MixQCudaKernel *(*MixQCudaFindKernelFn)(const char *name);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MIXQ_CUDA_KERNELABI_H */
