//===- KernelABI.h - the generated kernels' ABI, as the executor sees it -===//
//
// The executor is built before any variant exists and dlopens a variant's
// compiled kernels; it sees them through the same C ABI header that the
// generator writes into every kernels/mixq_kernels.h
// (include/mixq/Cuda/KernelABI.h, one copy for both).
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_RUNTIME_CUDA_KERNELABI_H
#define MIXQ_RUNTIME_CUDA_KERNELABI_H

#include "mixq/Cuda/KernelABI.h"

#endif // MIXQ_RUNTIME_CUDA_KERNELABI_H
