//===- DeviceLoader.cpp - finding and loading a device backend -----------===//
//
// Part of MixQRuntime (linked by mixq-run): dlopens libMixQCudaExec.so or
// libMixQCudaExecEmu.so (Device.h), so mixq-run itself needs no CUDA.
//
//===----------------------------------------------------------------------===//

#include "mixq/Runtime/Device.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/Path.h"

#include <dlfcn.h>

using namespace llvm;

namespace mixq {
namespace runtime {

Expected<DeviceKind> parseDeviceKind(StringRef s) {
  if (s == "cpu")
    return DeviceKind::CPU;
  if (s == "cuda")
    return DeviceKind::Cuda;
  if (s == "cuda-emu")
    return DeviceKind::CudaEmu;
  return createStringError(inconvertibleErrorCode(),
                           "unknown device '%s' (expected cpu, cuda or "
                           "cuda-emu)",
                           s.str().c_str());
}

const char *deviceKindName(DeviceKind k) {
  switch (k) {
  case DeviceKind::CPU:
    return "cpu";
  case DeviceKind::Cuda:
    return "cuda";
  case DeviceKind::CudaEmu:
    return "cuda-emu";
  }
  return "?";
}

/// Anchor for getMainExecutable.
static int anchor;

Expected<std::unique_ptr<DeviceExecutor>>
loadDeviceExecutor(DeviceKind kind, Model &model, const DeviceOptions &opts) {
  if (kind == DeviceKind::CPU)
    return createStringError(inconvertibleErrorCode(),
                             "the cpu device runs without an executor");
  const char *file =
      kind == DeviceKind::Cuda ? "libMixQCudaExec.so" : "libMixQCudaExecEmu.so";
  std::vector<std::string> dirs;
  if (!opts.libraryDir.empty())
    dirs.push_back(opts.libraryDir);
  std::string exe = sys::fs::getMainExecutable(nullptr, &anchor);
  if (!exe.empty()) {
    SmallString<256> dir(exe);
    sys::path::remove_filename(dir);
    dirs.push_back(dir.str().str());
    SmallString<256> lib(dir);
    sys::path::append(lib, "..", "lib");
    dirs.push_back(lib.str().str());
  }
  dirs.push_back(MIXQ_DEVICE_LIBRARY_DIR);
  std::string tried;
  for (const std::string &d : dirs) {
    SmallString<256> path(d);
    sys::path::append(path, file);
    tried += (tried.empty() ? "" : ", ") + path.str().str();
    if (!sys::fs::exists(path))
      continue;
    void *h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h)
      return createStringError(inconvertibleErrorCode(),
                               "cannot load the %s backend '%s': %s",
                               deviceKindName(kind), path.c_str(), dlerror());
    auto create = reinterpret_cast<CreateDeviceExecutorFn>(
        dlsym(h, kCreateDeviceExecutorSymbol));
    if (!create)
      return createStringError(inconvertibleErrorCode(),
                               "'%s' does not export %s", path.c_str(),
                               kCreateDeviceExecutorSymbol);
    // The backend stays loaded for the life of the process (its executor's
    // code must outlive the executor).
    std::string error;
    DeviceExecutor *exec = create(kDeviceAbiVersion, &model, &opts, &error);
    if (!exec)
      return createStringError(inconvertibleErrorCode(), error);
    return std::unique_ptr<DeviceExecutor>(exec);
  }
  return createStringError(
      inconvertibleErrorCode(),
      formatv("--device {0}: backend {1} not found (tried {2}){3}",
              deviceKindName(kind), file, tried,
              kind == DeviceKind::Cuda
                  ? "; it is built only where the CUDA toolkit (nvcc) is "
                    "installed"
                  : "")
          .str());
}

} // namespace runtime
} // namespace mixq
