//===- Runtime.cpp - the CUDA runtime API subset of the emulator ----------===//
//
// "Device" memory is host memory (256-byte aligned) tracked in a table, so
// that cudaFree of an unknown pointer and copies or memsets that leave an
// allocation are errors, as they would be (or would fault) on a GPU. Streams
// are synchronous: work is done when the call returns.
//
//===----------------------------------------------------------------------===//

#include "Internal.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <set>

namespace mixq_emu {
namespace detail {
namespace {

std::mutex gMutex;
std::map<uintptr_t, size_t> gDevice; // start -> bytes
std::set<void *> gHost;
std::set<cudaStream_t> gStreams;
std::set<cudaEvent_t> gEvents;
size_t gDeviceBytes = 0;
cudaError_t gSticky = cudaSuccess;
thread_local cudaError_t tLastError = cudaSuccess;
int gDevice0 = 0;

size_t totalGlobalMem() {
  static const size_t total = [] {
    size_t mib = 16 * 1024;
    if (const char *s = std::getenv("MIXQ_EMU_GLOBAL_MEM_MIB"))
      mib = std::strtoull(s, nullptr, 10);
    return mib * 1024 * 1024;
  }();
  return total;
}

bool inDeviceLocked(const void *p, size_t bytes) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  auto it = gDevice.upper_bound(a);
  if (it == gDevice.begin())
    return false;
  --it;
  return a >= it->first && a + bytes <= it->first + it->second &&
         a + bytes >= a;
}

} // namespace

bool poisonAllocations() {
  static const bool poison = [] {
    const char *s = std::getenv("MIXQ_EMU_POISON");
    return !s || std::strcmp(s, "0") != 0;
  }();
  return poison;
}

cudaError_t setLastError(cudaError_t e) {
  if (e != cudaSuccess)
    tLastError = e;
  return e;
}

void setStickyError(cudaError_t e) {
  std::lock_guard<std::mutex> lock(gMutex);
  gSticky = e;
}

cudaError_t stickyError() {
  std::lock_guard<std::mutex> lock(gMutex);
  return gSticky;
}

bool validStream(cudaStream_t stream) {
  if (!stream)
    return true;
  std::lock_guard<std::mutex> lock(gMutex);
  return gStreams.count(stream) != 0;
}

} // namespace detail

bool isDeviceRange(const void *p, size_t bytes) {
  std::lock_guard<std::mutex> lock(detail::gMutex);
  return detail::inDeviceLocked(p, bytes);
}

size_t deviceBytesInUse() {
  std::lock_guard<std::mutex> lock(detail::gMutex);
  return detail::gDeviceBytes;
}

} // namespace mixq_emu

using namespace mixq_emu::detail;

struct CUstream_st {
  int unused;
};
struct CUevent_st {
  std::chrono::steady_clock::time_point when;
  bool recorded;
};

#define MIXQ_RETURN_STICKY()                                                   \
  do {                                                                         \
    if (cudaError_t sticky = stickyError())                                    \
      return setLastError(sticky);                                             \
  } while (0)

extern "C" {

const char *cudaGetErrorName(cudaError_t e) {
  switch (e) {
  case cudaSuccess:
    return "cudaSuccess";
  case cudaErrorInvalidValue:
    return "cudaErrorInvalidValue";
  case cudaErrorMemoryAllocation:
    return "cudaErrorMemoryAllocation";
  case cudaErrorInitializationError:
    return "cudaErrorInitializationError";
  case cudaErrorLaunchFailure:
    return "cudaErrorLaunchFailure";
  case cudaErrorInvalidConfiguration:
    return "cudaErrorInvalidConfiguration";
  case cudaErrorInvalidDevice:
    return "cudaErrorInvalidDevice";
  case cudaErrorNoDevice:
    return "cudaErrorNoDevice";
  case cudaErrorInvalidResourceHandle:
    return "cudaErrorInvalidResourceHandle";
  case cudaErrorNotReady:
    return "cudaErrorNotReady";
  case cudaErrorNotSupported:
    return "cudaErrorNotSupported";
  case cudaErrorUnknown:
    return "cudaErrorUnknown";
  }
  return "unrecognized error code";
}

const char *cudaGetErrorString(cudaError_t e) {
  switch (e) {
  case cudaSuccess:
    return "no error";
  case cudaErrorInvalidValue:
    return "invalid argument";
  case cudaErrorMemoryAllocation:
    return "out of memory";
  case cudaErrorInitializationError:
    return "initialization error";
  case cudaErrorLaunchFailure:
    return "unspecified launch failure";
  case cudaErrorInvalidConfiguration:
    return "invalid configuration argument";
  case cudaErrorInvalidDevice:
    return "invalid device ordinal";
  case cudaErrorNoDevice:
    return "no CUDA-capable device is detected";
  case cudaErrorInvalidResourceHandle:
    return "invalid resource handle";
  case cudaErrorNotReady:
    return "device not ready";
  case cudaErrorNotSupported:
    return "operation not supported";
  case cudaErrorUnknown:
    return "unknown error";
  }
  return "unrecognized error code";
}

cudaError_t cudaGetLastError(void) {
  cudaError_t e = tLastError;
  tLastError = cudaSuccess;
  if (e == cudaSuccess)
    e = stickyError();
  return e;
}

cudaError_t cudaPeekAtLastError(void) {
  return tLastError != cudaSuccess ? tLastError : stickyError();
}

cudaError_t cudaMalloc(void **devPtr, size_t size) {
  MIXQ_RETURN_STICKY();
  if (!devPtr)
    return setLastError(cudaErrorInvalidValue);
  *devPtr = nullptr;
  if (size == 0)
    return cudaSuccess;
  std::lock_guard<std::mutex> lock(gMutex);
  if (size > totalGlobalMem() - gDeviceBytes)
    return setLastError(cudaErrorMemoryAllocation);
  // Exactly `size` bytes, 256-aligned like cudaMalloc: a sanitizer or a
  // memory checker then sees an access one past the end.
  void *p = nullptr;
  if (posix_memalign(&p, 256, size) != 0 || !p)
    return setLastError(cudaErrorMemoryAllocation);
  // A GPU does not zero new allocations: fill them with 0xff bytes (NaN as
  // float, -1 as int) so that a kernel reading memory nobody wrote shows
  // (MIXQ_EMU_POISON=0 turns it off).
  if (poisonAllocations())
    std::memset(p, 0xff, size);
  gDevice[reinterpret_cast<uintptr_t>(p)] = size;
  gDeviceBytes += size;
  *devPtr = p;
  return cudaSuccess;
}

cudaError_t cudaFree(void *devPtr) {
  if (!devPtr)
    return cudaSuccess;
  std::lock_guard<std::mutex> lock(gMutex);
  auto it = gDevice.find(reinterpret_cast<uintptr_t>(devPtr));
  if (it == gDevice.end())
    return setLastError(cudaErrorInvalidValue);
  gDeviceBytes -= it->second;
  gDevice.erase(it);
  std::free(devPtr);
  return cudaSuccess;
}

cudaError_t cudaMallocHost(void **ptr, size_t size) {
  MIXQ_RETURN_STICKY();
  if (!ptr)
    return setLastError(cudaErrorInvalidValue);
  void *p = std::aligned_alloc(256, (size + 255) / 256 * 256 + 256);
  if (!p)
    return setLastError(cudaErrorMemoryAllocation);
  std::lock_guard<std::mutex> lock(gMutex);
  gHost.insert(p);
  *ptr = p;
  return cudaSuccess;
}

cudaError_t cudaFreeHost(void *ptr) {
  if (!ptr)
    return cudaSuccess;
  std::lock_guard<std::mutex> lock(gMutex);
  if (!gHost.erase(ptr))
    return setLastError(cudaErrorInvalidValue);
  std::free(ptr);
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t count,
                       enum cudaMemcpyKind kind) {
  MIXQ_RETURN_STICKY();
  if (count == 0)
    return cudaSuccess;
  if (!dst || !src || kind < cudaMemcpyHostToHost || kind > cudaMemcpyDefault)
    return setLastError(cudaErrorInvalidValue);
  {
    std::lock_guard<std::mutex> lock(gMutex);
    const bool dstDevice =
        kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    const bool srcDevice =
        kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    // A device side outside every allocation would fault on a GPU.
    if ((dstDevice && !inDeviceLocked(dst, count)) ||
        (srcDevice && !inDeviceLocked(src, count)))
      return setLastError(cudaErrorInvalidValue);
  }
  std::memmove(dst, src, count);
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t count,
                            enum cudaMemcpyKind kind, cudaStream_t stream) {
  if (!validStream(stream))
    return setLastError(cudaErrorInvalidResourceHandle);
  return cudaMemcpy(dst, src, count, kind);
}

cudaError_t cudaMemset(void *devPtr, int value, size_t count) {
  MIXQ_RETURN_STICKY();
  if (count == 0)
    return cudaSuccess;
  {
    std::lock_guard<std::mutex> lock(gMutex);
    if (!devPtr || !inDeviceLocked(devPtr, count))
      return setLastError(cudaErrorInvalidValue);
  }
  std::memset(devPtr, value, count);
  return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *devPtr, int value, size_t count,
                            cudaStream_t stream) {
  if (!validStream(stream))
    return setLastError(cudaErrorInvalidResourceHandle);
  return cudaMemset(devPtr, value, count);
}

cudaError_t cudaStreamCreate(cudaStream_t *stream) {
  MIXQ_RETURN_STICKY();
  if (!stream)
    return setLastError(cudaErrorInvalidValue);
  cudaStream_t s = new CUstream_st{0};
  std::lock_guard<std::mutex> lock(gMutex);
  gStreams.insert(s);
  *stream = s;
  return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  std::lock_guard<std::mutex> lock(gMutex);
  if (!stream || !gStreams.erase(stream))
    return setLastError(cudaErrorInvalidResourceHandle);
  delete stream;
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  if (!validStream(stream))
    return setLastError(cudaErrorInvalidResourceHandle);
  MIXQ_RETURN_STICKY();
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) {
  MIXQ_RETURN_STICKY();
  return cudaSuccess;
}

cudaError_t cudaDeviceReset(void) {
  std::lock_guard<std::mutex> lock(gMutex);
  for (auto &a : gDevice)
    std::free(reinterpret_cast<void *>(a.first));
  gDevice.clear();
  gDeviceBytes = 0;
  gSticky = cudaSuccess;
  tLastError = cudaSuccess;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceCount(int *count) {
  if (!count)
    return setLastError(cudaErrorInvalidValue);
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
  if (device != 0)
    return setLastError(cudaErrorInvalidDevice);
  gDevice0 = device;
  return cudaSuccess;
}

cudaError_t cudaGetDevice(int *device) {
  if (!device)
    return setLastError(cudaErrorInvalidValue);
  *device = gDevice0;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *prop, int device) {
  if (!prop)
    return setLastError(cudaErrorInvalidValue);
  if (device != 0)
    return setLastError(cudaErrorInvalidDevice);
  std::memset(prop, 0, sizeof *prop);
  std::snprintf(prop->name, sizeof prop->name, "MixQ CUDA emulator (CPU)");
  prop->totalGlobalMem = totalGlobalMem();
  prop->sharedMemPerBlock = 48 * 1024;
  prop->sharedMemPerBlockOptin = 48 * 1024;
  prop->regsPerBlock = 65536;
  prop->warpSize = 32;
  prop->maxThreadsPerBlock = 1024;
  prop->maxThreadsDim[0] = 1024;
  prop->maxThreadsDim[1] = 1024;
  prop->maxThreadsDim[2] = 64;
  prop->maxGridSize[0] = 2147483647;
  prop->maxGridSize[1] = 65535;
  prop->maxGridSize[2] = 65535;
  prop->major = 9;
  prop->minor = 0;
  prop->multiProcessorCount = 1;
  prop->clockRate = 1000000;
  prop->memoryBusWidth = 64;
  return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t *free, size_t *total) {
  if (!free || !total)
    return setLastError(cudaErrorInvalidValue);
  std::lock_guard<std::mutex> lock(gMutex);
  *total = totalGlobalMem();
  *free = *total - gDeviceBytes;
  return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t *event) {
  if (!event)
    return setLastError(cudaErrorInvalidValue);
  cudaEvent_t e = new CUevent_st{{}, false};
  std::lock_guard<std::mutex> lock(gMutex);
  gEvents.insert(e);
  *event = e;
  return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
  std::lock_guard<std::mutex> lock(gMutex);
  if (!event || !gEvents.erase(event))
    return setLastError(cudaErrorInvalidResourceHandle);
  delete event;
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  if (!validStream(stream))
    return setLastError(cudaErrorInvalidResourceHandle);
  std::lock_guard<std::mutex> lock(gMutex);
  if (!event || !gEvents.count(event))
    return setLastError(cudaErrorInvalidResourceHandle);
  event->when = std::chrono::steady_clock::now();
  event->recorded = true;
  return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  std::lock_guard<std::mutex> lock(gMutex);
  if (!event || !gEvents.count(event))
    return setLastError(cudaErrorInvalidResourceHandle);
  return cudaSuccess;
}

cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start,
                                 cudaEvent_t end) {
  if (!ms)
    return setLastError(cudaErrorInvalidValue);
  std::lock_guard<std::mutex> lock(gMutex);
  if (!start || !end || !gEvents.count(start) || !gEvents.count(end))
    return setLastError(cudaErrorInvalidResourceHandle);
  if (!start->recorded || !end->recorded)
    return setLastError(cudaErrorInvalidResourceHandle);
  *ms =
      std::chrono::duration<float, std::milli>(end->when - start->when).count();
  return cudaSuccess;
}

} // extern "C"
