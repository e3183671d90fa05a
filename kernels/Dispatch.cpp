//===- Dispatch.cpp - CPU features, kernel selection, thread pool -*- C++ -*-===//

#include "KernelsInternal.h"

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace mixq {
namespace kernels {

KernelISA detectISA() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
    return KernelISA::AVX512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return KernelISA::AVX2;
#endif
  return KernelISA::Scalar;
}

bool cpuHasAVX512BF16() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  return detectISA() == KernelISA::AVX512 &&
         __builtin_cpu_supports("avx512bf16");
#else
  return false;
#endif
}

const char *isaName(KernelISA isa) {
  switch (isa) {
  case KernelISA::Auto:
    return "auto";
  case KernelISA::Scalar:
    return "scalar";
  case KernelISA::AVX2:
    return "avx2";
  case KernelISA::AVX512:
    return "avx512";
  }
  return "?";
}

static int isaRank(KernelISA isa) {
  switch (isa) {
  case KernelISA::Scalar:
    return 0;
  case KernelISA::AVX2:
    return 1;
  case KernelISA::AVX512:
  case KernelISA::Auto:
    return 2;
  }
  return 0;
}

KernelISA resolveISA(const KernelOptions &opts) {
  static const KernelISA best = detectISA();
  int want = std::min(isaRank(opts.isa), isaRank(best));
  if (want >= 2 && detail::avx512Kernels())
    return KernelISA::AVX512;
  if (want >= 1 && detail::avx2Kernels())
    return KernelISA::AVX2;
  return KernelISA::Scalar;
}

namespace detail {

const IsaKernels &selectKernels(const KernelOptions &opts) {
  switch (resolveISA(opts)) {
  case KernelISA::AVX512:
    return *avx512Kernels();
  case KernelISA::AVX2:
    return *avx2Kernels();
  default:
    return scalarKernels();
  }
}

int resolveThreads(const KernelOptions &opts) {
  static const int hw =
      std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  int want = opts.threads > 0 ? opts.threads : std::min(2, hw);
  return std::max(1, std::min(want, hw));
}

//===----------------------------------------------------------------------===//
// Thread pool
//===----------------------------------------------------------------------===//

namespace {

thread_local bool insidePool = false;

/// nThreads - 1 persistent workers; the caller runs share 0. Calls are
/// serialized; a nested or concurrent call runs single-threaded inline.
class Pool {
public:
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mu);
      stop = true;
    }
    wake.notify_all();
    for (std::thread &t : workers)
      t.join();
  }

  void run(int nThreads, const std::function<void(int, int)> &fn) {
    std::unique_lock<std::mutex> callLock(callMu, std::try_to_lock);
    if (nThreads <= 1 || insidePool || !callLock.owns_lock()) {
      fn(0, 1);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mu);
      while (static_cast<int>(workers.size()) < nThreads - 1) {
        int id = static_cast<int>(workers.size()) + 1;
        workers.emplace_back([this, id] { workerLoop(id); });
      }
      job = &fn;
      jobThreads = nThreads;
      pending = nThreads - 1;
      ++generation;
    }
    wake.notify_all();
    insidePool = true;
    fn(0, nThreads);
    insidePool = false;
    std::unique_lock<std::mutex> lock(mu);
    done.wait(lock, [&] { return pending == 0; });
    job = nullptr;
  }

private:
  void workerLoop(int id) {
    insidePool = true;
    uint64_t seen = 0;
    for (;;) {
      const std::function<void(int, int)> *fn;
      int nt;
      {
        std::unique_lock<std::mutex> lock(mu);
        wake.wait(lock, [&] { return stop || generation != seen; });
        if (stop)
          return;
        seen = generation;
        fn = job;
        nt = jobThreads;
      }
      if (id < nt)
        (*fn)(id, nt);
      {
        std::lock_guard<std::mutex> lock(mu);
        if (id < nt)
          --pending;
      }
      done.notify_all();
    }
  }

  std::mutex callMu, mu;
  std::condition_variable wake, done;
  std::vector<std::thread> workers;
  const std::function<void(int, int)> *job = nullptr;
  int jobThreads = 0, pending = 0;
  uint64_t generation = 0;
  bool stop = false;
};

} // namespace

void parallelRun(int nThreads, const std::function<void(int, int)> &fn) {
  static Pool pool;
  pool.run(nThreads, fn);
}

} // namespace detail
} // namespace kernels
} // namespace mixq
