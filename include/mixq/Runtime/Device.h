//===- Device.h - running a Model's training step on a device ----*- C++
//-*-===//
//
// A DeviceExecutor runs the forward / backward and the loss of a built CPU
// Model on an accelerator: it copies the frozen bases (the packed
// QuantizedTensor bytes as they are) and the adapters to the device once,
// runs every op there (the variant's generated kernels for the fused
// linears, cuBLAS for the f32 GEMMs, lib/Runtime/Cuda/DeviceOps.cu for the
// rest), and adds the adapter gradients into the Model's host gradient
// buffers. The Trainer, checkpoints and metrics stay on the host:
// Model::forwardBackward / loss / makeCache / forwardInfer delegate to an
// attached executor (inference keeps its KV cache on the device), and the
// Trainer runs AdamW on it (optimizerBegin .. optimizerEnd), so a step
// moves no parameters or gradients between host and device.
//
// Backends are shared objects that mixq-run does not link: `cuda`
// (libMixQCudaExec.so, nvcc + cudart + cuBLAS) and `cuda-emu`
// (libMixQCudaExecEmu.so, the same sources on the CPU emulator, a test
// device). loadDeviceExecutor dlopens the one asked for. See docs/runtime.md
// ("Devices") and docs/cuda.md ("Executor").
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_RUNTIME_DEVICE_H
#define MIXQ_RUNTIME_DEVICE_H

#include "mixq/Runtime/Memory.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <memory>
#include <string>

namespace mixq {
namespace runtime {

class Model;
struct Batch;

enum class DeviceKind { CPU, Cuda, CudaEmu };
/// "cpu" | "cuda" | "cuda-emu".
llvm::Expected<DeviceKind> parseDeviceKind(llvm::StringRef s);
const char *deviceKindName(DeviceKind k);

/// Keys and values of an inference prefix in device memory (Activations of
/// the executor's tracker), owned by a KVCache (Model.h).
class DeviceKVCache {
public:
  virtual ~DeviceKVCache() = default;
};

class DeviceExecutor {
public:
  virtual ~DeviceExecutor() = default;

  /// The device, in words (cudaDeviceProp::name).
  virtual std::string deviceName() const = 0;

  /// Forward and backward of `batch` as Model::forwardBackward; adds
  /// gradScale * d(summed loss) to the Model's host gradient buffers.
  /// `masks` holds, for each decoder linear (index layer * 7 + role), its
  /// adapter-dropout keep mask [n, in] drawn on the host exactly as the CPU
  /// path draws it, or null (no dropout). Returns the summed loss.
  virtual llvm::Expected<double>
  forwardBackward(const Batch &batch, float gradScale,
                  llvm::ArrayRef<const uint8_t *> masks) = 0;

  /// Forward only: summed loss over target tokens (no dropout).
  virtual llvm::Expected<double> loss(const Batch &batch) = 0;

  /// A KV cache for up to `capacity` positions on the device. Also uploads
  /// the Model's current adapter parameters, so a cache sees the parameters
  /// of the moment it was made (inference between optimizer steps).
  virtual llvm::Expected<std::unique_ptr<DeviceKVCache>>
  makeCache(int64_t capacity) = 0;

  /// Model::forwardInfer on the device: runs `tokens` at positions
  /// p0 .. p0 + n - 1 (p0 = the cache's length on the host side), writes
  /// their keys / values into `cache` and the logits [rows, vocab] of the
  /// rows listed in `logitRows` into the host array `logits`.
  virtual llvm::Error forwardInfer(llvm::ArrayRef<int> tokens,
                                   DeviceKVCache &cache, int64_t p0,
                                   llvm::ArrayRef<int64_t> logitRows,
                                   float *logits) = 0;

  /// Device-resident AdamW (the Trainer uses it when a device is attached).
  /// optimizerBegin uploads the Model's trainable parameters `params` (the
  /// data of Model::parameters()' buffers) and the AdamW moments `m`, `v`
  /// (host arrays of the same sizes, same order) and keeps
  /// all three on the device (moments: Optimizer) until optimizerEnd: in
  /// between, forwardBackward neither uploads parameters nor touches the
  /// host gradient buffers (gradients accumulate on the device until
  /// zeroGradients), and adamStep updates the device copies.
  virtual llvm::Error optimizerBegin(llvm::ArrayRef<float *> params,
                                     llvm::ArrayRef<const float *> m,
                                     llvm::ArrayRef<const float *> v) = 0;
  virtual llvm::Error zeroGradients() = 0;
  /// One AdamW update of every parameter: m = b1 m + (1 - b1) g,
  /// v = b2 v + (1 - b2) g g, w = w * decay - stepSize m / (sqrt(v) *
  /// invSqrtC2 + eps), in f32 in this order (the Trainer's arithmetic).
  struct AdamScalars {
    float b1, b2, stepSize, decay, invSqrtC2, eps;
  };
  virtual llvm::Error adamStep(const AdamScalars &s) = 0;
  /// Downloads the parameters (into the Model's buffers) and the moments.
  virtual llvm::Error optimizerSync(llvm::ArrayRef<float *> m,
                                    llvm::ArrayRef<float *> v) = 0;
  /// optimizerSync, then frees the device moments and leaves the mode.
  virtual llvm::Error optimizerEnd(llvm::ArrayRef<float *> m,
                                   llvm::ArrayRef<float *> v) = 0;

  /// Device bytes by category (weights, adapters, gradients, activations,
  /// workspace; the optimizer stays on the host).
  virtual const MemoryTracker &memory() const = 0;
};

/// Options of loadDeviceExecutor.
struct DeviceOptions {
  /// The variant directory whose kernels/ holds the generated kernels
  /// (mixq-opt --mixq-emit-kernels).
  std::string variantDir;
  /// Directory of the backend shared objects; empty: next to the running
  /// executable, then the build's library directory.
  std::string libraryDir;
  /// Progress lines (kernel compilation) on stderr.
  bool verbose = false;
};

/// Entry point each backend exports (extern "C"): returns a new executor for
/// `model`, or null with `*error` set. `abiVersion` must equal
/// kDeviceAbiVersion.
using CreateDeviceExecutorFn = DeviceExecutor *(*)(int abiVersion, Model *model,
                                                   const DeviceOptions *opts,
                                                   std::string *error);
constexpr int kDeviceAbiVersion = 3;
constexpr const char *kCreateDeviceExecutorSymbol =
    "mixq_create_device_executor";

/// Loads the backend of `kind` (Cuda or CudaEmu) and creates an executor for
/// `model` (errors: backend not found, no CUDA device, unsupported feature,
/// missing kernels).
llvm::Expected<std::unique_ptr<DeviceExecutor>>
loadDeviceExecutor(DeviceKind kind, Model &model, const DeviceOptions &opts);

} // namespace runtime
} // namespace mixq

#endif // MIXQ_RUNTIME_DEVICE_H
