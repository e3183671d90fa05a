//===- mixq-bench.cpp - Fused kernel vs OpenBLAS vs memory bandwidth ------===//
//
//   mixq-bench gemm --format nf4 --m 2048 --n 4096 --k 4096 --rank 8 --json
//
// Quantizes a random W [n, k], then times in the same process, on the same
// shape: our fused forward Y = X W^T + s * adapter(X) (fusedLinearForward),
// OpenBLAS cblas_sgemm on an f32 copy of W, and a STREAM triad. Prints one
// JSON object (or a line of text). GFLOP/s counts 2*m*n*k (adapter not
// counted, its time is). For small m (<= 16) the weight does not sit in the
// caches in a real model: the run rotates over enough copies of the quantized
// W (256 MiB in all) that it is read from memory. With --nthreads 1 the JSON
// also has CPU-time GFLOP/s and cpu_ratio (robust on a shared machine).
//
//===----------------------------------------------------------------------===//

#include "mixq/Kernels/FusedLinear.h"
#include "mixq/Kernels/Quant.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/WithColor.h"
#include "llvm/Support/raw_ostream.h"

#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <random>
#include <thread>
#include <vector>

using namespace mixq;
using namespace mixq::kernels;
namespace cl = llvm::cl;

static cl::OptionCategory benchCat("mixq-bench options");
static cl::opt<std::string> command(cl::Positional, cl::desc("<gemm>"),
                                    cl::Required, cl::cat(benchCat));
static cl::opt<std::string> formatOpt("format", cl::desc("nf4|fp4|int8|int4|int3|int2|bf16|f32"),
                                      cl::init("nf4"), cl::cat(benchCat));
static cl::opt<int64_t> mOpt("m", cl::desc("rows of X (tokens)"), cl::init(16),
                             cl::cat(benchCat));
static cl::opt<int64_t> nOpt("n", cl::desc("output features"), cl::init(4096),
                             cl::cat(benchCat));
static cl::opt<int64_t> kOpt("k", cl::desc("input features"), cl::init(4096),
                             cl::cat(benchCat));
static cl::opt<int64_t> rankOpt("rank", cl::desc("adapter rank (0: none)"),
                                cl::init(8), cl::cat(benchCat));
static cl::opt<std::string> adapterOpt("adapter",
                                       cl::desc("lora|qblora|qablora"),
                                       cl::init("lora"), cl::cat(benchCat));
static cl::opt<int64_t> lambdaOpt("lambda", cl::desc("Q-BLoRA / QA-BLoRA lambda"),
                                  cl::init(2), cl::cat(benchCat));
static cl::opt<int64_t> blockOpt("block", cl::desc("nf4/fp4/int8 block"),
                                 cl::init(64), cl::cat(benchCat));
static cl::opt<bool> dqOpt("double-quant", cl::desc("nf4/fp4 double quant"),
                           cl::init(true), cl::cat(benchCat));
static cl::opt<int64_t> tileRowsOpt("tile-rows", cl::init(1), cl::cat(benchCat),
                                    cl::desc("int tile rows"));
static cl::opt<int64_t> tileColsOpt("tile-cols", cl::init(64), cl::cat(benchCat),
                                    cl::desc("int tile cols"));
static cl::opt<std::string> precisionOpt("precision", cl::desc("f32|bf16"),
                                         cl::init("f32"), cl::cat(benchCat));
static cl::opt<std::string> isaOpt("isa", cl::desc("auto|scalar|avx2|avx512"),
                                   cl::init("auto"), cl::cat(benchCat));
static cl::opt<int> threadsOpt("nthreads", cl::desc("threads (both libraries)"),
                               cl::init(2), cl::cat(benchCat));
static cl::opt<double> minTimeOpt("min-time",
                                  cl::desc("seconds of timing per measurement"),
                                  cl::init(0.3), cl::cat(benchCat));
static cl::opt<bool> jsonOpt("json", cl::desc("print one JSON object"),
                             cl::cat(benchCat));
static cl::opt<bool> skipBlas("no-openblas", cl::desc("skip the OpenBLAS peer"),
                              cl::cat(benchCat));

namespace {

using Clock = std::chrono::steady_clock;

/// CPU time of the calling thread (s).
double threadCpuSeconds() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

/// Best wall time and best calling-thread CPU time.
struct Timing {
  double wall = 1e30, cpu = 1e30;
};

/// Best times of fn over >= 3 runs (the first one warms up and counts only
/// if it is slow anyway: > 1 s) and >= minTime seconds.
template <typename Fn> Timing bestTime(Fn fn, double minTime) {
  Timing best;
  auto timed = [&](int it, bool count) {
    double c0 = threadCpuSeconds();
    auto t0 = Clock::now();
    fn(it);
    double s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (count) {
      best.wall = std::min(best.wall, s);
      best.cpu = std::min(best.cpu, threadCpuSeconds() - c0);
    }
    return s;
  };
  double c0 = threadCpuSeconds();
  double first = timed(0, false);
  if (first > 1.0) {
    best.wall = first;
    best.cpu = threadCpuSeconds() - c0;
  }
  double total = 0;
  for (int it = 1; it < 3 || total < minTime; ++it) {
    total += timed(it, true);
    if (it >= 1000 || (first > 1.0 && it >= 2))
      break;
  }
  return best;
}

/// STREAM triad a = b + s*c on 3 x 64 MiB (far beyond the caches) with
/// `threads` threads; GB/s counting 12 bytes per element (STREAM's rule).
double triadGBs(int threads, double minTime) {
  const int64_t n = int64_t(1) << 24;
  std::vector<float> a(n, 0.0f), b(n, 1.0f), c(n, 2.0f);
  auto run = [&](int) {
    std::vector<std::thread> ts;
    auto part = [&](int t) {
      int64_t lo = n * t / threads, hi = n * (t + 1) / threads;
      for (int64_t i = lo; i < hi; ++i)
        a[i] = b[i] + 3.0f * c[i];
    };
    for (int t = 1; t < threads; ++t)
      ts.emplace_back(part, t);
    part(0);
    for (std::thread &t : ts)
      t.join();
  };
  double s = bestTime(run, minTime).wall;
  return 12.0 * n / s / 1e9;
}

bool parseFormat(llvm::StringRef s, QuantFormat &f) {
  static const std::pair<const char *, QuantFormat> names[] = {
      {"nf4", QuantFormat::NF4},   {"fp4", QuantFormat::FP4},
      {"int8", QuantFormat::Int8}, {"int4", QuantFormat::Int4},
      {"int3", QuantFormat::Int3}, {"int2", QuantFormat::Int2},
      {"bf16", QuantFormat::BF16}, {"f32", QuantFormat::F32}};
  for (const auto &nf : names)
    if (s == nf.first) {
      f = nf.second;
      return true;
    }
  return false;
}

int fail(const llvm::Twine &msg) {
  llvm::WithColor::error(llvm::errs(), "mixq-bench") << msg << "\n";
  return 1;
}

} // namespace

int main(int argc, char **argv) {
  cl::HideUnrelatedOptions(benchCat);
  cl::ParseCommandLineOptions(argc, argv, "MixQ kernel benchmark\n");
  if (command != "gemm")
    return fail("unknown command '" + command + "' (expected 'gemm')");
  QuantSpec spec;
  if (!parseFormat(formatOpt, spec.format))
    return fail("unknown format '" + formatOpt + "'");
  const int64_t m = mOpt, n = nOpt, k = kOpt, rank = rankOpt;
  if (m < 1 || n < 1 || k < 1 || rank < 0)
    return fail("--m/--n/--k must be positive and --rank non-negative");
  spec.block = blockOpt;
  spec.doubleQuant =
      dqOpt && (spec.format == QuantFormat::NF4 || spec.format == QuantFormat::FP4);
  spec.tileRows = tileRowsOpt;
  spec.tileCols = tileColsOpt;
  KernelOptions opts;
  opts.threads = threadsOpt;
  if (precisionOpt == "bf16")
    opts.precision = ComputePrecision::BF16;
  else if (precisionOpt != "f32")
    return fail("unknown precision '" + precisionOpt + "'");
  if (isaOpt == "scalar")
    opts.isa = KernelISA::Scalar;
  else if (isaOpt == "avx2")
    opts.isa = KernelISA::AVX2;
  else if (isaOpt == "avx512")
    opts.isa = KernelISA::AVX512;
  else if (isaOpt != "auto")
    return fail("unknown isa '" + isaOpt + "'");

  // Data.
  std::mt19937 gen(42);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> w(n * k), x(m * k), y(m * n), yBlas(m * n);
  for (float &v : w)
    v = 0.02f * nd(gen);
  for (float &v : x)
    v = nd(gen);
  llvm::Expected<QuantizedTensor> q = quantize(w.data(), n, k, spec);
  if (!q)
    return fail(llvm::toString(q.takeError()));

  // Adapter.
  AdapterView ad;
  std::vector<float> a, b, h;
  if (rank > 0) {
    if (adapterOpt == "lora") {
      ad.kind = AdapterKind::LoRA;
      ad.rank = rank;
    } else if (adapterOpt == "qblora") {
      ad.kind = AdapterKind::QBLoRA;
      ad.rank = rank * lambdaOpt;
      ad.poolIn = ad.repeatOut = lambdaOpt;
    } else if (adapterOpt == "qablora") {
      ad.kind = AdapterKind::QABLoRA;
      ad.poolIn = spec.tileCols;
      ad.repeatOut = spec.tileRows;
    } else {
      return fail("unknown adapter '" + adapterOpt + "'");
    }
    ad.scale = 2.0f;
    llvm::Expected<AdapterShapes> sh = adapterShapes(ad, k, n);
    if (!sh)
      return fail(llvm::toString(sh.takeError()));
    a.assign(sh->aRows * sh->aCols, 0.01f);
    b.assign(sh->bRows * sh->bCols, 0.01f);
    h.assign(sh->hRows * sh->hCols, 0.01f);
    ad.A = a.data();
    ad.B = b.data();
    ad.H = h.data();
  }

  // Copies of W so that the rotation exceeds the caches (256 MiB).
  const double wBytes = static_cast<double>(q->storageBytes());
  const int copies =
      m > 16 ? 1
             : static_cast<int>(std::clamp(
                   std::ceil(256.0 * (1 << 20) / wBytes), 1.0, 32.0));
  std::vector<QuantizedTensor> ws(copies, *q);

  Timing mixqTime = bestTime(
      [&](int it) {
        if (llvm::Error e = fusedLinearForward(ws[it % copies], ad, x.data(),
                                               m, y.data(), opts)) {
          fail(llvm::toString(std::move(e)));
          std::exit(1);
        }
      },
      minTimeOpt);
  const double tMixq = mixqTime.wall;

  Timing blasTime;
  double tBlas = 0;
  if (!skipBlas) {
    openblas_set_num_threads(threadsOpt);
    blasTime = bestTime(
        [&](int) {
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f,
                      x.data(), k, w.data(), k, 0.0f, yBlas.data(), n);
        },
        minTimeOpt);
    tBlas = blasTime.wall;
  }
  double triad = triadGBs(threadsOpt, minTimeOpt);

  const double flops = 2.0 * m * n * k;
  const double mixqGflops = flops / tMixq / 1e9;
  const double blasGflops = tBlas > 0 ? flops / tBlas / 1e9 : 0.0;
  // Bytes the fused kernel must read at least: W (all arrays), X, adapter;
  // plus Y written.
  const double bytesRead = wBytes + 4.0 * (m * k + a.size() + b.size() +
                                           h.size() + m * n);
  const double mixqGBs = bytesRead / tMixq / 1e9;

  if (jsonOpt) {
    llvm::json::Object o{
        {"format", std::string(formatOpt)},
        {"m", m},
        {"n", n},
        {"k", k},
        {"rank", rank},
        {"adapter", rank > 0 ? std::string(adapterOpt) : std::string("none")},
        {"precision", std::string(precisionOpt)},
        {"isa", std::string(isaName(resolveISA(opts)))},
        {"threads", static_cast<int64_t>(threadsOpt)},
        {"mixq_gflops", mixqGflops},
        {"openblas_gflops", blasGflops},
        {"ratio", blasGflops > 0 ? mixqGflops / blasGflops : 0.0},
        {"mixq_ms", tMixq * 1e3},
        {"openblas_ms", tBlas * 1e3},
        {"bytes_per_param", wBytes / (double(n) * k)},
        {"bits_per_param", 8.0 * wBytes / (double(n) * k)},
        {"bandwidth_gbs", triad},
        {"mixq_read_gbs", mixqGBs},
        {"bandwidth_fraction", mixqGBs / triad},
        {"weight_copies", static_cast<int64_t>(copies)}};
    // With one thread both libraries run on this thread: its CPU time is a
    // ratio robust to other processes sharing the machine.
    if (threadsOpt == 1 && tBlas > 0) {
      o["mixq_cpu_gflops"] = flops / mixqTime.cpu / 1e9;
      o["openblas_cpu_gflops"] = flops / blasTime.cpu / 1e9;
      o["cpu_ratio"] = blasTime.cpu / mixqTime.cpu;
    }
    llvm::outs() << llvm::json::Value(std::move(o)) << "\n";
  } else {
    llvm::outs() << llvm::formatv(
        "{0} m={1} n={2} k={3} rank={4}: mixq {5:F1} GFLOP/s ({6:F3} ms), "
        "openblas {7:F1} GFLOP/s, ratio {8:F3}; reads {9:F1} GB/s of triad "
        "{10:F1} GB/s ({11:P})\n",
        formatOpt, m, n, k, rank, mixqGflops, tMixq * 1e3, blasGflops,
        blasGflops > 0 ? mixqGflops / blasGflops : 0.0, mixqGBs, triad,
        mixqGBs / triad);
  }
  return 0;
}
