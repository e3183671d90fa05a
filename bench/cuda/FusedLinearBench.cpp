//===- FusedLinearBench.cpp - generated fused kernels vs cuBLAS fp16 -----===//
//
// Linked with a variant's generated kernels (kernels/all.cu), MixQKernels,
// cudart and cuBLAS (bench/cuda/run.sh builds it). For every kernel of the
// variant and every row count M: a random W quantized on the host with the
// kernel's key (MixQKernels quantize(), the runtime's bytes), the fused
// forward (and, with --backward, backward) timed with CUDA events, and the
// peer on the same shape: cublasGemmEx with fp16 operands and output and f32
// accumulation (the Transformers/PEFT fp16 linear). The adapter, when the
// kernel has one, is part of the fused time; the peer has none, which favours
// the peer. Before timing, the fused forward is checked against the CPU
// reference (fusedLinearForward) for each M; a result outside the
// tolerance of test/CodeGen/gpu-check.test stops the bench (exit 1).
//
// Output: a table on stdout and, with --json FILE, one JSON object per
// (kernel, M) appended to FILE.
//
//===----------------------------------------------------------------------===//

#include "mixq_kernels.h"

#include "mixq/Cuda/KernelCheck.h"
#include "mixq/Kernels/FusedLinear.h"

#include <cublas_v2.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

using namespace mixq;
using namespace mixq::kernels;
using namespace mixq::cuda;

namespace {

struct Options {
  std::vector<int64_t> rows{1, 16, 512, 2048};
  int iters = 50;
  int warmup = 5;
  bool backward = false;
  bool check = true;
  std::string json;
  std::string only; ///< kernel name filter (substring)
};

[[noreturn]] void die(const char *what, const char *detail) {
  std::fprintf(stderr, "mixq-bench-cuda: %s: %s\n", what, detail);
  std::exit(2);
}

void checkCuda(cudaError_t e, const char *what) {
  if (e != cudaSuccess)
    die(what, cudaGetErrorString(e));
}

void checkBlas(cublasStatus_t s, const char *what) {
  if (s != CUBLAS_STATUS_SUCCESS)
    die(what, ("cuBLAS status " + std::to_string(int(s))).c_str());
}

/// A device allocation; freed on destruction.
struct DeviceMem {
  void *ptr = nullptr;
  size_t bytes = 0;
  DeviceMem() = default;
  explicit DeviceMem(size_t n) : bytes(n) {
    checkCuda(cudaMalloc(&ptr, std::max<size_t>(n, 4)), "cudaMalloc");
  }
  DeviceMem(const DeviceMem &) = delete;
  DeviceMem &operator=(const DeviceMem &) = delete;
  DeviceMem(DeviceMem &&o) noexcept : ptr(o.ptr), bytes(o.bytes) {
    o.ptr = nullptr;
  }
  ~DeviceMem() {
    if (ptr)
      cudaFree(ptr);
  }
  template <typename T> static DeviceMem of(const std::vector<T> &v) {
    DeviceMem d(v.size() * sizeof(T));
    if (!v.empty())
      checkCuda(cudaMemcpy(d.ptr, v.data(), v.size() * sizeof(T),
                           cudaMemcpyHostToDevice),
                "cudaMemcpy");
    return d;
  }
  template <typename T> T *get() const { return static_cast<T *>(ptr); }
};

std::vector<__half> toHalf(const std::vector<float> &v) {
  std::vector<__half> h(v.size());
  for (size_t i = 0; i < v.size(); ++i)
    h[i] = __float2half_rn(v[i]);
  return h;
}

/// Milliseconds per call of `fn` (enqueues one call), by CUDA events over
/// `iters` calls after `warmup` untimed ones.
template <typename Fn> double timeMs(const Options &o, Fn fn) {
  for (int i = 0; i < o.warmup; ++i)
    fn();
  checkCuda(cudaDeviceSynchronize(), "warm-up");
  cudaEvent_t start, stop;
  checkCuda(cudaEventCreate(&start), "cudaEventCreate");
  checkCuda(cudaEventCreate(&stop), "cudaEventCreate");
  checkCuda(cudaEventRecord(start, nullptr), "cudaEventRecord");
  for (int i = 0; i < o.iters; ++i)
    fn();
  checkCuda(cudaEventRecord(stop, nullptr), "cudaEventRecord");
  checkCuda(cudaEventSynchronize(stop), "cudaEventSynchronize");
  float ms = 0.0f;
  checkCuda(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return double(ms) / o.iters;
}

std::vector<int64_t> parseList(const char *s) {
  std::vector<int64_t> v;
  for (const char *p = s; *p;) {
    char *end = nullptr;
    long long x = std::strtoll(p, &end, 10);
    if (end == p || x < 1)
      die("--rows", "expected a comma-separated list of positive integers");
    v.push_back(x);
    p = *end == ',' ? end + 1 : end;
    if (*end && *end != ',')
      die("--rows", "expected a comma-separated list of positive integers");
  }
  return v;
}

Options parseOptions(int argc, char **argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> const char * {
      if (i + 1 >= argc)
        die(a.c_str(), "missing value");
      return argv[++i];
    };
    if (a == "--rows")
      o.rows = parseList(value());
    else if (a == "--iters")
      o.iters = std::max(1, std::atoi(value()));
    else if (a == "--warmup")
      o.warmup = std::max(0, std::atoi(value()));
    else if (a == "--backward")
      o.backward = true;
    else if (a == "--no-check")
      o.check = false;
    else if (a == "--json")
      o.json = value();
    else if (a == "--only")
      o.only = value();
    else
      die(a.c_str(), "unknown option (--rows L --iters N --warmup N "
                     "--backward --no-check --json FILE --only NAME)");
  }
  return o;
}

struct Result {
  std::string kernel;
  int64_t m = 0;
  double fusedMs = 0, peerMs = 0, fusedBwdMs = 0, peerBwdMs = 0;
  double relErr = NAN;
  size_t packedBytes = 0;
};

} // namespace

int main(int argc, char **argv) {
  Options opts = parseOptions(argc, argv);
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("SKIP: no CUDA device; nothing was timed\n");
    return 0;
  }
  cudaDeviceProp prop;
  checkCuda(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
  const bool emulated = std::strstr(prop.name, "emulator") != nullptr;
  std::printf("device: %s (sm_%d%d)%s\n", prop.name, prop.major, prop.minor,
              emulated ? " -- CPU emulator: the times below say nothing "
                         "about a GPU"
                       : "");
  cublasHandle_t blas;
  checkBlas(cublasCreate(&blas), "cublasCreate");
  std::FILE *json = nullptr;
  if (!opts.json.empty() && !(json = std::fopen(opts.json.c_str(), "a")))
    die(opts.json.c_str(), "cannot open for appending");

  std::printf("%-32s %6s %10s %10s %7s", "kernel", "M", "fused us",
              "cublas us", "ratio");
  if (opts.backward)
    std::printf(" %10s %10s %7s", "bwd us", "cublas us", "ratio");
  std::printf(" %9s %8s\n", "GB/s W", "rel.err");

  std::mt19937 rng(7);
  int failures = 0;
  for (const MixQCudaKernel *k = mixq_cuda_kernels; k->name; ++k) {
    if (!opts.only.empty() && !std::strstr(k->name, opts.only.c_str()))
      continue;
    std::vector<float> w = randomVector(rng, size_t(k->out) * k->in, 1.0f);
    llvm::Expected<QuantizedTensor> q =
        quantize(w.data(), k->out, k->in, quantSpecOf(*k));
    if (!q)
      die(k->name, llvm::toString(q.takeError()).c_str());
    DeviceMem codes = DeviceMem::of(q->codes), scales = DeviceMem::of(q->scales),
              zeros = DeviceMem::of(q->zeros),
              scaleCodes = DeviceMem::of(q->scaleCodes),
              scaleAbsmax = DeviceMem::of(q->scaleAbsmax);
    const size_t packedBytes =
        q->codes.size() + 4 * (q->scales.size() + q->zeros.size() +
                               q->scaleAbsmax.size()) +
        q->scaleCodes.size();
    MixQCudaWeight weight = {codes.get<uint8_t>(),     scales.get<float>(),
                             zeros.get<float>(),       scaleCodes.get<uint8_t>(),
                             scaleAbsmax.get<float>(), q->scaleOffset};

    AdapterView view = adapterViewOf(*k, 2.0f);
    llvm::Expected<AdapterShapes> shapes = adapterShapes(view, k->in, k->out);
    if (!shapes)
      die(k->name, llvm::toString(shapes.takeError()).c_str());
    std::vector<float> a = randomVector(rng, shapes->aRows * shapes->aCols, 0.05f);
    std::vector<float> b = randomVector(rng, shapes->bRows * shapes->bCols, 0.05f);
    std::vector<float> h = randomVector(rng, shapes->hRows * shapes->hCols, 0.05f);
    view.A = a.data();
    view.B = b.data();
    view.H = h.data();
    DeviceMem dA = DeviceMem::of(a), dB = DeviceMem::of(b), dH = DeviceMem::of(h);
    MixQCudaAdapter adapter = {dA.get<float>(), dB.get<float>(),
                               dH.get<float>(), view.scale};
    const MixQCudaAdapter *adapterArg = k->adapter ? &adapter : nullptr;

    // The peer's fp16 copy of the dequantized weight (the same values).
    std::vector<float> wDeq(w.size());
    dequantize(*q, wDeq.data());
    DeviceMem w16 = DeviceMem::of(toHalf(wDeq));

    for (int64_t m : opts.rows) {
      Result r;
      r.kernel = k->name;
      r.m = m;
      r.packedBytes = packedBytes;
      std::vector<float> x = randomVector(rng, size_t(m) * k->in, 1.0f);
      std::vector<float> dy = randomVector(rng, size_t(m) * k->out, 1.0f);
      DeviceMem dX = DeviceMem::of(x), dDy = DeviceMem::of(dy),
                dY(size_t(m) * k->out * 4), dDx(size_t(m) * k->in * 4),
                ws(k->workspaceBytes(m)),
                gA(a.size() * 4), gB(b.size() * 4), gH(h.size() * 4);
      DeviceMem x16 = DeviceMem::of(toHalf(x)), dy16 = DeviceMem::of(toHalf(dy)),
                y16(size_t(m) * k->out * 2), dx16(size_t(m) * k->in * 2);

      auto fused = [&] {
        checkCuda(k->forward(&weight, adapterArg, dX.get<float>(), nullptr, m,
                             dY.get<float>(), ws.ptr, nullptr),
                  "fused forward");
      };
      if (opts.check) {
        fused();
        checkCuda(cudaDeviceSynchronize(), "fused forward");
        std::vector<float> got(size_t(m) * k->out), ref(got.size());
        checkCuda(cudaMemcpy(got.data(), dY.ptr, got.size() * 4,
                             cudaMemcpyDeviceToHost),
                  "cudaMemcpy");
        if (llvm::Error e = fusedLinearForward(*q, view, x.data(), m,
                                               ref.data(), KernelOptions()))
          die(k->name, llvm::toString(std::move(e)).c_str());
        r.relErr = relativeError(got, ref);
        const double tol = m > 16 ? 2e-2 : 2e-4;
        if (!(r.relErr <= tol)) {
          std::printf("FAIL %s M=%lld: rel.err %.3g > %.1g against the CPU "
                      "reference\n",
                      k->name, (long long)m, r.relErr, tol);
          ++failures;
          continue;
        }
      }
      r.fusedMs = timeMs(opts, fused);
      const float one = 1.0f, zero = 0.0f;
      // Row-major Y [m, out] = X [m, in] W^T is column-major
      // Y^T = op_T(W as [in, out]) X^T.
      r.peerMs = timeMs(opts, [&] {
        checkBlas(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, int(k->out),
                               int(m), int(k->in), &one, w16.ptr, CUDA_R_16F,
                               int(k->in), x16.ptr, CUDA_R_16F, int(k->in),
                               &zero, y16.ptr, CUDA_R_16F, int(k->out),
                               CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                  "cublasGemmEx forward");
      });
      if (opts.backward) {
        MixQCudaGrads g = {dDx.get<float>(), nullptr, gA.get<float>(),
                           gB.get<float>(), gH.get<float>(), 0};
        r.fusedBwdMs = timeMs(opts, [&] {
          checkCuda(k->backward(&weight, adapterArg, dX.get<float>(), nullptr,
                                dDy.get<float>(), m, &g, ws.ptr, nullptr),
                    "fused backward");
        });
        // dX [m, in] = dY [m, out] W [out, in]: column-major
        // dX^T = op_N(W as [in, out]) dY^T.
        r.peerBwdMs = timeMs(opts, [&] {
          checkBlas(cublasGemmEx(blas, CUBLAS_OP_N, CUBLAS_OP_N, int(k->in),
                                 int(m), int(k->out), &one, w16.ptr,
                                 CUDA_R_16F, int(k->in), dy16.ptr, CUDA_R_16F,
                                 int(k->out), &zero, dx16.ptr, CUDA_R_16F,
                                 int(k->in), CUBLAS_COMPUTE_32F,
                                 CUBLAS_GEMM_DEFAULT),
                    "cublasGemmEx backward");
        });
      }
      const double gbs = packedBytes / (r.fusedMs * 1e-3) / 1e9;
      std::printf("%-32s %6lld %10.2f %10.2f %6.2fx", k->name, (long long)m,
                  r.fusedMs * 1e3, r.peerMs * 1e3, r.peerMs / r.fusedMs);
      if (opts.backward)
        std::printf(" %10.2f %10.2f %6.2fx", r.fusedBwdMs * 1e3,
                    r.peerBwdMs * 1e3, r.peerBwdMs / r.fusedBwdMs);
      std::printf(" %9.1f %8.2g\n", gbs, r.relErr);
      if (json) {
        std::fprintf(json,
                     "{\"device\": \"%s\", \"emulated\": %s, \"kernel\": "
                     "\"%s\", \"out\": %lld, \"in\": %lld, \"adapter\": %d, "
                     "\"m\": %lld, \"fused_us\": %.3f, \"cublas_fp16_us\": "
                     "%.3f, \"speedup\": %.4f, \"packed_bytes\": %zu, "
                     "\"rel_err\": %.4g",
                     prop.name, emulated ? "true" : "false", k->name,
                     (long long)k->out, (long long)k->in, k->adapter,
                     (long long)m, r.fusedMs * 1e3, r.peerMs * 1e3,
                     r.peerMs / r.fusedMs, packedBytes,
                     std::isfinite(r.relErr) ? r.relErr : -1.0);
        if (opts.backward)
          std::fprintf(json,
                       ", \"fused_bwd_us\": %.3f, \"cublas_fp16_bwd_us\": "
                       "%.3f, \"bwd_speedup\": %.4f",
                       r.fusedBwdMs * 1e3, r.peerBwdMs * 1e3,
                       r.peerBwdMs / r.fusedBwdMs);
        std::fprintf(json, ", \"iters\": %d}\n", opts.iters);
      }
    }
  }
  if (json)
    std::fclose(json);
  cublasDestroy(blas);
  if (failures) {
    std::printf("FAILED: %d results outside the tolerance\n", failures);
    return 1;
  }
  return 0;
}
