//===- mixq_cuda_emu.h - the CPU emulator's device and runtime core -*- C++
//-*-===//
//
// Internal header of the CUDA CPU emulator (docs/cuda.md, "Emulator"); the
// drop-in <cuda_runtime.h>, <cuda_bf16.h>, <cuda_fp16.h>, <mma.h> and
// <cublas_v2.h> of this directory include it. A .cu file is compiled for the
// emulator as C++ (-x c++ -DMIXQ_CUDA_EMU -I<repo>/cudaemu/include) and linked
// against libMixQCudaEmu.so.
//
// Execution model: a launch runs the blocks of its grid one after another;
// the threads of a block are cooperative fibers on one OS thread that switch
// only at __syncthreads and at warp-collective operations (shuffles, votes,
// __syncwarp). `__shared__` variables are `static`: one copy, which is the
// block's, since only one block runs at a time. Launches are serialised by a
// process-wide lock.
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_CUDA_EMU_H
#define MIXQ_CUDA_EMU_H

#ifndef MIXQ_CUDA_EMU
#error "the CUDA emulator headers need -DMIXQ_CUDA_EMU (see docs/cuda.md)"
#endif

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

//===----------------------------------------------------------------------===//
// Qualifiers
//===----------------------------------------------------------------------===//

#define __global__
#define __device__
#define __host__
#define __shared__ static
#define __constant__ static
#define __forceinline__ inline
// __noinline__ is not defined: libstdc++ spells __attribute__((__noinline__))
// itself, which a macro would break. Use __attribute__((noinline)).
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __CUDA_EMU__ 1

// CUDA sources say `#pragma unroll`, which GCC does not know; the warning
// would fire in every kernel file compiled for the emulator.
#pragma GCC diagnostic ignored "-Wunknown-pragmas"

//===----------------------------------------------------------------------===//
// Vector types and the built-in variables
//===----------------------------------------------------------------------===//

struct uint3 {
  unsigned x, y, z;
};
struct int2 {
  int x, y;
};
struct int4 {
  int x, y, z, w;
};
struct float2 {
  float x, y;
};
struct float4 {
  float x, y, z, w;
};
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) {
  return {x, y, z, w};
}
inline int2 make_int2(int x, int y) { return {x, y}; }

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1)
      : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
  constexpr operator uint3() const { return uint3{x, y, z}; }
};

enum cudaError {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInitializationError = 3,
  cudaErrorLaunchFailure = 4,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevice = 101,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorNotReady = 600,
  cudaErrorNotSupported = 801,
  cudaErrorUnknown = 999,
};
typedef enum cudaError cudaError_t;

struct CUstream_st;
typedef CUstream_st *cudaStream_t;

extern "C" cudaError_t cudaGetLastError(void);

namespace mixq_emu {
namespace detail {
// Set by the scheduler before it resumes a fiber.
extern uint3 gThreadIdx;
extern uint3 gBlockIdx;
extern dim3 gBlockDim;
extern dim3 gGridDim;
} // namespace detail
} // namespace mixq_emu

#define threadIdx (::mixq_emu::detail::gThreadIdx)
#define blockIdx (::mixq_emu::detail::gBlockIdx)
#define blockDim (::mixq_emu::detail::gBlockDim)
#define gridDim (::mixq_emu::detail::gGridDim)
constexpr int warpSize = 32;

//===----------------------------------------------------------------------===//
// Scheduler entry points (libMixQCudaEmu)
//===----------------------------------------------------------------------===//

namespace mixq_emu {
namespace detail {

/// Warp-collective operations (one rendezvous of the lanes named by mask).
enum WarpOp : int {
  kWarpSync = 0,
  kShflIdx = 1,
  kShflUp = 2,
  kShflDown = 3,
  kShflXor = 4,
  kVoteBallot = 5,
  kVoteAny = 6,
  kVoteAll = 7,
  kActiveMask = 8, ///< every lane of the warp that has not exited
};

void syncthreads();
/// __syncthreads_count: the barrier, then the number of threads of the
/// block whose predicate was non-zero.
int syncthreadsCount(int predicate);
/// __activemask: a rendezvous of the lanes of the calling warp that have
/// not exited (lanes that exit while it waits stop counting); returns them.
/// Lanes that wait elsewhere (a barrier, another warp operation) make it a
/// launch failure, as divergent warp-synchronous code is undefined in CUDA.
unsigned activeMask();
/// The calling lane's result of the warp operation once every lane of
/// `mask` has arrived with the same operation.
uint64_t warpCollective(int op, unsigned mask, uint64_t value, int arg,
                        int width);

/// The calling lane's slot for its next mma_sync result. `*compute` is set
/// when the lane must compute it (the first lane of its warp to get there,
/// or every lane when sharing is off); otherwise the slot already holds the
/// warp's result. Reset at every __syncthreads.
float *wmmaSlot(bool *compute);
/// The WmmaMode below as an int (0 shared, 1 private, 2 verify).
int wmmaMode();
/// Fails the running launch (cudaErrorLaunchFailure) with a message.
[[noreturn]] void failLaunch(const char *message);

typedef void (*KernelThunk)(void *);
cudaError_t checkLaunch(dim3 grid, dim3 block, size_t shmem,
                        cudaStream_t stream);
cudaError_t runGrid(dim3 grid, dim3 block, size_t shmem, KernelThunk thunk,
                    void *closure);

template <typename F> void invokeClosure(void *closure) {
  (*static_cast<F *>(closure))();
}

template <typename T> uint64_t toBits(T v) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value,
                "warp shuffles take values of at most 8 bytes");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  return bits;
}
template <typename T> T fromBits(uint64_t bits) {
  T v;
  std::memcpy(&v, &bits, sizeof(T));
  return v;
}

} // namespace detail

/// The dynamic shared memory of the running block (the launch's shmem
/// bytes); what `extern __shared__ T name[]` names on a GPU. C++ cannot give
/// an `extern` declaration per-launch storage, so emulated sources write
/// MIXQ_DYNAMIC_SHARED(T, name) instead.
void *dynamicShared();

/// Launches kernel(args...) on the emulator: the blocks run one after
/// another, the threads of a block as fibers. Like `kernel<<<...>>>(args...)`
/// followed by cudaGetLastError(): returns (and clears) the last error, so
/// a bad geometry gives cudaErrorInvalidConfiguration and a kernel the
/// emulator stops (barrier misuse, deadlock) cudaErrorLaunchFailure, which
/// stays sticky until cudaDeviceReset.
template <typename... Params, typename... Args>
cudaError_t launch(void (*kernel)(Params...), dim3 grid, dim3 block,
                   size_t shmem, cudaStream_t stream, Args &&...args) {
  static_assert(sizeof...(Params) == sizeof...(Args),
                "kernel launched with the wrong number of arguments");
  if (detail::checkLaunch(grid, block, shmem, stream) != cudaSuccess)
    return cudaGetLastError();
  std::tuple<typename std::decay<Params>::type...> params(
      std::forward<Args>(args)...);
  // Every thread gets its own copy of the parameters (kernels may modify
  // their by-value parameters).
  auto body = [&]() {
    std::tuple<typename std::decay<Params>::type...> copy = params;
    std::apply(kernel, copy);
  };
  detail::runGrid(grid, block, shmem, &detail::invokeClosure<decltype(body)>,
                  &body);
  return cudaGetLastError();
}

/// Scheduling order of the fibers of a block, for tests that look for
/// missing barriers: in thread order (default), reversed, or shuffled anew
/// at every pass with a seed. Also set by the environment variable
/// MIXQ_EMU_SCHEDULE=forward|reverse|shuffle:SEED.
enum class Schedule { Forward, Reverse, Shuffle };
void setSchedule(Schedule s, unsigned seed = 0);

/// How mma_sync is computed: once per warp and shared by its lanes
/// (default), by every lane on its own (Private; what sharing saves), or by
/// every lane and compared with the shared result (Verify: a launch failure
/// when the lanes of a warp passed different fragments). Also set by
/// MIXQ_EMU_WMMA=shared|private|verify.
enum class WmmaMode { Shared = 0, Private = 1, Verify = 2 };
void setWmmaMode(WmmaMode mode);

/// Statistics of the emulator since the last reset (tests, benchmarks;
/// MIXQ_EMU_STATS=1 prints them at exit).
struct Stats {
  uint64_t launches = 0;
  uint64_t blocks = 0;
  uint64_t threads = 0;
  uint64_t switches = 0;    ///< fiber context switches
  uint64_t mmaComputed = 0; ///< mma_sync products computed
  uint64_t mmaShared = 0;   ///< mma_sync results reused from the warp log
};
Stats stats();
void resetStats();

} // namespace mixq_emu

#define MIXQ_DYNAMIC_SHARED(T, name)                                           \
  T *name = static_cast<T *>(::mixq_emu::dynamicShared())

//===----------------------------------------------------------------------===//
// Barriers, warp operations, atomics
//===----------------------------------------------------------------------===//

inline void __syncthreads() { ::mixq_emu::detail::syncthreads(); }
inline int __syncthreads_count(int predicate) {
  return ::mixq_emu::detail::syncthreadsCount(predicate);
}
inline int __syncthreads_and(int predicate) {
  return ::mixq_emu::detail::syncthreadsCount(predicate) ==
         static_cast<int>(blockDim.x * blockDim.y * blockDim.z);
}
inline int __syncthreads_or(int predicate) {
  return ::mixq_emu::detail::syncthreadsCount(predicate) != 0;
}
inline unsigned __activemask() { return ::mixq_emu::detail::activeMask(); }
/// Memory fences: fibers share one address space and switch only at
/// barriers and warp operations, so there is nothing to order.
inline void __threadfence() {}
inline void __threadfence_block() {}
template <typename T> inline T __ldg(const T *p) { return *p; }
inline void __syncwarp(unsigned mask = 0xffffffffu) {
  ::mixq_emu::detail::warpCollective(::mixq_emu::detail::kWarpSync, mask, 0, 0,
                                     32);
}

template <typename T>
inline T __shfl_sync(unsigned mask, T var, int srcLane, int width = 32) {
  using namespace ::mixq_emu::detail;
  return fromBits<T>(
      warpCollective(kShflIdx, mask, toBits(var), srcLane, width));
}
template <typename T>
inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = 32) {
  using namespace ::mixq_emu::detail;
  return fromBits<T>(warpCollective(kShflUp, mask, toBits(var),
                                    static_cast<int>(delta), width));
}
template <typename T>
inline T __shfl_down_sync(unsigned mask, T var, unsigned delta,
                          int width = 32) {
  using namespace ::mixq_emu::detail;
  return fromBits<T>(warpCollective(kShflDown, mask, toBits(var),
                                    static_cast<int>(delta), width));
}
template <typename T>
inline T __shfl_xor_sync(unsigned mask, T var, int laneMask, int width = 32) {
  using namespace ::mixq_emu::detail;
  return fromBits<T>(
      warpCollective(kShflXor, mask, toBits(var), laneMask, width));
}
inline unsigned __ballot_sync(unsigned mask, int pred) {
  using namespace ::mixq_emu::detail;
  return static_cast<unsigned>(
      warpCollective(kVoteBallot, mask, pred != 0, 0, 32));
}
inline int __any_sync(unsigned mask, int pred) {
  using namespace ::mixq_emu::detail;
  return static_cast<int>(warpCollective(kVoteAny, mask, pred != 0, 0, 32));
}
inline int __all_sync(unsigned mask, int pred) {
  using namespace ::mixq_emu::detail;
  return static_cast<int>(warpCollective(kVoteAll, mask, pred != 0, 0, 32));
}

// Atomics: fibers switch only at barriers and warp operations, so plain
// read-modify-write is atomic. Integer arithmetic wraps as on the GPU (done
// in unsigned, no signed overflow).
namespace mixq_emu {
namespace detail {
template <typename T, typename F> inline T readModifyWrite(T *p, F update) {
  T old = *p;
  *p = update(old);
  return old;
}
inline int wrapAdd(int a, int b) {
  return static_cast<int>(static_cast<unsigned>(a) + static_cast<unsigned>(b));
}
inline int wrapSub(int a, int b) {
  return static_cast<int>(static_cast<unsigned>(a) - static_cast<unsigned>(b));
}
} // namespace detail
} // namespace mixq_emu

inline float atomicAdd(float *p, float v) {
  return mixq_emu::detail::readModifyWrite(p, [v](float o) { return o + v; });
}
inline double atomicAdd(double *p, double v) {
  return mixq_emu::detail::readModifyWrite(p, [v](double o) { return o + v; });
}
inline int atomicAdd(int *p, int v) {
  return mixq_emu::detail::readModifyWrite(
      p, [v](int o) { return mixq_emu::detail::wrapAdd(o, v); });
}
inline unsigned atomicAdd(unsigned *p, unsigned v) {
  return mixq_emu::detail::readModifyWrite(p,
                                           [v](unsigned o) { return o + v; });
}
inline unsigned long long atomicAdd(unsigned long long *p,
                                    unsigned long long v) {
  return mixq_emu::detail::readModifyWrite(
      p, [v](unsigned long long o) { return o + v; });
}
inline int atomicSub(int *p, int v) {
  return mixq_emu::detail::readModifyWrite(
      p, [v](int o) { return mixq_emu::detail::wrapSub(o, v); });
}
inline unsigned atomicSub(unsigned *p, unsigned v) {
  return mixq_emu::detail::readModifyWrite(p,
                                           [v](unsigned o) { return o - v; });
}
inline int atomicMax(int *p, int v) {
  return mixq_emu::detail::readModifyWrite(
      p, [v](int o) { return o > v ? o : v; });
}
inline int atomicMin(int *p, int v) {
  return mixq_emu::detail::readModifyWrite(
      p, [v](int o) { return o < v ? o : v; });
}
inline int atomicCAS(int *p, int compare, int v) {
  return mixq_emu::detail::readModifyWrite(
      p, [=](int o) { return o == compare ? v : o; });
}
inline unsigned long long atomicCAS(unsigned long long *p,
                                    unsigned long long compare,
                                    unsigned long long v) {
  return mixq_emu::detail::readModifyWrite(
      p, [=](unsigned long long o) { return o == compare ? v : o; });
}
inline int atomicExch(int *p, int v) {
  return mixq_emu::detail::readModifyWrite(p, [v](int) { return v; });
}
inline float atomicExch(float *p, float v) {
  return mixq_emu::detail::readModifyWrite(p, [v](float) { return v; });
}

//===----------------------------------------------------------------------===//
// Math (the device spellings; IEEE single precision on the host)
//===----------------------------------------------------------------------===//

inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline float __fsqrt_rn(float a) { return sqrtf(a); }
inline float rsqrtf(float a) { return 1.0f / sqrtf(a); }
inline int __float_as_int(float f) {
  return ::mixq_emu::detail::fromBits<int>(::mixq_emu::detail::toBits(f));
}
inline float __int_as_float(int i) {
  return ::mixq_emu::detail::fromBits<float>(::mixq_emu::detail::toBits(i));
}
inline unsigned __float_as_uint(float f) {
  return ::mixq_emu::detail::fromBits<unsigned>(::mixq_emu::detail::toBits(f));
}
inline float __uint_as_float(unsigned u) {
  return ::mixq_emu::detail::fromBits<float>(::mixq_emu::detail::toBits(u));
}
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }

//===----------------------------------------------------------------------===//
// Runtime API (the supported subset; docs/cuda.md)
//===----------------------------------------------------------------------===//

enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};

struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  size_t sharedMemPerBlock;
  int regsPerBlock;
  int warpSize;
  int maxThreadsPerBlock;
  int maxThreadsDim[3];
  int maxGridSize[3];
  int major;
  int minor;
  int multiProcessorCount;
  size_t sharedMemPerBlockOptin;
  int clockRate;
  int memoryBusWidth;
};

struct CUevent_st;
typedef CUevent_st *cudaEvent_t;

extern "C" {
const char *cudaGetErrorString(cudaError_t error);
const char *cudaGetErrorName(cudaError_t error);
cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
cudaError_t cudaMalloc(void **devPtr, size_t size);
cudaError_t cudaFree(void *devPtr);
cudaError_t cudaMallocHost(void **ptr, size_t size);
cudaError_t cudaFreeHost(void *ptr);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t count,
                       enum cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t count,
                            enum cudaMemcpyKind kind, cudaStream_t stream);
cudaError_t cudaMemset(void *devPtr, int value, size_t count);
cudaError_t cudaMemsetAsync(void *devPtr, int value, size_t count,
                            cudaStream_t stream);
cudaError_t cudaStreamCreate(cudaStream_t *stream);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaDeviceReset(void);
cudaError_t cudaGetDeviceCount(int *count);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDevice(int *device);
cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *prop, int device);
cudaError_t cudaMemGetInfo(size_t *free, size_t *total);
cudaError_t cudaEventCreate(cudaEvent_t *event);
cudaError_t cudaEventDestroy(cudaEvent_t event);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream);
cudaError_t cudaEventSynchronize(cudaEvent_t event);
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end);
}

template <typename T> inline cudaError_t cudaMalloc(T **devPtr, size_t size) {
  return cudaMalloc(reinterpret_cast<void **>(devPtr), size);
}
template <typename T> inline cudaError_t cudaMallocHost(T **ptr, size_t size) {
  return cudaMallocHost(reinterpret_cast<void **>(ptr), size);
}

namespace mixq_emu {
/// Whether [p, p + bytes) lies inside one cudaMalloc allocation.
bool isDeviceRange(const void *p, size_t bytes);
/// Bytes currently allocated with cudaMalloc.
size_t deviceBytesInUse();
} // namespace mixq_emu

#endif // MIXQ_CUDA_EMU_H
