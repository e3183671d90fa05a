//===- Internal.h - shared state of the CUDA emulator library ---*- C++ -*-===//

#ifndef MIXQ_CUDA_EMU_INTERNAL_H
#define MIXQ_CUDA_EMU_INTERNAL_H

#include "mixq_cuda_emu.h"

namespace mixq_emu {
namespace detail {

/// Records `e` as the calling thread's last error and returns it.
cudaError_t setLastError(cudaError_t e);
/// Makes `e` sticky (every later runtime call fails with it until
/// cudaDeviceReset), as CUDA does after a failed kernel.
void setStickyError(cudaError_t e);
cudaError_t stickyError();
/// Whether `stream` is the default stream or one created and not destroyed.
bool validStream(cudaStream_t stream);
/// Whether new device memory and each block's dynamic shared memory are
/// filled with 0xff bytes (MIXQ_EMU_POISON, on unless "0").
bool poisonAllocations();

} // namespace detail
} // namespace mixq_emu

#endif // MIXQ_CUDA_EMU_INTERNAL_H
