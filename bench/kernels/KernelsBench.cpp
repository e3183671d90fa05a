//===- KernelsBench.cpp - Google Benchmark: fused kernels vs peers ---------===//
//
// Three families, same shapes (m, n = out, k = in), two threads each:
//   BM_Fused/<format>/<precision>/m/n/k  fusedLinearForward, LoRA rank 8
//   BM_OpenBLAS/m/n/k                    cblas_sgemm on the f32 weight
//   BM_Triad                             STREAM triad, 3 x 64 MiB
// Counters: GFLOPS (2 m n k per iteration, rate), GBps (bytes the kernel
// must read: weight storage + X + Y, rate). Commands: README.md.
//
//===----------------------------------------------------------------------===//

#include "mixq/Kernels/FusedLinear.h"
#include "mixq/Kernels/Quant.h"

#include <benchmark/benchmark.h>
#include <cblas.h>

#include <map>
#include <memory>
#include <random>
#include <thread>
#include <tuple>
#include <vector>

using namespace mixq;
using namespace mixq::kernels;

namespace {

constexpr int kThreads = 2;
constexpr int64_t kRank = 8;

struct Problem {
  std::vector<float> w, x, y, a, b;
  std::map<int, QuantizedTensor> quantized; ///< by QuantFormat
};

/// One problem per shape, built on first use (weights 0.02 * N(0, 1)).
Problem &problem(int64_t m, int64_t n, int64_t k) {
  static std::map<std::tuple<int64_t, int64_t, int64_t>,
                  std::unique_ptr<Problem>>
      cache;
  std::unique_ptr<Problem> &p = cache[{m, n, k}];
  if (!p) {
    p = std::make_unique<Problem>();
    std::mt19937 gen(7);
    std::normal_distribution<float> nd;
    p->w.resize(n * k);
    p->x.resize(m * k);
    p->y.resize(m * n);
    for (float &v : p->w)
      v = 0.02f * nd(gen);
    for (float &v : p->x)
      v = nd(gen);
    p->a.assign(kRank * k, 0.01f);
    p->b.assign(n * kRank, 0.01f);
  }
  return *p;
}

const QuantizedTensor &quantized(Problem &p, int64_t n, int64_t k,
                                 QuantFormat f) {
  auto it = p.quantized.find(static_cast<int>(f));
  if (it != p.quantized.end())
    return it->second;
  QuantSpec spec;
  spec.format = f;
  spec.doubleQuant = f == QuantFormat::NF4 || f == QuantFormat::FP4;
  llvm::Expected<QuantizedTensor> q = quantize(p.w.data(), n, k, spec);
  if (!q) {
    llvm::consumeError(q.takeError());
    static QuantizedTensor empty;
    return empty;
  }
  return p.quantized.emplace(static_cast<int>(f), std::move(*q)).first->second;
}

void setCounters(benchmark::State &st, int64_t m, int64_t n, int64_t k,
                 double weightBytes) {
  st.counters["GFLOPS"] = benchmark::Counter(
      2.0 * m * n * k * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  st.counters["GBps"] = benchmark::Counter(
      (weightBytes + 4.0 * (m * k + m * n)) * 1e-9,
      benchmark::Counter::kIsIterationInvariantRate);
}

void bmFused(benchmark::State &st, QuantFormat f, ComputePrecision prec) {
  const int64_t m = st.range(0), n = st.range(1), k = st.range(2);
  Problem &p = problem(m, n, k);
  const QuantizedTensor &q = quantized(p, n, k, f);
  AdapterView ad;
  ad.kind = AdapterKind::LoRA;
  ad.rank = kRank;
  ad.scale = 2.0f;
  ad.A = p.a.data();
  ad.B = p.b.data();
  KernelOptions opts;
  opts.threads = kThreads;
  opts.precision = prec;
  for (auto _ : st) {
    if (llvm::Error e =
            fusedLinearForward(q, ad, p.x.data(), m, p.y.data(), opts)) {
      st.SkipWithError(llvm::toString(std::move(e)).c_str());
      break;
    }
    benchmark::DoNotOptimize(p.y.data());
  }
  setCounters(st, m, n, k, static_cast<double>(q.storageBytes()));
}

void bmOpenBLAS(benchmark::State &st) {
  const int64_t m = st.range(0), n = st.range(1), k = st.range(2);
  Problem &p = problem(m, n, k);
  openblas_set_num_threads(kThreads);
  for (auto _ : st) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f,
                p.x.data(), k, p.w.data(), k, 0.0f, p.y.data(), n);
    benchmark::DoNotOptimize(p.y.data());
  }
  setCounters(st, m, n, k, 4.0 * n * k);
}

void bmTriad(benchmark::State &st) {
  const int64_t n = int64_t(1) << 24;
  std::vector<float> a(n), b(n, 1.0f), c(n, 2.0f);
  for (auto _ : st) {
    std::thread other([&] {
      for (int64_t i = n / 2; i < n; ++i)
        a[i] = b[i] + 3.0f * c[i];
    });
    for (int64_t i = 0; i < n / 2; ++i)
      a[i] = b[i] + 3.0f * c[i];
    other.join();
    benchmark::DoNotOptimize(a.data());
  }
  st.counters["GBps"] = benchmark::Counter(
      12.0 * n * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

/// The shapes: LLaMA-7B layers (n x k) at decode- and training-like m.
void shapes(benchmark::internal::Benchmark *b) {
  const int64_t layers[3][2] = {{4096, 4096}, {11008, 4096}, {4096, 11008}};
  for (int64_t m : {1, 8, 16, 512, 2048})
    for (const auto &l : layers)
      b->Args({m, l[0], l[1]});
  b->ArgNames({"m", "n", "k"})->Unit(benchmark::kMillisecond)->UseRealTime();
}

} // namespace

BENCHMARK(bmTriad)->Name("BM_Triad")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(bmOpenBLAS)->Name("BM_OpenBLAS")->Apply(shapes);
BENCHMARK_CAPTURE(bmFused, nf4_f32, QuantFormat::NF4, ComputePrecision::F32)
    ->Name("BM_Fused/nf4/f32")->Apply(shapes);
BENCHMARK_CAPTURE(bmFused, nf4_bf16, QuantFormat::NF4, ComputePrecision::BF16)
    ->Name("BM_Fused/nf4/bf16")->Apply(shapes);
BENCHMARK_CAPTURE(bmFused, int4_f32, QuantFormat::Int4, ComputePrecision::F32)
    ->Name("BM_Fused/int4/f32")->Apply(shapes);
BENCHMARK_CAPTURE(bmFused, int8_f32, QuantFormat::Int8, ComputePrecision::F32)
    ->Name("BM_Fused/int8/f32")->Apply(shapes);

BENCHMARK_MAIN();
