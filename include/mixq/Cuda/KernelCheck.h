//===- KernelCheck.h - host helpers for programs that drive generated kernels -*- C++ -*-===//
//
// What a host program needs to feed a variant's generated CUDA kernels with
// the CPU kernels' data and compare their results: the QuantSpec and the
// AdapterView a kernel's key (MixQCudaKernel) stands for, random inputs and
// a relative error. Used by the kernel check program
// (test/CodeGen/Inputs/check-kernels.cpp) and the kernel benchmark
// (bench/cuda/FusedLinearBench.cpp). Host code only.
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_CUDA_KERNELCHECK_H
#define MIXQ_CUDA_KERNELCHECK_H

#include "mixq/Cuda/KernelABI.h"
#include "mixq/Kernels/FusedLinear.h"
#include "mixq/Kernels/Quant.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

namespace mixq {
namespace cuda {

/// The quantization spec of kernel `k` (what quantize() needs to produce
/// the packed bytes the kernel reads).
inline QuantSpec quantSpecOf(const MixQCudaKernel &k) {
  QuantSpec s;
  s.format = static_cast<QuantFormat>(k.format);
  s.block = k.block > 0 ? k.block : 64;
  s.doubleQuant = k.doubleQuant != 0;
  if (k.tileRows > 0) {
    s.tileRows = k.tileRows;
    s.tileCols = k.tileCols;
  }
  return s;
}

/// The CPU adapter view of kernel `k` with scale `scale`; the data pointers
/// are left for the caller.
inline kernels::AdapterView adapterViewOf(const MixQCudaKernel &k,
                                          float scale) {
  kernels::AdapterView v;
  v.kind = static_cast<AdapterKind>(k.adapter);
  v.rank = k.storedRank;
  v.poolIn = k.poolIn;
  v.repeatOut = k.repeatOut;
  v.scale = scale;
  return v;
}

/// n values uniform in [-amp, amp].
inline std::vector<float> randomVector(std::mt19937 &rng, size_t n,
                                       float amp) {
  std::uniform_real_distribution<float> dist(-amp, amp);
  std::vector<float> v(n);
  for (float &x : v)
    x = dist(rng);
  return v;
}

/// Largest |got - ref| over max(max |ref|, 1e-3); NaN on a size mismatch or
/// a non-finite result.
inline double relativeError(const std::vector<float> &got,
                            const std::vector<float> &ref) {
  if (got.size() != ref.size())
    return NAN;
  double err = 0.0, scale = 1e-3;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (!std::isfinite(got[i]))
      return NAN;
    err = std::max(err, std::fabs(double(got[i]) - double(ref[i])));
    scale = std::max(scale, std::fabs(double(ref[i])));
  }
  return err / scale;
}

} // namespace cuda
} // namespace mixq

#endif // MIXQ_CUDA_KERNELCHECK_H
