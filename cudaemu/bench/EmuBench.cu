//===- EmuBench.cu - cost of the CUDA CPU emulator's mechanisms -----------===//
//
// Not a test: prints timings (cudaemu/bench/README.md has the command and the
// committed figures). Three kernels run on the emulator:
//  - a WMMA GEMM shaped like the generated one (128 threads, four warps of
//    2 x 2 16x16x16 fragments, a barrier pair per k-step of 32) with
//    mma_sync shared per warp vs computed by every lane (WmmaMode);
//  - a warp-shuffle reduction (one fiber switch per lane per shuffle):
//    switches per second;
//  - an element-wise kernel without synchronisation: threads per second.
//
//===----------------------------------------------------------------------===//

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

namespace wmma = nvcuda::wmma;

constexpr int kBM = 64, kBN = 64, kBK = 32, kLd = kBK + 8, kLdC = kBN + 4;

__global__ void gemmKernel(const float *a, const float *b, float *c, int m,
                           int n, int k) {
  __shared__ __align__(32) __nv_bfloat16 sA[kBM * kLd];
  __shared__ __align__(32) __nv_bfloat16 sB[kBN * kLd];
  __shared__ __align__(32) float sC[kBM * kLdC];
  const int m0 = blockIdx.y * kBM, n0 = blockIdx.x * kBN;
  const int warp = threadIdx.x / 32;
  const int wm = (warp / 2) * 32, wn = (warp % 2) * 32;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j)
      wmma::fill_fragment(acc[i][j], 0.0f);
  for (int k0 = 0; k0 < k; k0 += kBK) {
    for (int e = threadIdx.x; e < kBM * kBK; e += 128) {
      const int r = e / kBK, kk = e % kBK;
      sA[r * kLd + kk] = __float2bfloat16_rn(
          m0 + r < m ? a[static_cast<size_t>(m0 + r) * k + k0 + kk] : 0.0f);
      sB[r * kLd + kk] = __float2bfloat16_rn(
          n0 + r < n ? b[static_cast<size_t>(n0 + r) * k + k0 + kk] : 0.0f);
    }
    __syncthreads();
    for (int kk = 0; kk < kBK; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major>
          fa[2];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major>
          fb[2];
      for (int i = 0; i < 2; ++i)
        wmma::load_matrix_sync(fa[i], sA + (wm + 16 * i) * kLd + kk, kLd);
      for (int j = 0; j < 2; ++j)
        wmma::load_matrix_sync(fb[j], sB + (wn + 16 * j) * kLd + kk, kLd);
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 2; ++j)
          wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
    }
    __syncthreads();
  }
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j)
      wmma::store_matrix_sync(sC + (wm + 16 * i) * kLdC + wn + 16 * j,
                              acc[i][j], kLdC, wmma::mem_row_major);
  __syncthreads();
  for (int e = threadIdx.x; e < kBM * kBN; e += 128) {
    const int r = e / kBN, col = e % kBN;
    if (m0 + r < m && n0 + col < n)
      c[static_cast<size_t>(m0 + r) * n + n0 + col] = sC[r * kLdC + col];
  }
}

__global__ void shuffleKernel(float *out, int rounds) {
  float v = static_cast<float>(threadIdx.x);
  for (int r = 0; r < rounds; ++r)
    v += __shfl_xor_sync(0xffffffffu, v, 1 + r % 31) * 1e-3f;
  out[blockIdx.x * blockDim.x + threadIdx.x] = v;
}

__global__ void axpyKernel(const float *x, float *y, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n)
    y[i] = 2.0f * x[i] + y[i];
}

template <typename F> double bestSeconds(int reps, F &&f) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    auto t1 = std::chrono::steady_clock::now();
    best = std::min(best, std::chrono::duration<double>(t1 - t0).count());
  }
  return best;
}

int main() {
  const int m = 256, n = 256, k = 256;
  std::vector<float> ha(m * k), hb(n * k);
  for (size_t i = 0; i < ha.size(); ++i)
    ha[i] = static_cast<float>(i % 13) - 6.0f;
  for (size_t i = 0; i < hb.size(); ++i)
    hb[i] = static_cast<float>(i % 7) - 3.0f;
  float *a, *b, *c1, *c2;
  cudaMalloc(&a, ha.size() * 4);
  cudaMalloc(&b, hb.size() * 4);
  cudaMalloc(&c1, m * n * 4);
  cudaMalloc(&c2, m * n * 4);
  cudaMemcpy(a, ha.data(), ha.size() * 4, cudaMemcpyHostToDevice);
  cudaMemcpy(b, hb.data(), hb.size() * 4, cudaMemcpyHostToDevice);
  const dim3 grid(n / kBN, m / kBM);
  auto gemm = [&](float *c) {
    if (mixq_emu::launch(gemmKernel, grid, dim3(128), 0, nullptr, a, b, c, m, n,
                         k) != cudaSuccess)
      std::printf("launch failed\n");
  };
  mixq_emu::setWmmaMode(mixq_emu::WmmaMode::Shared);
  const double shared = bestSeconds(5, [&] { gemm(c1); });
  mixq_emu::setWmmaMode(mixq_emu::WmmaMode::Private);
  const double priv = bestSeconds(5, [&] { gemm(c2); });
  mixq_emu::setWmmaMode(mixq_emu::WmmaMode::Shared);
  std::vector<float> r1(m * n), r2(m * n);
  cudaMemcpy(r1.data(), c1, r1.size() * 4, cudaMemcpyDeviceToHost);
  cudaMemcpy(r2.data(), c2, r2.size() * 4, cudaMemcpyDeviceToHost);
  std::printf("WMMA GEMM %dx%dx%d (16 blocks x 128 threads, %d mma_sync per "
              "lane): shared per warp %.2f ms, every lane %.2f ms, ratio "
              "%.2fx; results %s\n",
              m, n, k, 2 * 2 * (k / 16), shared * 1e3, priv * 1e3,
              priv / shared, r1 == r2 ? "identical" : "DIFFER");

  const int rounds = 200, blocks = 64, threads = 256;
  float *out;
  cudaMalloc(&out, blocks * threads * 4);
  mixq_emu::resetStats();
  const double shuf = bestSeconds(3, [&] {
    mixq_emu::launch(shuffleKernel, dim3(blocks), dim3(threads), 0, nullptr,
                     out, rounds);
  });
  const double switches = static_cast<double>(mixq_emu::stats().switches) / 3.0;
  std::printf("shuffles: %d threads x %d shuffles in %.2f ms: %.1f M fiber "
              "switches/s, %.0f ns per shuffle per lane\n",
              blocks * threads, rounds, shuf * 1e3, switches / shuf / 1e6,
              shuf / (double(blocks) * threads * rounds) * 1e9);

  const int len = 1 << 20;
  float *x, *y;
  cudaMalloc(&x, len * 4);
  cudaMalloc(&y, len * 4);
  cudaMemset(x, 0, len * 4);
  cudaMemset(y, 0, len * 4);
  const double axpy = bestSeconds(3, [&] {
    mixq_emu::launch(axpyKernel, dim3(len / 256), dim3(256), 0, nullptr, x, y,
                     len);
  });
  std::printf("element-wise: %d threads in %.2f ms: %.0f ns per thread\n", len,
              axpy * 1e3, axpy / len * 1e9);
  return 0;
}
