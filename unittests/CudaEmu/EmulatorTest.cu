//===- EmulatorTest.cu - the CUDA CPU emulator ----------------------------===//
//
// CUDA source compiled as C++ against cudaemu/include and run on the
// emulator: scheduling, barriers, warp operations, atomics, wmma, bf16/fp16
// conversions, the runtime API and the cuBLAS subset.
//
//===----------------------------------------------------------------------===//

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include "gtest/gtest.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

/// Device buffer of n T's, filled from / read back to host vectors.
template <typename T> struct DeviceBuffer {
  T *p = nullptr;
  size_t n = 0;
  explicit DeviceBuffer(size_t count) : n(count) {
    EXPECT_EQ(cudaMalloc(&p, n * sizeof(T)), cudaSuccess);
  }
  explicit DeviceBuffer(const std::vector<T> &v) : DeviceBuffer(v.size()) {
    EXPECT_EQ(cudaMemcpy(p, v.data(), n * sizeof(T), cudaMemcpyHostToDevice),
              cudaSuccess);
  }
  ~DeviceBuffer() { EXPECT_EQ(cudaFree(p), cudaSuccess); }
  std::vector<T> read() const {
    std::vector<T> v(n);
    EXPECT_EQ(cudaMemcpy(v.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost),
              cudaSuccess);
    return v;
  }
};

class CudaEmu : public ::testing::Test {
protected:
  void SetUp() override {
    ASSERT_EQ(cudaDeviceReset(), cudaSuccess);
    mixq_emu::setSchedule(mixq_emu::Schedule::Forward);
  }
  void TearDown() override {
    mixq_emu::setSchedule(mixq_emu::Schedule::Forward);
    cudaDeviceReset();
  }
};

//===----------------------------------------------------------------------===//
// Barriers
//===----------------------------------------------------------------------===//

/// Block-wide tree reduction in shared memory; `withBarriers` false drops
/// the __syncthreads the reduction needs.
__global__ void reduceKernel(const float *in, float *out, bool withBarriers) {
  __shared__ float s[256];
  s[threadIdx.x] = in[blockIdx.x * blockDim.x + threadIdx.x];
  if (withBarriers)
    __syncthreads();
  for (unsigned stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride)
      s[threadIdx.x] += s[threadIdx.x + stride];
    if (withBarriers)
      __syncthreads();
  }
  if (threadIdx.x == 0)
    out[blockIdx.x] = s[0];
}

std::vector<float> reduceOnEmulator(const std::vector<float> &in,
                                    unsigned blocks, bool withBarriers) {
  DeviceBuffer<float> din(in), dout(blocks);
  EXPECT_EQ(mixq_emu::launch(reduceKernel, dim3(blocks), dim3(256), 0, nullptr,
                             din.p, dout.p, withBarriers),
            cudaSuccess);
  return dout.read();
}

TEST_F(CudaEmu, BlockReductionWithBarriersIsExact) {
  // Small integers: every summation order gives the same float.
  std::vector<float> in(3 * 256);
  for (size_t i = 0; i < in.size(); ++i)
    in[i] = static_cast<float>(i % 7);
  for (mixq_emu::Schedule s :
       {mixq_emu::Schedule::Forward, mixq_emu::Schedule::Reverse,
        mixq_emu::Schedule::Shuffle}) {
    mixq_emu::setSchedule(s, 42);
    std::vector<float> out = reduceOnEmulator(in, 3, true);
    for (unsigned b = 0; b < 3; ++b) {
      float expect = 0;
      for (unsigned t = 0; t < 256; ++t)
        expect += in[b * 256 + t];
      EXPECT_EQ(out[b], expect) << "block " << b;
    }
  }
}

// Without its barriers the reduction reads partial sums before they are
// written. Thread order (thread 0 first) and a shuffled order expose that;
// the reverse order happens to run every producer before its consumer, so
// for this pattern it computes the right sum. Each run uses new input values
// so that the shared array left by the previous launch cannot supply the
// right partial sums.
TEST_F(CudaEmu, MissingBarrierGivesWrongSumInForwardAndShuffledOrder) {
  struct Case {
    mixq_emu::Schedule schedule;
    bool caught;
  } cases[] = {{mixq_emu::Schedule::Forward, true},
               {mixq_emu::Schedule::Shuffle, true},
               {mixq_emu::Schedule::Reverse, false}};
  float value = 1.0f;
  for (const Case &c : cases) {
    value += 1.0f;
    mixq_emu::setSchedule(c.schedule, 7);
    std::vector<float> in(256, value);
    EXPECT_EQ(reduceOnEmulator(in, 1, true)[0], 256.0f * value);
    value += 1.0f;
    std::fill(in.begin(), in.end(), value);
    const float noBarrier = reduceOnEmulator(in, 1, false)[0];
    if (c.caught)
      EXPECT_NE(noBarrier, 256.0f * value)
          << "schedule " << static_cast<int>(c.schedule);
    else
      EXPECT_EQ(noBarrier, 256.0f * value)
          << "schedule " << static_cast<int>(c.schedule);
  }
}

/// out[i] = in[i] + in[i - 1] through shared memory; `withBarrier` false
/// drops the barrier between the write and the neighbour's read.
__global__ void neighbourKernel(const float *in, float *out, bool withBarrier) {
  __shared__ float s[128];
  const unsigned t = threadIdx.x;
  s[t] = in[t];
  if (withBarrier)
    __syncthreads();
  out[t] = s[t] + (t > 0 ? s[t - 1] : 0.0f);
}

// The opposite pattern: thread order runs every producer (t - 1) before its
// consumer and hides the missing barrier; the reverse order catches it.
TEST_F(CudaEmu, MissingBarrierBeforeNeighbourReadCaughtInReverseOrder) {
  float value = 10.0f;
  for (mixq_emu::Schedule schedule :
       {mixq_emu::Schedule::Forward, mixq_emu::Schedule::Reverse}) {
    for (bool withBarrier : {true, false}) {
      value += 1.0f;
      std::vector<float> in(128, value);
      DeviceBuffer<float> din(in), dout(128);
      mixq_emu::setSchedule(schedule);
      ASSERT_EQ(mixq_emu::launch(neighbourKernel, dim3(1), dim3(128), 0,
                                 nullptr, din.p, dout.p, withBarrier),
                cudaSuccess);
      std::vector<float> out = dout.read();
      int wrong = 0;
      for (int t = 1; t < 128; ++t)
        wrong += out[t] != 2.0f * value;
      const bool expectWrong =
          !withBarrier && schedule == mixq_emu::Schedule::Reverse;
      if (expectWrong)
        EXPECT_EQ(wrong, 127);
      else
        EXPECT_EQ(wrong, 0) << "schedule " << static_cast<int>(schedule)
                            << " barrier " << withBarrier;
    }
  }
}

__global__ void barrierVoteKernel(int *out) {
  const int t = threadIdx.x;
  const int count = __syncthreads_count(t % 3 == 0);
  const int all = __syncthreads_and(t < 1000);
  const int any = __syncthreads_or(t == 77);
  const int none = __syncthreads_or(0);
  // A second count right after the first: each reads its own barrier's.
  const int count2 = __syncthreads_count(t < 10);
  out[5 * t] = count;
  out[5 * t + 1] = all;
  out[5 * t + 2] = any;
  out[5 * t + 3] = none;
  out[5 * t + 4] = count2;
}

TEST_F(CudaEmu, BarrierPredicatesCountTheBlock) {
  for (mixq_emu::Schedule s :
       {mixq_emu::Schedule::Forward, mixq_emu::Schedule::Shuffle}) {
    mixq_emu::setSchedule(s, 11);
    DeviceBuffer<int> d(5 * 200);
    ASSERT_EQ(mixq_emu::launch(barrierVoteKernel, dim3(1), dim3(200), 0,
                               nullptr, d.p),
              cudaSuccess);
    std::vector<int> out = d.read();
    for (int t = 0; t < 200; ++t) {
      EXPECT_EQ(out[5 * t], 67) << t;
      EXPECT_EQ(out[5 * t + 1], 1) << t;
      EXPECT_EQ(out[5 * t + 2], 1) << t;
      EXPECT_EQ(out[5 * t + 3], 0) << t;
      EXPECT_EQ(out[5 * t + 4], 10) << t;
    }
  }
}

__global__ void activeMaskKernel(unsigned *out) {
  if (threadIdx.x == 3 || threadIdx.x == 40)
    return;
  __syncwarp(__activemask());
  out[threadIdx.x] = __activemask();
}

TEST_F(CudaEmu, ActiveMaskLeavesOutExitedAndMissingLanes) {
  DeviceBuffer<unsigned> d(std::vector<unsigned>(48, 0));
  // Lane 0 asks before lane 3 has run; __activemask waits until every lane
  // has either asked or exited. 48 threads: the second warp has lanes
  // 0..15, lane 8 of it exits.
  ASSERT_EQ(
      mixq_emu::launch(activeMaskKernel, dim3(1), dim3(48), 0, nullptr, d.p),
      cudaSuccess);
  std::vector<unsigned> out = d.read();
  EXPECT_EQ(out[0], 0xffffffffu & ~(1u << 3));
  EXPECT_EQ(out[41], 0x0000ffffu & ~(1u << 8));
}

//===----------------------------------------------------------------------===//
// Warp shuffles
//===----------------------------------------------------------------------===//

__global__ void warpSumKernel(const float *in, float *out) {
  float v = in[threadIdx.x];
  for (int offset = 16; offset > 0; offset /= 2)
    v += __shfl_xor_sync(0xffffffffu, v, offset);
  out[threadIdx.x] = v;
}

TEST_F(CudaEmu, ShuffleXorReductionGivesEveryLaneTheSum) {
  std::vector<float> in(64);
  for (int i = 0; i < 64; ++i)
    in[i] = static_cast<float>(i);
  DeviceBuffer<float> din(in), dout(64);
  ASSERT_EQ(mixq_emu::launch(warpSumKernel, dim3(1), dim3(64), 0, nullptr,
                             din.p, dout.p),
            cudaSuccess);
  std::vector<float> out = dout.read();
  for (int i = 0; i < 64; ++i)
    EXPECT_EQ(out[i], i < 32 ? 496.0f : 1520.0f) << "thread " << i;
}

__global__ void emptyKernelForReset() {}

/// Every shuffle flavour and vote; lane-dependent inputs, 64 threads.
struct ShuffleOut {
  int idx;         // __shfl_sync(v, (lane + 3) % 32)
  int up;          // __shfl_up_sync(v, 2)
  int down;        // __shfl_down_sync(v, 5)
  float xor8;      // __shfl_xor_sync(f, 5, width 8)
  unsigned idx16;  // __shfl_sync(u, 17, width 16)
  unsigned ballot; // lanes with lane % 3 == 0
  int any;         // lane == 31 somewhere
  int all;         // every lane != 4
  long long wide;  // 8-byte value, __shfl_down_sync(..., 1)
};

__global__ void shuffleKernel(ShuffleOut *out) {
  const int t = threadIdx.x;
  const int lane = t % 32;
  const int v = 100 * t + 7;
  ShuffleOut o;
  o.idx = __shfl_sync(0xffffffffu, v, (lane + 3) % 32);
  o.up = __shfl_up_sync(0xffffffffu, v, 2);
  o.down = __shfl_down_sync(0xffffffffu, v, 5);
  o.xor8 = __shfl_xor_sync(0xffffffffu, 0.5f * t, 5, 8);
  o.idx16 = __shfl_sync(0xffffffffu, static_cast<unsigned>(t) * 3u, 17, 16);
  o.ballot = __ballot_sync(0xffffffffu, lane % 3 == 0);
  o.any = __any_sync(0xffffffffu, lane == 31);
  o.all = __all_sync(0xffffffffu, lane != 4);
  o.wide = __shfl_down_sync(0xffffffffu, (1LL << 40) + t, 1);
  __syncwarp();
  out[t] = o;
}

TEST_F(CudaEmu, ShufflesAndVotesFollowCudaSemantics) {
  DeviceBuffer<ShuffleOut> d(64);
  ASSERT_EQ(mixq_emu::launch(shuffleKernel, dim3(1), dim3(64), 0, nullptr, d.p),
            cudaSuccess);
  std::vector<ShuffleOut> out = d.read();
  unsigned ballot = 0;
  for (int l = 0; l < 32; l += 3)
    ballot |= 1u << l;
  for (int t = 0; t < 64; ++t) {
    const int lane = t % 32, base = t - lane;
    auto v = [&](int l) { return 100 * (base + l) + 7; };
    EXPECT_EQ(out[t].idx, v((lane + 3) % 32)) << t;
    EXPECT_EQ(out[t].up, lane >= 2 ? v(lane - 2) : v(lane)) << t;
    EXPECT_EQ(out[t].down, lane + 5 < 32 ? v(lane + 5) : v(lane)) << t;
    // width 8: lane ^ 5 stays within the lane's group of 8.
    EXPECT_EQ(out[t].xor8, 0.5f * (base + (lane ^ 5))) << t;
    // width 16, source 17 -> lane 1 of the lane's group of 16.
    EXPECT_EQ(out[t].idx16, 3u * (base + lane / 16 * 16 + 1)) << t;
    EXPECT_EQ(out[t].ballot, ballot) << t;
    EXPECT_EQ(out[t].any, 1) << t;
    EXPECT_EQ(out[t].all, 0) << t;
    EXPECT_EQ(out[t].wide, (1LL << 40) + (lane < 31 ? t + 1 : t)) << t;
  }
}

/// Lanes 0-15 reduce among themselves with a half-warp mask while lanes
/// 16-31 do something else.
__global__ void halfWarpKernel(int *out) {
  const int lane = threadIdx.x;
  if (lane < 16) {
    int v = lane;
    for (int o = 8; o > 0; o /= 2)
      v += __shfl_xor_sync(0x0000ffffu, v, o);
    out[lane] = v;
  } else {
    out[lane] = -lane;
  }
}

TEST_F(CudaEmu, HalfWarpMaskShufflesAmongItsLanes) {
  DeviceBuffer<int> d(32);
  ASSERT_EQ(
      mixq_emu::launch(halfWarpKernel, dim3(1), dim3(32), 0, nullptr, d.p),
      cudaSuccess);
  std::vector<int> out = d.read();
  for (int l = 0; l < 32; ++l)
    EXPECT_EQ(out[l], l < 16 ? 120 : -l) << l;
}

//===----------------------------------------------------------------------===//
// Launch failures: undefined synchronisation is reported, not hung
//===----------------------------------------------------------------------===//

/// Threads with an odd index leave before the barrier the others wait at.
__global__ void exitBeforeBarrierKernel(int *out) {
  if (threadIdx.x % 2)
    return;
  __syncthreads();
  out[threadIdx.x] = 1;
}

/// Warp 0 and thread 33 wait at a barrier; the other lanes of warp 1 wait
/// in a shuffle that also names lane 1 of warp 1 (thread 33): neither can
/// complete.
__global__ void deadlockKernel(int *out) {
  const int t = threadIdx.x;
  if (t == 33) {
    __syncthreads();
  } else if (t >= 32) {
    out[t] = __shfl_sync(0xffffffffu, t, 0);
  } else {
    __syncthreads();
  }
}

/// A shuffle whose mask names a lane that has already exited.
__global__ void shuffleExitedLaneKernel(int *out) {
  if (threadIdx.x == 5)
    return;
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1, 1);
}

TEST_F(CudaEmu, BarrierAfterEarlyExitIsALaunchFailure) {
  DeviceBuffer<int> d(64);
  EXPECT_EQ(mixq_emu::launch(exitBeforeBarrierKernel, dim3(1), dim3(64), 0,
                             nullptr, d.p),
            cudaErrorLaunchFailure);
  // Sticky, as after a failed kernel on a GPU, until cudaDeviceReset.
  EXPECT_EQ(cudaDeviceSynchronize(), cudaErrorLaunchFailure);
  void *p = nullptr;
  EXPECT_EQ(cudaMalloc(&p, 16), cudaErrorLaunchFailure);
  EXPECT_EQ(mixq_emu::launch(emptyKernelForReset, dim3(1), dim3(1), 0, nullptr),
            cudaErrorLaunchFailure);
  EXPECT_EQ(cudaDeviceReset(), cudaSuccess);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  d.p = nullptr; // freed by the reset
}

TEST_F(CudaEmu, DeadlockIsALaunchFailure) {
  DeviceBuffer<int> d(64);
  EXPECT_EQ(
      mixq_emu::launch(deadlockKernel, dim3(1), dim3(64), 0, nullptr, d.p),
      cudaErrorLaunchFailure);
  EXPECT_EQ(cudaDeviceReset(), cudaSuccess);
  d.p = nullptr;
}

TEST_F(CudaEmu, ShuffleNamingAnExitedLaneIsALaunchFailure) {
  DeviceBuffer<int> d(32);
  EXPECT_EQ(mixq_emu::launch(shuffleExitedLaneKernel, dim3(1), dim3(32), 0,
                             nullptr, d.p),
            cudaErrorLaunchFailure);
  EXPECT_EQ(cudaDeviceReset(), cudaSuccess);
  d.p = nullptr;
}

//===----------------------------------------------------------------------===//
// Thread and block indices, dynamic shared memory
//===----------------------------------------------------------------------===//

__global__ void indexKernel(int *out) {
  const int block =
      (blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
  const int thread =
      (threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x;
  const int threads = blockDim.x * blockDim.y * blockDim.z;
  out[block * threads + thread] = 1000 * block + thread;
}

TEST_F(CudaEmu, EveryThreadOfA3DGridRunsOnceWithItsIndices) {
  const dim3 grid(2, 3, 2), block(4, 2, 3);
  const int n = 12 * 24;
  DeviceBuffer<int> d(std::vector<int>(n, -1));
  ASSERT_EQ(mixq_emu::launch(indexKernel, grid, block, 0, nullptr, d.p),
            cudaSuccess);
  std::vector<int> out = d.read();
  for (int i = 0; i < n; ++i)
    EXPECT_EQ(out[i], 1000 * (i / 24) + i % 24) << i;
}

__global__ void dynamicSharedKernel(float *out, int n) {
  MIXQ_DYNAMIC_SHARED(float, s);
  s[threadIdx.x] = static_cast<float>(threadIdx.x);
  __syncthreads();
  out[threadIdx.x] = s[n - 1 - threadIdx.x];
}

TEST_F(CudaEmu, DynamicSharedMemoryHasTheLaunchSize) {
  DeviceBuffer<float> d(100);
  ASSERT_EQ(mixq_emu::launch(dynamicSharedKernel, dim3(1), dim3(100),
                             100 * sizeof(float), nullptr, d.p, 100),
            cudaSuccess);
  std::vector<float> out = d.read();
  for (int i = 0; i < 100; ++i)
    EXPECT_EQ(out[i], 99.0f - i);
  EXPECT_EQ(mixq_emu::launch(dynamicSharedKernel, dim3(1), dim3(1),
                             48 * 1024 + 1, nullptr, d.p, 1),
            cudaErrorInvalidValue);
  // Each block's dynamic shared memory starts as 0xff bytes (NaN): a block
  // that reads an element no thread wrote sees NaN, not the previous
  // block's value or 0.
  ASSERT_EQ(mixq_emu::launch(dynamicSharedKernel, dim3(2), dim3(50),
                             100 * sizeof(float), nullptr, d.p, 100),
            cudaSuccess);
  out = d.read();
  for (int i = 0; i < 50; ++i)
    EXPECT_TRUE(std::isnan(out[i])) << i;
}

//===----------------------------------------------------------------------===//
// Atomics
//===----------------------------------------------------------------------===//

struct AtomicOut {
  float f;
  double d;
  int i;
  unsigned u;
  unsigned long long ull;
  int max;
  int min;
  int casWinners;
  unsigned long long casSlot;
};

__global__ void atomicKernel(AtomicOut *o) {
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  atomicAdd(&o->f, 0.5f);
  atomicAdd(&o->d, 0.25);
  atomicAdd(&o->i, -2);
  atomicAdd(&o->u, 3u);
  atomicAdd(&o->ull, 1ull << 33);
  atomicMax(&o->max, (t * 37) % 1001);
  atomicMin(&o->min, 500 - t);
  // Exactly one thread wins the slot.
  if (atomicCAS(&o->casSlot, 0ull, static_cast<unsigned long long>(t + 1)) ==
      0ull)
    atomicAdd(&o->casWinners, 1);
  __syncthreads();
}

TEST_F(CudaEmu, AtomicsCountEveryThread) {
  AtomicOut init{};
  init.min = 1 << 30;
  DeviceBuffer<AtomicOut> d(std::vector<AtomicOut>{init});
  ASSERT_EQ(mixq_emu::launch(atomicKernel, dim3(4), dim3(256), 0, nullptr, d.p),
            cudaSuccess);
  AtomicOut o = d.read()[0];
  EXPECT_EQ(o.f, 512.0f);
  EXPECT_EQ(o.d, 256.0);
  EXPECT_EQ(o.i, -2048);
  EXPECT_EQ(o.u, 3072u);
  EXPECT_EQ(o.ull, 1024ull << 33);
  int max = 0;
  for (int t = 0; t < 1024; ++t)
    max = std::max(max, (t * 37) % 1001);
  EXPECT_EQ(o.max, max);
  EXPECT_EQ(o.min, 500 - 1023);
  EXPECT_EQ(o.casWinners, 1);
  EXPECT_NE(o.casSlot, 0ull);
}

//===----------------------------------------------------------------------===//
// WMMA
//===----------------------------------------------------------------------===//

namespace wmma = nvcuda::wmma;

/// D = A B + C for one 16x16x16 tile per warp; warp w uses the w-th tiles.
/// A, B stored with leading dimension 24 (row- or column-major as the
/// template says), C and D with 20 in `cLayout`.
template <typename T, typename LA, typename LB>
__global__ void wmmaKernel(const T *a, const T *b, const float *c, float *d,
                           bool cRowMajor) {
  const int w = threadIdx.x / 32;
  const wmma::layout_t cl =
      cRowMajor ? wmma::mem_row_major : wmma::mem_col_major;
  wmma::fragment<wmma::matrix_a, 16, 16, 16, T, LA> fa;
  wmma::fragment<wmma::matrix_b, 16, 16, 16, T, LB> fb;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> fc;
  wmma::load_matrix_sync(fa, a + w * 16 * 24, 24);
  wmma::load_matrix_sync(fb, b + w * 16 * 24, 24);
  wmma::load_matrix_sync(fc, c + w * 16 * 20, 20, cl);
  wmma::mma_sync(fc, fa, fb, fc);
  // Element-wise work on the fragment (the same on every lane).
  for (int i = 0; i < fc.num_elements; ++i)
    fc.x[i] = 2.0f * fc.x[i];
  wmma::store_matrix_sync(d + w * 16 * 20, fc, 20, cl);
}

template <typename T, typename LA, typename LB> void checkWmma(bool cRowMajor) {
  constexpr bool aRow = std::is_same<LA, wmma::row_major>::value;
  constexpr bool bRow = std::is_same<LB, wmma::row_major>::value;
  const int warps = 2;
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
  // Element (r, c) of tile w of a matrix stored with leading dimension ld.
  auto at = [](int w, int r, int c, bool rowMajor, int ld) {
    return w * 16 * ld + (rowMajor ? r * ld + c : c * ld + r);
  };
  std::vector<T> a(warps * 16 * 24), b(warps * 16 * 24);
  std::vector<float> c(warps * 16 * 20);
  for (T &v : a)
    v = T(dist(rng));
  for (T &v : b)
    v = T(dist(rng));
  for (float &v : c)
    v = dist(rng);
  DeviceBuffer<T> da(a), db(b);
  DeviceBuffer<float> dc(c), dd(std::vector<float>(c.size(), NAN));
  mixq_emu::resetStats();
  ASSERT_EQ(mixq_emu::launch(wmmaKernel<T, LA, LB>, dim3(1), dim3(32 * warps),
                             0, nullptr, da.p, db.p, dc.p, dd.p, cRowMajor),
            cudaSuccess);
  mixq_emu::Stats st = mixq_emu::stats();
  std::vector<float> d = dd.read();
  for (int w = 0; w < warps; ++w)
    for (int i = 0; i < 16; ++i)
      for (int j = 0; j < 16; ++j) {
        float s = c[at(w, i, j, cRowMajor, 20)];
        for (int k = 0; k < 16; ++k)
          s += static_cast<float>(a[at(w, i, k, aRow, 24)]) *
               static_cast<float>(b[at(w, k, j, bRow, 24)]);
        ASSERT_EQ(d[at(w, i, j, cRowMajor, 20)], 2.0f * s)
            << "warp " << w << " (" << i << "," << j << ") A "
            << (aRow ? "row" : "col") << " B " << (bRow ? "row" : "col")
            << " C " << (cRowMajor ? "row" : "col");
      }
  if (mixq_emu::detail::wmmaMode() == 0) {
    // One product per warp, reused by its other 31 lanes.
    EXPECT_EQ(st.mmaComputed, uint64_t(warps));
    EXPECT_EQ(st.mmaShared, uint64_t(31 * warps));
  }
}

TEST_F(CudaEmu, WmmaMatchesScalarReferenceForEveryLayout) {
  for (bool cRow : {true, false}) {
    checkWmma<__nv_bfloat16, wmma::row_major, wmma::row_major>(cRow);
    checkWmma<__nv_bfloat16, wmma::row_major, wmma::col_major>(cRow);
    checkWmma<__nv_bfloat16, wmma::col_major, wmma::row_major>(cRow);
    checkWmma<__nv_bfloat16, wmma::col_major, wmma::col_major>(cRow);
    checkWmma<__half, wmma::row_major, wmma::col_major>(cRow);
    checkWmma<__half, wmma::col_major, wmma::row_major>(cRow);
  }
}

/// Lane 0 of each warp loads its A fragment from a different tile than the
/// other lanes: undefined on a GPU; the emulator's shared mma_sync would
/// hand lane 0's product to every lane, and Verify mode reports it.
__global__ void divergentFragmentKernel(const __nv_bfloat16 *a,
                                        const __nv_bfloat16 *b, float *d) {
  wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa;
  wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> fb;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> fc;
  wmma::fill_fragment(fc, 0.0f);
  wmma::load_matrix_sync(fa, a + (threadIdx.x % 32 == 0 ? 256 : 0), 16);
  wmma::load_matrix_sync(fb, b, 16);
  wmma::mma_sync(fc, fa, fb, fc);
  wmma::store_matrix_sync(d, fc, 16, wmma::mem_row_major);
}

TEST_F(CudaEmu, WmmaVerifyModeReportsLanesWithDifferentFragments) {
  std::vector<__nv_bfloat16> a(512), b(256);
  for (int i = 0; i < 512; ++i)
    a[i] = __nv_bfloat16(static_cast<float>(i % 5));
  for (int i = 0; i < 256; ++i)
    b[i] = __nv_bfloat16(static_cast<float>(i % 3));
  DeviceBuffer<__nv_bfloat16> da(a), db(b);
  DeviceBuffer<float> dd(256);
  EXPECT_EQ(mixq_emu::launch(divergentFragmentKernel, dim3(1), dim3(32), 0,
                             nullptr, da.p, db.p, dd.p),
            cudaSuccess); // shared: not detected
  mixq_emu::setWmmaMode(mixq_emu::WmmaMode::Verify);
  EXPECT_EQ(mixq_emu::launch(divergentFragmentKernel, dim3(1), dim3(32), 0,
                             nullptr, da.p, db.p, dd.p),
            cudaErrorLaunchFailure);
  mixq_emu::setWmmaMode(mixq_emu::WmmaMode::Shared);
  EXPECT_EQ(cudaDeviceReset(), cudaSuccess);
  da.p = db.p = nullptr;
  dd.p = nullptr;
}

__device__ int deepRecursion(int n) {
  volatile char pad[1024];
  pad[0] = static_cast<char>(n);
  return n == 0 ? 0 : deepRecursion(n - 1) + pad[0];
}

__global__ void overflowKernel(int *out, int depth) {
  out[threadIdx.x] = deepRecursion(depth);
}

TEST_F(CudaEmu, StackOverflowIsReportedNotACrashWithoutMessage) {
  int *out = nullptr;
  ASSERT_EQ(cudaMalloc(&out, sizeof(int)), cudaSuccess);
  // 1 KiB frames, 256 KiB stacks: 1000 levels overflow into the guard page.
  EXPECT_EXIT(
      mixq_emu::launch(overflowKernel, dim3(1), dim3(1), 0, nullptr, out, 1000),
      ::testing::ExitedWithCode(134),
      "a GPU thread overflowed its fiber stack");
  // 100 levels fit.
  EXPECT_EQ(
      mixq_emu::launch(overflowKernel, dim3(1), dim3(1), 0, nullptr, out, 100),
      cudaSuccess);
  EXPECT_EQ(cudaFree(out), cudaSuccess);
}

//===----------------------------------------------------------------------===//
// bf16 / fp16 conversions (exhaustively against CUDA's own in
// test/CodeGen/emu-conversions.test when nvcc is present)
//===----------------------------------------------------------------------===//

float bitsToFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

TEST_F(CudaEmu, Bf16RoundsToNearestEven) {
  struct {
    uint32_t in;
    unsigned short out;
  } cases[] = {
      {0x3f800000u, 0x3f80}, // 1
      {0x3f808000u, 0x3f80}, // halfway, even stays
      {0x3f818000u, 0x3f82}, // halfway, odd rounds up
      {0x3f808001u, 0x3f81}, // above halfway
      {0x3f807fffu, 0x3f80}, // below halfway
      {0xbf818000u, 0xbf82}, // negative halfway, odd
      {0x7f7fffffu, 0x7f80}, // FLT_MAX rounds to infinity
      {0x7f800000u, 0x7f80}, // infinity
      {0xff800000u, 0xff80}, // -infinity
      {0x7fc00001u, 0x7fff}, // NaN -> canonical NaN
      {0xffc00000u, 0x7fff}, // negative NaN too
      {0x00000001u, 0x0000}, // smallest subnormal rounds to zero
      {0x00008000u, 0x0000}, // halfway to the smallest bf16 subnormal, even
      {0x00018000u, 0x0002}, // halfway, odd
      {0x80000000u, 0x8000}, // -0
  };
  for (const auto &c : cases) {
    __nv_bfloat16 b = __float2bfloat16_rn(bitsToFloat(c.in));
    EXPECT_EQ(b.__x, c.out) << std::hex << c.in;
  }
  __nv_bfloat16 b;
  b.__x = 0x4049; // 3.140625
  EXPECT_EQ(__bfloat162float(b), 3.140625f);
}

TEST_F(CudaEmu, HalfRoundsToNearestEvenWithSubnormalsAndOverflow) {
  struct {
    float in;
    unsigned short out;
  } cases[] = {
      {1.0f, 0x3c00},
      {65504.0f, 0x7bff},  // largest half
      {65519.99f, 0x7bff}, // below the halfway point to 65536
      {65520.0f, 0x7c00},  // halfway, rounds (to even) to infinity
      {1e10f, 0x7c00},     // overflow
      {-1e10f, 0xfc00},
      {std::ldexp(1.0f, -24), 0x0001},        // smallest subnormal
      {std::ldexp(1.0f, -25), 0x0000},        // halfway to it: even (zero)
      {std::ldexp(1.5f, -25), 0x0001},        // above halfway
      {std::ldexp(3.0f, -25), 0x0002},        // 1.5 units: odd -> up
      {std::ldexp(1.0f, -14), 0x0400},        // smallest normal
      {1.0f + std::ldexp(1.0f, -11), 0x3c00}, // halfway, even
      {1.0f + std::ldexp(3.0f, -11), 0x3c02}, // halfway, odd -> up
      {NAN, 0x7fff},
  };
  for (const auto &c : cases)
    EXPECT_EQ(__float2half_rn(c.in).__x, c.out) << c.in;
  __half h;
  h.__x = 0x0001;
  EXPECT_EQ(__half2float(h), std::ldexp(1.0f, -24));
  h.__x = 0xfbff;
  EXPECT_EQ(__half2float(h), -65504.0f);
}

//===----------------------------------------------------------------------===//
// cuBLAS
//===----------------------------------------------------------------------===//

TEST_F(CudaEmu, SgemmMatchesNaiveColumnMajorProduct) {
  const int m = 5, n = 3, k = 4;
  std::vector<float> a(m * k), b(k * n), c(m * n, 7.0f);
  for (int i = 0; i < m * k; ++i)
    a[i] = static_cast<float>(i + 1);
  for (int i = 0; i < k * n; ++i)
    b[i] = static_cast<float>(2 * i - 3);
  DeviceBuffer<float> da(a), db(b), dc(c);
  cublasHandle_t h;
  ASSERT_EQ(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
  const float alpha = 2.0f, beta = 0.5f;
  ASSERT_EQ(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &alpha, da.p, m,
                        db.p, k, &beta, dc.p, m),
            CUBLAS_STATUS_SUCCESS);
  std::vector<float> out = dc.read();
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < m; ++i) {
      float s = 0;
      for (int p = 0; p < k; ++p)
        s += a[p * m + i] * b[j * k + p];
      EXPECT_EQ(out[j * m + i], alpha * s + beta * 7.0f) << i << "," << j;
    }
  EXPECT_EQ(cublasDestroy(h), CUBLAS_STATUS_SUCCESS);
}

/// Column-major op(X)(r, c) of a matrix stored with leading dimension ld.
float opAt(const std::vector<float> &x, bool trans, int r, int c, int ld,
           size_t offset) {
  return trans ? x[offset + static_cast<size_t>(r) * ld + c]
               : x[offset + static_cast<size_t>(c) * ld + r];
}

/// cublasSgemmStridedBatched against a naive column-major reference for
/// every op combination, padded leading dimensions and batch strides;
/// beta = 0 must not read C (which holds NaN).
TEST_F(CudaEmu, SgemmStridedBatchedMatchesNaiveReferenceForAllOps) {
  cublasHandle_t h;
  ASSERT_EQ(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
  cudaStream_t stream;
  ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  ASSERT_EQ(cublasSetStream(h, stream), CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(cublasSetMathMode(h, CUBLAS_PEDANTIC_MATH), CUBLAS_STATUS_SUCCESS);
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> dist(-4, 4);
  const int m = 7, n = 5, k = 6, batch = 3;
  for (cublasOperation_t ta : {CUBLAS_OP_N, CUBLAS_OP_T})
    for (cublasOperation_t tb : {CUBLAS_OP_N, CUBLAS_OP_T})
      for (float beta : {0.0f, -1.5f}) {
        const bool tA = ta == CUBLAS_OP_T, tB = tb == CUBLAS_OP_T;
        const int lda = (tA ? k : m) + 2, ldb = (tB ? n : k) + 1, ldc = m + 3;
        const long long sA = lda * (tA ? m : k) + 5,
                        sB = ldb * (tB ? k : n) + 1, sC = ldc * n + 2;
        std::vector<float> a(sA * batch), b(sB * batch),
            c(sC * batch, beta == 0.0f ? NAN : 2.0f);
        for (float &v : a)
          v = static_cast<float>(dist(rng));
        for (float &v : b)
          v = static_cast<float>(dist(rng));
        DeviceBuffer<float> da(a), db(b), dc(c);
        const float alpha = 0.5f;
        ASSERT_EQ(cublasSgemmStridedBatched(h, ta, tb, m, n, k, &alpha, da.p,
                                            lda, sA, db.p, ldb, sB, &beta, dc.p,
                                            ldc, sC, batch),
                  CUBLAS_STATUS_SUCCESS);
        std::vector<float> out = dc.read();
        for (int bi = 0; bi < batch; ++bi)
          for (int j = 0; j < n; ++j)
            for (int i = 0; i < m; ++i) {
              float s = 0.0f;
              for (int p = 0; p < k; ++p)
                s += opAt(a, tA, i, p, lda, bi * sA) *
                     opAt(b, tB, p, j, ldb, bi * sB);
              const size_t ci = bi * sC + static_cast<size_t>(j) * ldc + i;
              const float expect =
                  alpha * s + (beta == 0.0f ? 0.0f : beta * c[ci]);
              ASSERT_EQ(out[ci], expect)
                  << "op " << ta << tb << " beta " << beta << " batch " << bi
                  << " (" << i << "," << j << ")";
            }
        // Padding between columns and batches is left alone.
        for (int bi = 0; bi < batch; ++bi)
          for (int j = 0; j < n; ++j)
            for (int i = m; i < ldc && bi * sC + j * ldc + i < sC * batch;
                 ++i) {
              const size_t ci = bi * sC + static_cast<size_t>(j) * ldc + i;
              if (beta != 0.0f)
                EXPECT_EQ(out[ci], c[ci]);
              else
                EXPECT_TRUE(std::isnan(out[ci]));
            }
      }
  EXPECT_EQ(cublasDestroy(h), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(cudaStreamDestroy(stream), cudaSuccess);
}

/// cublasGemmEx with bf16/fp16 inputs and f32/bf16 outputs, f32 compute.
TEST_F(CudaEmu, GemmExReadsHalfTypesAndRoundsTheOutputOnce) {
  cublasHandle_t h;
  ASSERT_EQ(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
  const int m = 4, n = 3, k = 5;
  std::vector<float> af(m * k), bf(k * n);
  for (int i = 0; i < m * k; ++i)
    af[i] = 0.1f * (i + 1);
  for (int i = 0; i < k * n; ++i)
    bf[i] = 0.3f - 0.07f * i;
  std::vector<__nv_bfloat16> ab(af.begin(), af.end()), bb(bf.begin(), bf.end());
  std::vector<__half> ah(af.begin(), af.end()), bh(bf.begin(), bf.end());
  DeviceBuffer<__nv_bfloat16> dab(ab), dbb(bb);
  DeviceBuffer<__half> dah(ah), dbh(bh);
  DeviceBuffer<float> dc(m * n);
  DeviceBuffer<__nv_bfloat16> dcb(m * n);
  const float alpha = 1.0f, beta = 0.0f;
  // f16 inputs, f32 output, A transposed (stored k x m).
  ASSERT_EQ(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &alpha, dah.p,
                         CUDA_R_16F, k, dbh.p, CUDA_R_16F, k, &beta, dc.p,
                         CUDA_R_32F, m, CUBLAS_COMPUTE_32F,
                         CUBLAS_GEMM_DEFAULT),
            CUBLAS_STATUS_SUCCESS);
  // bf16 inputs, bf16 output.
  ASSERT_EQ(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &alpha, dab.p,
                         CUDA_R_16BF, m, dbb.p, CUDA_R_16BF, k, &beta, dcb.p,
                         CUDA_R_16BF, m, CUBLAS_COMPUTE_32F,
                         CUBLAS_GEMM_DEFAULT_TENSOR_OP),
            CUBLAS_STATUS_SUCCESS);
  std::vector<float> c = dc.read();
  std::vector<__nv_bfloat16> cb = dcb.read();
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < m; ++i) {
      float sh = 0.0f, sb = 0.0f;
      for (int p = 0; p < k; ++p) {
        sh += __half2float(ah[i * k + p]) * __half2float(bh[j * k + p]);
        sb += __bfloat162float(ab[p * m + i]) * __bfloat162float(bb[j * k + p]);
      }
      EXPECT_EQ(c[j * m + i], sh) << i << "," << j;
      EXPECT_EQ(cb[j * m + i].__x, __float2bfloat16_rn(sb).__x)
          << i << "," << j;
    }
  // Unsupported: mixed input types, a 16-bit compute type.
  EXPECT_EQ(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &alpha, dab.p,
                         CUDA_R_16BF, m, dbh.p, CUDA_R_16F, k, &beta, dc.p,
                         CUDA_R_32F, m, CUBLAS_COMPUTE_32F,
                         CUBLAS_GEMM_DEFAULT),
            CUBLAS_STATUS_NOT_SUPPORTED);
  EXPECT_EQ(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &alpha, dah.p,
                         CUDA_R_16F, m, dbh.p, CUDA_R_16F, k, &beta, dc.p,
                         CUDA_R_32F, m, CUBLAS_COMPUTE_16F,
                         CUBLAS_GEMM_DEFAULT),
            CUBLAS_STATUS_NOT_SUPPORTED);
  EXPECT_EQ(cublasDestroy(h), CUBLAS_STATUS_SUCCESS);
}

TEST_F(CudaEmu, CublasRejectsBadArgumentsAndHostPointers) {
  cublasHandle_t h;
  ASSERT_EQ(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
  DeviceBuffer<float> a(16), b(16), c(16);
  const float one = 1.0f, zero = 0.0f;
  // lda < m for a non-transposed A.
  EXPECT_EQ(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, a.p, 3, b.p,
                        4, &zero, c.p, 4),
            CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_EQ(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, -1, 4, 4, &one, a.p, 4,
                        b.p, 4, &zero, c.p, 4),
            CUBLAS_STATUS_INVALID_VALUE);
  // A 4x4 product does not fit the 16 floats when ldc = 5.
  EXPECT_EQ(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, a.p, 4, b.p,
                        4, &zero, c.p, 5),
            CUBLAS_STATUS_EXECUTION_FAILED);
  std::vector<float> host(16);
  EXPECT_EQ(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, host.data(),
                        4, b.p, 4, &zero, c.p, 4),
            CUBLAS_STATUS_EXECUTION_FAILED);
  EXPECT_EQ(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 0, 4, 4, &one, a.p, 4, b.p,
                        4, &zero, c.p, 4),
            CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(cublasDestroy(h), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, a.p, 4, b.p,
                        4, &zero, c.p, 4),
            CUBLAS_STATUS_NOT_INITIALIZED);
}

//===----------------------------------------------------------------------===//
// Runtime API
//===----------------------------------------------------------------------===//

TEST_F(CudaEmu, RuntimeMemoryCallsCheckTheirPointers) {
  size_t free0 = 0, total = 0;
  ASSERT_EQ(cudaMemGetInfo(&free0, &total), cudaSuccess);
  float *p = nullptr;
  ASSERT_EQ(cudaMalloc(&p, 1000), cudaSuccess);
  size_t free1 = 0;
  ASSERT_EQ(cudaMemGetInfo(&free1, &total), cudaSuccess);
  EXPECT_EQ(free0 - free1, 1000u);
  EXPECT_TRUE(mixq_emu::isDeviceRange(p, 1000));
  EXPECT_FALSE(mixq_emu::isDeviceRange(p, 1001));
  std::vector<char> host(2000);
  EXPECT_EQ(cudaMemcpy(p, host.data(), 1000, cudaMemcpyHostToDevice),
            cudaSuccess);
  // Past the end of the allocation, or a host pointer as the device side.
  EXPECT_EQ(cudaMemcpy(p, host.data(), 1001, cudaMemcpyHostToDevice),
            cudaErrorInvalidValue);
  EXPECT_EQ(
      cudaMemcpy(host.data(), host.data() + 1000, 8, cudaMemcpyDeviceToHost),
      cudaErrorInvalidValue);
  EXPECT_EQ(cudaMemset(host.data(), 0, 8), cudaErrorInvalidValue);
  // The last error is kept until read, then cleared (not sticky).
  EXPECT_EQ(cudaPeekAtLastError(), cudaErrorInvalidValue);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidValue);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
  EXPECT_EQ(cudaFree(host.data()), cudaErrorInvalidValue);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidValue);
  EXPECT_EQ(cudaFree(p), cudaSuccess);
  EXPECT_EQ(cudaFree(p), cudaErrorInvalidValue); // double free
  EXPECT_EQ(cudaFree(nullptr), cudaSuccess);
  EXPECT_EQ(std::string(cudaGetErrorName(cudaErrorInvalidValue)),
            "cudaErrorInvalidValue");
  EXPECT_EQ(std::string(cudaGetErrorString(cudaErrorLaunchFailure)),
            "unspecified launch failure");
  // More than the emulated device has.
  void *big = nullptr;
  EXPECT_EQ(cudaMalloc(&big, total + 1), cudaErrorMemoryAllocation);
  cudaGetLastError();
}

__global__ void sumKernel(const float *x, int n, float *out) {
  float s = 0.0f;
  for (int i = 0; i < n; ++i)
    s += x[i];
  *out = s;
}

// A GPU does not zero cudaMalloc'd memory; the emulator fills it with 0xff
// bytes, so a kernel that reads a buffer nobody wrote computes NaN instead
// of a plausible 0.
TEST_F(CudaEmu, FreshDeviceMemoryIsPoisoned) {
  DeviceBuffer<float> x(16), out(1);
  std::vector<unsigned char> bytes(16 * sizeof(float));
  ASSERT_EQ(cudaMemcpy(bytes.data(), x.p, bytes.size(), cudaMemcpyDeviceToHost),
            cudaSuccess);
  for (unsigned char b : bytes)
    EXPECT_EQ(b, 0xff);
  ASSERT_EQ(
      mixq_emu::launch(sumKernel, dim3(1), dim3(1), 0, nullptr, x.p, 16, out.p),
      cudaSuccess);
  EXPECT_TRUE(std::isnan(out.read()[0]));
  ASSERT_EQ(cudaMemset(x.p, 0, 16 * sizeof(float)), cudaSuccess);
  ASSERT_EQ(
      mixq_emu::launch(sumKernel, dim3(1), dim3(1), 0, nullptr, x.p, 16, out.p),
      cudaSuccess);
  EXPECT_EQ(out.read()[0], 0.0f);
}

TEST_F(CudaEmu, DeviceStreamsAndEvents) {
  int count = 0, dev = -1;
  EXPECT_EQ(cudaGetDeviceCount(&count), cudaSuccess);
  EXPECT_EQ(count, 1);
  EXPECT_EQ(cudaSetDevice(0), cudaSuccess);
  EXPECT_EQ(cudaSetDevice(1), cudaErrorInvalidDevice);
  EXPECT_EQ(cudaGetDevice(&dev), cudaSuccess);
  EXPECT_EQ(dev, 0);
  cudaDeviceProp prop;
  ASSERT_EQ(cudaGetDeviceProperties(&prop, 0), cudaSuccess);
  EXPECT_STREQ(prop.name, "MixQ CUDA emulator (CPU)");
  EXPECT_EQ(prop.major, 9);
  EXPECT_EQ(prop.sharedMemPerBlock, 48u * 1024);
  cudaStream_t s;
  ASSERT_EQ(cudaStreamCreate(&s), cudaSuccess);
  cudaEvent_t e0, e1;
  ASSERT_EQ(cudaEventCreate(&e0), cudaSuccess);
  ASSERT_EQ(cudaEventCreate(&e1), cudaSuccess);
  float ms = -1.0f;
  EXPECT_EQ(cudaEventElapsedTime(&ms, e0, e1),
            cudaErrorInvalidResourceHandle); // not recorded yet
  // Read the pending error: the launch below reports it otherwise (as
  // kernel<<<...>>> followed by cudaGetLastError does).
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidResourceHandle);
  EXPECT_EQ(cudaEventRecord(e0, s), cudaSuccess);
  EXPECT_EQ(mixq_emu::launch(emptyKernelForReset, dim3(8), dim3(64), 0, s),
            cudaSuccess);
  EXPECT_EQ(cudaEventRecord(e1, s), cudaSuccess);
  EXPECT_EQ(cudaEventSynchronize(e1), cudaSuccess);
  EXPECT_EQ(cudaEventElapsedTime(&ms, e0, e1), cudaSuccess);
  EXPECT_GE(ms, 0.0f);
  EXPECT_EQ(cudaStreamSynchronize(s), cudaSuccess);
  EXPECT_EQ(cudaEventDestroy(e0), cudaSuccess);
  EXPECT_EQ(cudaEventDestroy(e1), cudaSuccess);
  EXPECT_EQ(cudaStreamDestroy(s), cudaSuccess);
  // A destroyed stream is no stream.
  EXPECT_EQ(mixq_emu::launch(emptyKernelForReset, dim3(1), dim3(1), 0, s),
            cudaErrorInvalidResourceHandle);
  EXPECT_EQ(cudaStreamSynchronize(s), cudaErrorInvalidResourceHandle);
  cudaGetLastError();
}

//===----------------------------------------------------------------------===//
// Launch errors
//===----------------------------------------------------------------------===//

__global__ void emptyKernel() {}

TEST_F(CudaEmu, BadGeometryIsInvalidConfiguration) {
  EXPECT_EQ(mixq_emu::launch(emptyKernel, dim3(1), dim3(1025), 0, nullptr),
            cudaErrorInvalidConfiguration);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess); // launch returned and cleared it
  EXPECT_EQ(mixq_emu::launch(emptyKernel, dim3(0), dim3(32), 0, nullptr),
            cudaErrorInvalidConfiguration);
  EXPECT_EQ(mixq_emu::launch(emptyKernel, dim3(1, 65536), dim3(32), 0, nullptr),
            cudaErrorInvalidConfiguration);
  EXPECT_EQ(mixq_emu::launch(emptyKernel, dim3(1), dim3(32, 32, 2), 0, nullptr),
            cudaErrorInvalidConfiguration);
  EXPECT_EQ(mixq_emu::launch(emptyKernel, dim3(1), dim3(1024), 0, nullptr),
            cudaSuccess);
}

} // namespace
