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

#include <random>
#include <vector>

namespace {

/// Device buffer of n T's, filled from / read back to host vectors.
template <typename T>
struct DeviceBuffer {
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
  EXPECT_EQ(mixq_emu::launch(reduceKernel, dim3(blocks), dim3(256), 0,
                             nullptr, din.p, dout.p, withBarriers),
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
__global__ void neighbourKernel(const float *in, float *out,
                                bool withBarrier) {
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
  EXPECT_EQ(mixq_emu::launch(emptyKernel, dim3(1, 65536), dim3(32), 0,
                             nullptr),
            cudaErrorInvalidConfiguration);
  EXPECT_EQ(mixq_emu::launch(emptyKernel, dim3(1), dim3(32, 32, 2), 0,
                             nullptr),
            cudaErrorInvalidConfiguration);
  EXPECT_EQ(mixq_emu::launch(emptyKernel, dim3(1), dim3(1024), 0, nullptr),
            cudaSuccess);
}

} // namespace
