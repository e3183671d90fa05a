//===- Launch.h - one kernel-launch spelling for CUDA and the emulator -*- C++ -*-===//
//
// Host code launches a __global__ function through mixq::cuda::launch
// instead of the <<<grid, block, shmem, stream>>> syntax, so that the same
// .cu source compiles with nvcc (a real launch) and, as plain C++ with
// -DMIXQ_CUDA_EMU and the headers of cudaemu/include, runs on the CPU
// emulator (docs/cuda.md, "Emulator"). Only C++ compiled by nvcc or for
// the emulator sees it: a host-only translation unit has nothing to launch.
// lib/CodeGen writes this file's text into every generated mixq_kernels.h.
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_CUDA_LAUNCH_H
#define MIXQ_CUDA_LAUNCH_H

#include <cuda_runtime.h>

#if defined(__cplusplus) && (defined(__CUDACC__) || defined(MIXQ_CUDA_EMU))
#include <cstddef>
#include <utility>

namespace mixq {
namespace cuda {

/// Enqueues kernel(args...) on `stream` with the given geometry; returns the
/// launch status (cudaGetLastError after the launch).
template <typename... Params, typename... Args>
inline cudaError_t launch(void (*kernel)(Params...), dim3 grid, dim3 block,
                          size_t shmem, cudaStream_t stream, Args &&...args) {
#ifdef MIXQ_CUDA_EMU
  return ::mixq_emu::launch(kernel, grid, block, shmem, stream,
                            std::forward<Args>(args)...);
#else
  kernel<<<grid, block, shmem, stream>>>(std::forward<Args>(args)...);
  return cudaGetLastError();
#endif
}

} // namespace cuda
} // namespace mixq
#endif // __CUDACC__ || MIXQ_CUDA_EMU

#endif // MIXQ_CUDA_LAUNCH_H
