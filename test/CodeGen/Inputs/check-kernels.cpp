//===- check-kernels.cpp - generated CUDA kernels vs the CPU reference ---===//
//
// Linked with a variant's generated kernels (kernels/all.cu) and MixQKernels.
// Always: checks the registry (every entry has its launchers and is found by
// name), the launchers' argument checks, which run on the host, and the
// kernels' decoder compiled for the host against the CPU dequantize() (bit
// for bit: the packed layout is read the same way). Then, if
// cudaGetDeviceCount finds a device: for every kernel, quantizes a random W
// with the kernel's key, runs forward and backward on the GPU for several row
// counts (GEMV and tensor-core paths) and compares with fusedLinearForward /
// fusedLinearBackward on the CPU (with a separate adapter input and
// dXAdapter for m = 5 and 130). Without a device it prints
// "SKIP: no CUDA device ..." and exits 0 (1 with --require-device).
//
// Built for the CPU emulator (-DMIXQ_CUDA_EMU, cudaemu/include; emu-check.test)
// the "device" is the emulator: the comparison runs only with
// --allow-emulator and says that the device is the emulator.
// --corrupt-weight flips one byte of every kernel's packed codes on the
// device only (the CPU reference keeps the right ones): the comparison must
// then FAIL, which shows that it can.
//
//===----------------------------------------------------------------------===//

#include "mixq_kernels.h"

#include "mixq/Cuda/KernelCheck.h"
#include "mixq/Kernels/FusedLinear.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

using namespace mixq;
using namespace mixq::kernels;
using namespace mixq::cuda;

namespace {

/// A device allocation holding a copy of a host vector (or zeros).
class DeviceBuffer {
public:
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer &) = delete;
  DeviceBuffer &operator=(const DeviceBuffer &) = delete;
  ~DeviceBuffer() {
    if (ptr)
      cudaFree(ptr);
  }
  template <typename T> bool upload(const std::vector<T> &v) {
    return allocate(v.size() * sizeof(T)) &&
           (v.empty() || cudaMemcpy(ptr, v.data(), v.size() * sizeof(T),
                                    cudaMemcpyHostToDevice) == cudaSuccess);
  }
  bool zeros(size_t bytes) {
    return allocate(bytes) && cudaMemset(ptr, 0, bytes) == cudaSuccess;
  }
  std::vector<float> download(size_t n) const {
    std::vector<float> v(n);
    if (n && cudaMemcpy(v.data(), ptr, n * sizeof(float),
                        cudaMemcpyDeviceToHost) != cudaSuccess)
      v.assign(n, NAN);
    return v;
  }
  template <typename T> T *get() const { return static_cast<T *>(ptr); }

private:
  bool allocate(size_t bytes) {
    if (ptr)
      cudaFree(ptr);
    ptr = nullptr;
    return cudaMalloc(&ptr, std::max<size_t>(bytes, 4)) == cudaSuccess;
  }
  void *ptr = nullptr;
};

/// One kernel's weight and adapter on the host and the device.
struct Problem {
  QuantizedTensor q;
  AdapterView view;
  AdapterShapes shapes;
  std::vector<float> a, b, h;
  DeviceBuffer codes, scales, zeros, scaleCodes, scaleAbsmax, dA, dB, dH;
  MixQCudaWeight weight{};
  MixQCudaAdapter adapter{};
};

bool setUp(const MixQCudaKernel &k, std::mt19937 &rng, bool corrupt,
           Problem &p) {
  std::vector<float> w = randomVector(rng, k.out * k.in, 1.0f);
  llvm::Expected<QuantizedTensor> q = quantize(w.data(), k.out, k.in,
                                               quantSpecOf(k));
  if (!q) {
    std::printf("FAIL %s: quantize: %s\n", k.name,
                llvm::toString(q.takeError()).c_str());
    return false;
  }
  p.q = std::move(*q);
  p.view = adapterViewOf(k, 0.75f);
  llvm::Expected<AdapterShapes> s = adapterShapes(p.view, k.in, k.out);
  if (!s) {
    std::printf("FAIL %s: adapter: %s\n", k.name,
                llvm::toString(s.takeError()).c_str());
    return false;
  }
  p.shapes = *s;
  p.a = randomVector(rng, s->aRows * s->aCols, 0.5f);
  p.b = randomVector(rng, s->bRows * s->bCols, 0.5f);
  p.h = randomVector(rng, s->hRows * s->hCols, 0.5f);
  p.view.A = p.a.data();
  p.view.B = p.b.data();
  p.view.H = p.h.data();
  bool ok = p.codes.upload(p.q.codes) && p.scales.upload(p.q.scales) &&
            p.zeros.upload(p.q.zeros) && p.scaleCodes.upload(p.q.scaleCodes) &&
            p.scaleAbsmax.upload(p.q.scaleAbsmax) && p.dA.upload(p.a) &&
            p.dB.upload(p.b) && p.dH.upload(p.h);
  p.weight = {p.codes.get<uint8_t>(),      p.scales.get<float>(),
              p.zeros.get<float>(),        p.scaleCodes.get<uint8_t>(),
              p.scaleAbsmax.get<float>(),  p.q.scaleOffset};
  p.adapter = {p.dA.get<float>(), p.dB.get<float>(), p.dH.get<float>(),
               p.view.scale};
  if (ok && corrupt) {
    // One byte in the middle of the device copy of the codes.
    const size_t at = p.q.codes.size() / 2;
    uint8_t byte = 0;
    ok = cudaMemcpy(&byte, p.codes.get<uint8_t>() + at, 1,
                    cudaMemcpyDeviceToHost) == cudaSuccess;
    byte ^= 0x5a;
    ok = ok && cudaMemcpy(p.codes.get<uint8_t>() + at, &byte, 1,
                          cudaMemcpyHostToDevice) == cudaSuccess;
  }
  if (!ok)
    std::printf("FAIL %s: cannot copy the weight to the device\n", k.name);
  return ok;
}

/// Tolerance of a result computed from `m` rows by `path`: the tensor-core
/// GEMM rounds X and W to bf16 (m > 16), everything else is f32.
double toleranceFor(int64_t m, bool baseProduct) {
  return baseProduct && m > 16 ? 2e-2 : 2e-4;
}

struct Report {
  int checks = 0;
  int failures = 0;
  void check(const MixQCudaKernel &k, int64_t m, const char *what,
             const std::vector<float> &got, const std::vector<float> &ref,
             double tol) {
    double err = relativeError(got, ref);
    bool ok = err <= tol; // false for NaN
    ++checks;
    failures += ok ? 0 : 1;
    std::printf("%s %s m=%lld %s rel.err %.3g (tol %.1g)\n",
                ok ? "PASS" : "FAIL", k.name, static_cast<long long>(m), what,
                err, tol);
  }
};

/// Forward and backward of `k` for m rows, GPU against CPU.
bool checkRows(const MixQCudaKernel &k, Problem &p, int64_t m, bool separateXa,
               std::mt19937 &rng, Report &report) {
  const bool hasAdapter = k.adapter != 0;
  std::vector<float> x = randomVector(rng, m * k.in, 1.0f);
  std::vector<float> xa = separateXa ? randomVector(rng, m * k.in, 1.0f)
                                     : std::vector<float>();
  std::vector<float> dy = randomVector(rng, m * k.out, 1.0f);
  const float *xaHost = separateXa ? xa.data() : nullptr;

  // With a separate adapter input (dropout) the caller also takes the
  // adapter's input gradient apart (dXAdapter).
  const bool splitDx = separateXa && hasAdapter;
  std::vector<float> yRef(m * k.out), dxRef(m * k.in), dxaRef(m * k.in);
  std::vector<float> dARef(p.a.size()), dBRef(p.b.size()), dHRef(p.h.size());
  LinearGrads grads;
  grads.dX = dxRef.data();
  grads.dXAdapter = splitDx ? dxaRef.data() : nullptr;
  grads.dA = dARef.data();
  grads.dB = dBRef.data();
  grads.dH = dHRef.data();
  KernelOptions opts;
  opts.isa = KernelISA::Scalar;
  if (llvm::Error e = fusedLinearForward(p.q, p.view, x.data(), m, yRef.data(),
                                         opts, xaHost)) {
    std::printf("FAIL %s: CPU forward: %s\n", k.name,
                llvm::toString(std::move(e)).c_str());
    return false;
  }
  if (llvm::Error e = fusedLinearBackward(p.q, p.view, x.data(), dy.data(), m,
                                          grads, opts, xaHost)) {
    std::printf("FAIL %s: CPU backward: %s\n", k.name,
                llvm::toString(std::move(e)).c_str());
    return false;
  }

  DeviceBuffer dX, dXa, dDy, dY, dDx, dDxa, gA, gB, gH, ws;
  size_t wsBytes = k.workspaceBytes(m);
  if (!dX.upload(x) || !dXa.upload(xa) || !dDy.upload(dy) ||
      !dY.zeros(yRef.size() * 4) || !dDx.zeros(dxRef.size() * 4) ||
      !dDxa.zeros(dxaRef.size() * 4) ||
      !gA.zeros(dARef.size() * 4) || !gB.zeros(dBRef.size() * 4) ||
      !gH.zeros(dHRef.size() * 4) || !ws.zeros(wsBytes)) {
    std::printf("FAIL %s: cudaMalloc/cudaMemcpy\n", k.name);
    return false;
  }
  const float *xaDev = separateXa ? dXa.get<float>() : nullptr;
  MixQCudaGrads g{dDx.get<float>(),
                  splitDx ? dDxa.get<float>() : nullptr,
                  gA.get<float>(),
                  gB.get<float>(),
                  gH.get<float>(),
                  0};
  cudaError_t e = k.forward(&p.weight, &p.adapter, dX.get<float>(), xaDev, m,
                            dY.get<float>(), ws.get<void>(), nullptr);
  if (e == cudaSuccess)
    e = k.backward(&p.weight, &p.adapter, dX.get<float>(), xaDev,
                   dDy.get<float>(), m, &g, ws.get<void>(), nullptr);
  if (e == cudaSuccess)
    e = cudaDeviceSynchronize();
  if (e != cudaSuccess) {
    std::printf("FAIL %s m=%lld: %s\n", k.name, static_cast<long long>(m),
                cudaGetErrorString(e));
    return false;
  }
  report.check(k, m, "y", dY.download(yRef.size()), yRef,
               toleranceFor(m, true));
  report.check(k, m, "dX", dDx.download(dxRef.size()), dxRef,
               toleranceFor(m, true));
  if (splitDx)
    report.check(k, m, "dXAdapter", dDxa.download(dxaRef.size()), dxaRef,
                 toleranceFor(m, false));
  if (hasAdapter && k.adapter != 3) {
    report.check(k, m, "dA", gA.download(dARef.size()), dARef,
                 toleranceFor(m, false));
    report.check(k, m, "dB", gB.download(dBRef.size()), dBRef,
                 toleranceFor(m, false));
  }
  if (k.adapter == 3)
    report.check(k, m, "dH", gH.download(dHRef.size()), dHRef,
                 toleranceFor(m, false));
  return true;
}

/// The kernels' decoder (dequantAt, compiled for the host) against the CPU
/// dequantize(): bit for bit, for every kernel's format and shape.
int checkDecodersOnHost() {
  std::mt19937 rng(99);
  int errors = 0, n = 0;
  for (const MixQCudaKernel *k = mixq_cuda_kernels; k->name; ++k, ++n) {
    std::vector<float> w = randomVector(rng, k->out * k->in, 1.0f);
    llvm::Expected<QuantizedTensor> q =
        quantize(w.data(), k->out, k->in, quantSpecOf(*k));
    if (!q) {
      std::printf("FAIL %s: quantize: %s\n", k->name,
                  llvm::toString(q.takeError()).c_str());
      ++errors;
      continue;
    }
    std::vector<float> ref(w.size()), got(w.size(), NAN);
    dequantize(*q, ref.data());
    MixQCudaWeight hostWeight = {q->codes.data(),      q->scales.data(),
                                 q->zeros.data(),      q->scaleCodes.data(),
                                 q->scaleAbsmax.data(), q->scaleOffset};
    k->dequantizeHost(&hostWeight, got.data());
    size_t bad = 0;
    for (size_t i = 0; i < ref.size(); ++i)
      bad += std::memcmp(&ref[i], &got[i], sizeof(float)) != 0;
    if (bad) {
      std::printf("FAIL %s: host decoder differs from dequantize() in %zu of "
                  "%zu values\n",
                  k->name, bad, ref.size());
      ++errors;
    }
  }
  std::printf("decoders: %d kernels, %s\n", n,
              errors ? "ERRORS" : "bit-exact with the CPU dequantize()");
  return errors;
}

/// Host-only checks: the registry and the launchers' argument validation.
int checkRegistry() {
  int errors = 0;
  int n = 0;
  for (const MixQCudaKernel *k = mixq_cuda_kernels; k->name; ++k, ++n) {
    if (!k->forward || !k->backward || !k->workspaceBytes ||
        !k->dequantizeHost ||
        mixq_cuda_find_kernel(k->name) != k) {
      std::printf("FAIL registry entry %s\n", k->name);
      ++errors;
    }
    if (k->workspaceBytes(-1) != 0 ||
        k->forward(nullptr, nullptr, nullptr, nullptr, 1, nullptr, nullptr,
                   nullptr) != cudaErrorInvalidValue ||
        k->backward(nullptr, nullptr, nullptr, nullptr, nullptr, 1, nullptr,
                    nullptr, nullptr) != cudaErrorInvalidValue) {
      std::printf("FAIL %s: bad arguments not rejected\n", k->name);
      ++errors;
    }
  }
  if (n != mixq_cuda_kernel_count || mixq_cuda_find_kernel("no_such_kernel")) {
    std::printf("FAIL registry: %d entries, count says %d\n", n,
                mixq_cuda_kernel_count);
    ++errors;
  }
  std::printf("registry: %d kernels, %s\n", n,
              errors ? "ERRORS" : "launchers and argument checks ok");
  return errors;
}

} // namespace

int main(int argc, char **argv) {
  bool requireDevice = false, allowEmulator = false, corrupt = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--require-device") == 0)
      requireDevice = true;
    else if (std::strcmp(argv[i], "--allow-emulator") == 0)
      allowEmulator = true;
    else if (std::strcmp(argv[i], "--corrupt-weight") == 0)
      corrupt = true;
    else {
      std::printf("unknown option %s (--require-device, --allow-emulator, "
                  "--corrupt-weight)\n",
                  argv[i]);
      return 2;
    }
  }
  if (checkRegistry() || checkDecodersOnHost())
    return 1;
  int devices = 0;
  cudaError_t e = cudaGetDeviceCount(&devices);
  if (e != cudaSuccess || devices == 0) {
    std::printf("SKIP: no CUDA device (cudaGetDeviceCount: %s, %d devices); "
                "the %d kernels were linked but NOT run against the CPU "
                "reference\n",
                cudaGetErrorString(e), devices, mixq_cuda_kernel_count);
    return requireDevice ? 1 : 0;
  }
#ifdef MIXQ_CUDA_EMU
  const bool emulator = true;
#else
  const bool emulator = false;
#endif
  if (emulator && !allowEmulator) {
    std::printf("SKIP: built for the CPU emulator, not a GPU; pass "
                "--allow-emulator to run the %d kernels on it\n",
                mixq_cuda_kernel_count);
    return requireDevice ? 1 : 0;
  }
  cudaDeviceProp prop;
  cudaGetDeviceProperties(&prop, 0);
  std::printf("device: %s (sm_%d%d)%s\n", prop.name, prop.major, prop.minor,
              emulator ? " -- the CPU emulator, not a GPU: checks the "
                         "kernels' logic, not tensor-core numerics or speed"
                       : "");
  std::mt19937 rng(1234);
  Report report;
  bool ok = true;
  for (const MixQCudaKernel *k = mixq_cuda_kernels; k->name; ++k) {
    Problem p;
    if (!setUp(*k, rng, corrupt, p)) {
      ok = false;
      continue;
    }
    const int64_t rows[] = {1, 5, 16, 17, 64, 130};
    for (int64_t m : rows)
      ok &= checkRows(*k, p, m, /*separateXa=*/m == 5 || m == 130, rng,
                      report);
  }
  std::printf("%s: %d checks, %d failures\n",
              ok && report.failures == 0 ? "ALL PASSED" : "FAILED",
              report.checks, report.failures);
  return ok && report.failures == 0 ? 0 : 1;
}
