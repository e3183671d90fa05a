//===- cuda_runtime.h - CUDA runtime API of the CPU emulator ----*- C++ -*-===//
//
// Drop-in for CUDA's <cuda_runtime.h> when a .cu file is compiled as C++ for
// the emulator (-DMIXQ_CUDA_EMU -I<repo>/cudaemu/include); see
// mixq_cuda_emu.h and docs/cuda.md ("Emulator").
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_CUDA_EMU_CUDA_RUNTIME_H
#define MIXQ_CUDA_EMU_CUDA_RUNTIME_H

#include "mixq_cuda_emu.h"

#endif // MIXQ_CUDA_EMU_CUDA_RUNTIME_H
