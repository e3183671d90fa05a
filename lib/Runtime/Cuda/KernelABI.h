//===- KernelABI.h - the generated kernels' ABI, as the executor sees it -===//
//
// The structs of a variant's kernels/mixq_kernels.h (written by
// lib/CodeGen/CudaSource.cpp; docs/cuda.md). The executor is built before any
// variant exists, so it declares the same layout here; the lit test of the
// executor (test/Tools/mixq-run-cuda-emu.test) runs every kernel of a
// variant through these declarations against the CPU run, so a drift of the
// generated header breaks it.
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_RUNTIME_CUDA_KERNELABI_H
#define MIXQ_RUNTIME_CUDA_KERNELABI_H

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

extern "C" {

typedef struct MixQCudaWeight {
  const uint8_t *codes;
  const float *scales;
  const float *zeros;
  const uint8_t *scaleCodes;
  const float *scaleAbsmax;
  float scaleOffset;
} MixQCudaWeight;

typedef struct MixQCudaAdapter {
  const float *A;
  const float *B;
  const float *H;
  float scale;
} MixQCudaAdapter;

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
                                         const MixQCudaAdapter *adapter,
                                         const float *x, const float *xa,
                                         int64_t m, float *y, void *workspace,
                                         cudaStream_t stream);
typedef cudaError_t (*MixQCudaBackwardFn)(const MixQCudaWeight *w,
                                          const MixQCudaAdapter *adapter,
                                          const float *x, const float *xa,
                                          const float *dy, int64_t m,
                                          const MixQCudaGrads *grads,
                                          void *workspace, cudaStream_t stream);

typedef struct MixQCudaKernel {
  const char *name;
  int format; /* 0 f32, 1 bf16, 2 nf4, 3 fp4, 4 int8, 5 int4, 6 int3, 7 int2 */
  int64_t block;
  int doubleQuant;
  int64_t tileRows, tileCols;
  int64_t out, in;
  int adapter; /* 0 none, 1 LoRA, 2 Q-BLoRA, 3 QA-BLoRA */
  int64_t rank;
  int64_t storedRank;
  int64_t poolIn, repeatOut;
  MixQCudaWorkspaceFn workspaceBytes;
  MixQCudaForwardFn forward;
  MixQCudaBackwardFn backward;
  MixQCudaDequantizeHostFn dequantizeHost;
} MixQCudaKernel;

typedef const MixQCudaKernel *(*MixQCudaFindKernelFn)(const char *name);

} // extern "C"

#endif // MIXQ_RUNTIME_CUDA_KERNELABI_H
