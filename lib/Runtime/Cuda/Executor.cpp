//===- Executor.cpp - a Model's training step on a CUDA device -----------===//
//
// The DeviceExecutor of the `cuda` and `cuda-emu` backends (Device.h): one
// source, built with the CUDA toolkit's headers into libMixQCudaExec.so and
// with the emulator's (-DMIXQ_CUDA_EMU) into libMixQCudaExecEmu.so.
//
// At creation it checks the model for features it does not run (before any
// device work), compiles the variant's kernels/all.cu into a cached shared
// object, finds each linear's kernel by the name kernels/manifest.json gives
// it, and copies the bases, norms, embedding and adapters to the device
// through one allocator (DeviceMemory) that accounts every byte by category.
// Each step runs the forward and backward of Model.cpp op for op on the
// device; within the Trainer's AdamW on the device (optimizerBegin ..
// optimizerEnd) parameters, gradients and moments stay there, otherwise the
// adapters are uploaded before and the gradients added into the host
// Model's buffers after. Inference
// (Model::forwardInfer: eval, generate) runs there too, with its KV cache in
// device memory; only the requested logit rows come back to the host.
//
//===----------------------------------------------------------------------===//

#include "CudaExecConfig.h"
#include "DeviceOps.h"
#include "mixq/Cuda/KernelABI.h"

#include "mixq/Runtime/Device.h"
#include "mixq/Runtime/Model.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Support/xxhash.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <dlfcn.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <unordered_map>

using namespace llvm;

namespace mixq {
namespace runtime {
namespace {

#ifdef MIXQ_CUDA_EMU
constexpr const char *kBackendName = "cuda-emu";
#else
constexpr const char *kBackendName = "cuda";
#endif

Error execError(const Twine &msg) {
  return createStringError(inconvertibleErrorCode(), msg);
}

Error cudaCheck(cudaError_t st, const Twine &what) {
  if (st == cudaSuccess)
    return Error::success();
  return execError("CUDA error in " + what + ": " + cudaGetErrorName(st) +
                   " (" + cudaGetErrorString(st) + ")");
}

Error blasCheck(cublasStatus_t st, const Twine &what) {
  if (st == CUBLAS_STATUS_SUCCESS)
    return Error::success();
  return execError("cuBLAS error " + Twine(int(st)) + " in " + what);
}

#define MIXQ_TRY(expr)                                                         \
  do {                                                                         \
    if (Error mixqErr_ = (expr))                                               \
      return std::move(mixqErr_);                                              \
  } while (0)

//===----------------------------------------------------------------------===//
// Device memory: every cudaMalloc goes through DeviceMemory.
//===----------------------------------------------------------------------===//

class DeviceMemory {
public:
  ~DeviceMemory() {
    for (auto &kv : live_)
      cudaFree(kv.first);
  }
  Expected<void *> allocate(MemCategory cat, int64_t bytes, const char *what) {
    if (bytes <= 0)
      return nullptr;
    void *p = nullptr;
    cudaError_t st = cudaMalloc(&p, size_t(bytes));
    if (st != cudaSuccess) {
      cudaGetLastError(); // clear the sticky-free error state
      return execError(formatv("device out of memory: {0} bytes for {1} "
                               "({2} bytes live): {3}",
                               bytes, what, tracker_.liveTotal(),
                               cudaGetErrorString(st)));
    }
    tracker_.allocate(cat, bytes);
    live_[p] = {cat, bytes};
    return p;
  }
  void release(void *p) {
    auto it = live_.find(p);
    if (it == live_.end())
      return;
    tracker_.release(it->second.first, it->second.second);
    cudaFree(p);
    live_.erase(it);
  }
  const MemoryTracker &tracker() const { return tracker_; }

private:
  MemoryTracker tracker_;
  std::unordered_map<void *, std::pair<MemCategory, int64_t>> live_;
};

/// A device array owned through DeviceMemory. Move-only.
template <typename T> class DevBuf {
public:
  DevBuf() = default;
  DevBuf(const DevBuf &) = delete;
  DevBuf &operator=(const DevBuf &) = delete;
  DevBuf(DevBuf &&o) noexcept { swap(o); }
  DevBuf &operator=(DevBuf &&o) noexcept {
    if (this != &o) {
      DevBuf tmp(std::move(o));
      swap(tmp);
    }
    return *this;
  }
  ~DevBuf() { reset(); }

  Error alloc(DeviceMemory &mem, MemCategory cat, int64_t count,
              const char *what) {
    reset();
    auto p = mem.allocate(cat, count * int64_t(sizeof(T)), what);
    if (!p)
      return p.takeError();
    mem_ = &mem;
    ptr_ = static_cast<T *>(*p);
    size_ = count;
    return Error::success();
  }
  Error upload(const T *host, int64_t count) {
    if (count == 0)
      return Error::success();
    return cudaCheck(cudaMemcpy(ptr_, host, sizeof(T) * size_t(count),
                                cudaMemcpyHostToDevice),
                     "upload");
  }
  /// alloc + upload.
  Error fill(DeviceMemory &mem, MemCategory cat, const T *host, int64_t count,
             const char *what) {
    MIXQ_TRY(alloc(mem, cat, count, what));
    return upload(host, count);
  }
  Error zero() {
    if (!ptr_)
      return Error::success();
    return cudaCheck(cudaMemset(ptr_, 0, sizeof(T) * size_t(size_)), "memset");
  }
  void reset() {
    if (mem_ && ptr_)
      mem_->release(ptr_);
    mem_ = nullptr;
    ptr_ = nullptr;
    size_ = 0;
  }
  T *get() const { return ptr_; }
  int64_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

private:
  void swap(DevBuf &o) {
    std::swap(mem_, o.mem_);
    std::swap(ptr_, o.ptr_);
    std::swap(size_, o.size_);
  }
  DeviceMemory *mem_ = nullptr;
  T *ptr_ = nullptr;
  int64_t size_ = 0;
};

//===----------------------------------------------------------------------===//
// Compiling and loading the variant's kernels
//===----------------------------------------------------------------------===//

/// The command that builds kernels/all.cu into `out` for this backend.
std::vector<std::string> kernelCompileCommand(StringRef kernelsDir,
                                              StringRef out, int ccMajor,
                                              int ccMinor) {
  SmallString<256> all(kernelsDir);
  sys::path::append(all, "all.cu");
#ifdef MIXQ_CUDA_EMU
  (void)ccMajor;
  (void)ccMinor;
  SmallString<256> libDir(MIXQ_EXEC_EMU_LIBRARY);
  sys::path::remove_filename(libDir);
  return {MIXQ_EXEC_HOST_CXX,
          "-std=c++17",
          "-O1",
          "-x",
          "c++",
          "-ffp-contract=off",
          "-DMIXQ_CUDA_EMU",
          "-I" MIXQ_EXEC_EMU_INCLUDE_DIR,
          ("-I" + kernelsDir).str(),
          "-shared",
          "-fPIC",
          "-o",
          out.str(),
          all.str().str(),
          "-x",
          "none",
          MIXQ_EXEC_EMU_LIBRARY,
          ("-Wl,-rpath," + libDir).str()};
#else
  std::string arch =
      formatv("arch=compute_{0}{1},code=sm_{0}{1}", ccMajor, ccMinor).str();
  return {MIXQ_EXEC_NVCC,
          "-std=c++17",
          "-O3",
          "-shared",
          "-Xcompiler",
          "-fPIC",
          "-cudart",
          "shared",
          "-gencode",
          arch,
          ("-I" + kernelsDir).str(),
          "-o",
          out.str(),
          all.str().str()};
#endif
}

/// xxh3 of the command and of every *.cu / *.h file of the kernels dir.
/// The *.cu / *.h files of `dir`, sorted.
Error listSources(StringRef dir, std::vector<std::string> &files) {
  std::error_code ec;
  for (sys::fs::directory_iterator it(dir, ec), end; it != end && !ec;
       it.increment(ec)) {
    StringRef p = it->path();
    if (p.ends_with(".cu") || p.ends_with(".h"))
      files.push_back(p.str());
  }
  if (ec)
    return execError("cannot list '" + dir + "': " + ec.message());
  std::sort(files.begin(), files.end());
  return Error::success();
}

/// xxh3 of the command, of every *.cu / *.h file of the kernels dir and of
/// what the build links against (the emulator's headers and library, or
/// nvcc's size and time stamp as a stand-in for the toolkit version), so a
/// cached object is never reused across a toolchain or emulator change.
Expected<uint64_t> kernelSourceHash(StringRef kernelsDir,
                                    ArrayRef<std::string> cmd) {
  std::vector<std::string> files;
  MIXQ_TRY(listSources(kernelsDir, files));
  std::string blob;
  for (const std::string &a : cmd)
    blob += a + '\0';
#ifdef MIXQ_CUDA_EMU
  MIXQ_TRY(listSources(MIXQ_EXEC_EMU_INCLUDE_DIR, files));
  const char *toolchain = MIXQ_EXEC_EMU_LIBRARY;
#else
  const char *toolchain = MIXQ_EXEC_NVCC;
#endif
  sys::fs::file_status st;
  if (!sys::fs::status(toolchain, st))
    blob += formatv("{0}:{1}:{2}", toolchain, st.getSize(),
                    st.getLastModificationTime().time_since_epoch().count())
                .str();
  for (const std::string &f : files) {
    auto buf = MemoryBuffer::getFile(f);
    if (!buf)
      return execError("cannot read '" + f + "': " + buf.getError().message());
    blob += sys::path::filename(f).str() + '\0';
    blob += (*buf)->getBuffer().str();
  }
  return xxh3_64bits(StringRef(blob));
}

std::string joinCommand(ArrayRef<std::string> cmd) {
  std::string s;
  for (const std::string &a : cmd)
    s += (s.empty() ? "" : " ") + a;
  return s;
}

/// Runs `cmd` (cmd[0] found on PATH if not a path); returns its exit code
/// (-1 when it cannot start) and the tail of its output in `output`.
int runCommand(ArrayRef<std::string> cmd, std::string &output) {
  auto prog = sys::findProgramByName(cmd[0]);
  if (!prog) {
    output = "'" + cmd[0] + "' not found: " + prog.getError().message();
    return -1;
  }
  SmallString<256> log;
  sys::fs::createTemporaryFile("mixq-device", "log", log);
  std::vector<StringRef> args(cmd.begin(), cmd.end());
  std::optional<StringRef> redirects[] = {std::nullopt, StringRef(log),
                                          StringRef(log)};
  std::string msg;
  int rc =
      sys::ExecuteAndWait(*prog, args, std::nullopt, redirects, 0, 0, &msg);
  output = msg;
  if (auto b = MemoryBuffer::getFile(log))
    output += (*b)->getBuffer().take_back(4000).str();
  sys::fs::remove(log);
  return rc;
}

/// Writes `variantDir`/kernels from the variant's variant.mlir (written by
/// --mixq-emit-variant) with the mixq-opt next to the running executable
/// (or the build's bin/). Returns false, doing nothing, when either is
/// missing.
Expected<bool> generateKernels(StringRef variantDir, bool verbose) {
  SmallString<256> mlir(variantDir);
  sys::path::append(mlir, "variant.mlir");
  if (!sys::fs::exists(mlir))
    return false;
  SmallString<256> opt(sys::fs::getMainExecutable(
      nullptr, reinterpret_cast<void *>(&generateKernels)));
  sys::path::remove_filename(opt);
  sys::path::append(opt, "mixq-opt");
  if (!sys::fs::can_execute(opt)) {
    opt = MIXQ_EXEC_TOOLS_DIR;
    sys::path::append(opt, "mixq-opt");
    if (!sys::fs::can_execute(opt))
      return false;
  }
  std::vector<std::string> cmd = {
      opt.str().str(), mlir.str().str(),
      ("--mixq-emit-kernels=out=" + variantDir).str(), "-o", "/dev/null"};
  if (verbose)
    errs() << "mixq-run: generating the kernels of '" << variantDir
           << "': " << joinCommand(cmd) << "\n";
  std::string out;
  if (int rc = runCommand(cmd, out))
    return execError(formatv("generating the kernels of '{0}' failed (exit "
                             "{1}): {2}\n{3}",
                             variantDir, rc, joinCommand(cmd), out));
  return true;
}

/// Removes the other builds of this backend ("all-<backend>-0x<key>.so";
/// the key's "0x" keeps cuda from matching cuda-emu) from a variant's kernel
/// cache, keeping `keep`. Best effort: a file that cannot be removed stays.
void pruneKernelCache(StringRef cacheDir, StringRef keep) {
  const std::string prefix = formatv("all-{0}-0x", kBackendName).str();
  std::error_code ec;
  for (sys::fs::directory_iterator it(cacheDir, ec), end; it != end && !ec;
       it.increment(ec)) {
    StringRef name = sys::path::filename(it->path());
    if (name.starts_with(prefix) && name.ends_with(".so") &&
        it->path() != keep)
      sys::fs::remove(it->path());
  }
}

/// Compiles (or finds in the cache) the kernels of `variantDir` and dlopens
/// them; returns the handle.
Expected<void *> loadKernelLibrary(StringRef variantDir, int ccMajor,
                                   int ccMinor, bool verbose) {
  const std::string regen =
      formatv("generate them with: mixq-import CHECKPOINT | mixq-opt "
              "--mixq-assign-config=config=CONFIG "
              "--mixq-emit-variant=out={0} --mixq-emit-kernels=out={0}",
              variantDir)
          .str();
  SmallString<256> kdir(variantDir);
  sys::path::append(kdir, "kernels");
  SmallString<256> all(kdir);
  sys::path::append(all, "all.cu");
  if (!sys::fs::exists(all)) {
    auto made = generateKernels(variantDir, verbose);
    if (!made)
      return made.takeError();
    if (!*made || !sys::fs::exists(all))
      return execError(formatv("variant '{0}' has no generated kernels "
                               "('{1}' not found) and no variant.mlir to "
                               "generate them from; --device {2} runs the "
                               "variant's CUDA kernels: {3}",
                               variantDir, all, kBackendName, regen));
  }
  // The cache lives next to the sources (or in the temp dir when the variant
  // is read-only).
  SmallString<256> cacheDir(kdir);
  sys::path::append(cacheDir, ".cache");
  bool ownCache = true;
  if (sys::fs::create_directories(cacheDir)) {
    ownCache = false;
    sys::path::system_temp_directory(true, cacheDir);
    sys::path::append(cacheDir, "mixq-kernel-cache");
    if (std::error_code ec = sys::fs::create_directories(cacheDir))
      return execError("cannot create a kernel cache directory '" + cacheDir +
                       "': " + ec.message());
  }
  // Hash with a placeholder output path so the key does not depend on it.
  auto key = kernelSourceHash(
      kdir, kernelCompileCommand(kdir, "OUT", ccMajor, ccMinor));
  if (!key)
    return key.takeError();
  SmallString<256> lib(cacheDir);
  sys::path::append(lib,
                    formatv("all-{0}-{1:x16}.so", kBackendName, *key).str());
  if (!sys::fs::exists(lib)) {
    SmallString<256> tmp;
    if (std::error_code ec =
            sys::fs::createUniqueFile(lib + ".tmp-%%%%%%", tmp))
      return execError("cannot create '" + lib + ".tmp': " + ec.message());
    std::vector<std::string> cmd =
        kernelCompileCommand(kdir, tmp, ccMajor, ccMinor);
    if (verbose)
      errs() << "mixq-run: compiling the kernels of '" << variantDir
             << "': " << joinCommand(cmd) << "\n";
    std::string out;
    if (int rc = runCommand(cmd, out)) {
      sys::fs::remove(tmp);
      return execError(formatv("compiling the kernels of '{0}' failed "
                               "(exit {1}): {2}\n{3}",
                               variantDir, rc, joinCommand(cmd), out));
    }
    if (std::error_code ec = sys::fs::rename(tmp, lib))
      return execError("cannot rename '" + tmp + "' to '" + lib +
                       "': " + ec.message());
    // The variant's own cache keeps one build per backend: the builds of
    // earlier kernel sources are dropped (a process that still runs one
    // keeps its mapping). The shared temp-dir cache is left alone.
    if (ownCache)
      pruneKernelCache(cacheDir, lib);
  }
  void *h = dlopen(lib.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h)
    return execError(formatv("cannot load the kernels of '{0}' ({1}): {2}",
                             variantDir, lib, dlerror()));
  return h;
}

/// (layer, role) -> kernel name, from kernels/manifest.json.
Expected<std::map<std::pair<int64_t, std::string>, std::string>>
readKernelManifest(StringRef variantDir) {
  SmallString<256> path(variantDir);
  sys::path::append(path, "kernels", "manifest.json");
  auto buf = MemoryBuffer::getFile(path);
  if (!buf)
    return execError("cannot read '" + path + "': " + buf.getError().message());
  auto v = json::parse((*buf)->getBuffer());
  if (!v)
    return execError("'" + path + "': " + toString(v.takeError()));
  std::map<std::pair<int64_t, std::string>, std::string> m;
  const json::Object *root = v->getAsObject();
  const json::Object *kernels = root ? root->getObject("kernels") : nullptr;
  if (!kernels)
    return execError("'" + path + "': no \"kernels\" object");
  for (const auto &kv : *kernels) {
    const json::Object *k = kv.second.getAsObject();
    const json::Array *lins = k ? k->getArray("linears") : nullptr;
    if (!lins)
      return execError("'" + path + "': kernel '" + kv.first.str() +
                       "' has no \"linears\" array");
    for (const json::Value &l : *lins) {
      const json::Object *lo = l.getAsObject();
      auto layer = lo ? lo->getInteger("layer") : std::nullopt;
      auto role = lo ? lo->getString("role") : std::nullopt;
      if (role && *role == "lm_head" && !layer)
        layer = -1; // the manifest lists lm_head without a layer
      if (!layer || !role)
        return execError("'" + path + "': a linear of kernel '" +
                         kv.first.str() + "' lacks layer / role");
      m[{*layer, role->str()}] = kv.first.str();
    }
  }
  return m;
}

//===----------------------------------------------------------------------===//
// The executor
//===----------------------------------------------------------------------===//

struct DevLinear {
  LinearLayer *host = nullptr;
  const MixQCudaKernel *kernel = nullptr; ///< null: cuBLAS on `dense`
  MixQCudaWeight w{};
  DevBuf<uint8_t> codes, scaleCodes;
  DevBuf<float> scales, zeros, scaleAbsmax, dense;
  MixQCudaAdapter ad{};
  DevBuf<float> A, B, H, dA, dB, dH;
  bool train = false; ///< adapter with gradients
};

struct DevLayer {
  DevBuf<float> norm1, norm2;
  DevLinear proj[kNumProjectionRoles];
};

/// Tensors of one decoder layer kept for the backward pass.
struct DevActs {
  DevBuf<float> x, xn, rinv1, q, k, v, probs, att, xmid, xn2, rinv2, gate, up,
      hmid;
  DevBuf<uint8_t> mask[kNumProjectionRoles];
};

/// A KV cache on the device: per layer [capacity, g * hd] keys and values
/// (Activations). Valid while its executor lives.
struct DevKVCache final : DeviceKVCache {
  int64_t capacity = 0;
  std::vector<DevBuf<float>> k, v;
};

class CudaExecutor final : public DeviceExecutor {
public:
  CudaExecutor(Model &model, const DeviceOptions &opts)
      : model_(model), opts_(opts) {}
  ~CudaExecutor() override {
    layers_.clear();
    lmHead_.reset();
    if (blas_)
      cublasDestroy(blas_);
  }

  Error init();

  std::string deviceName() const override { return deviceName_; }
  Expected<double> forwardBackward(const Batch &batch, float gradScale,
                                   ArrayRef<const uint8_t *> masks) override {
    return run(batch, gradScale, masks, /*backward=*/true);
  }
  Expected<double> loss(const Batch &batch) override {
    return run(batch, 0.0f, {}, /*backward=*/false);
  }
  Expected<std::unique_ptr<DeviceKVCache>> makeCache(int64_t capacity) override;
  Error forwardInfer(ArrayRef<int> tokens, DeviceKVCache &cache, int64_t p0,
                     ArrayRef<int64_t> logitRows, float *logits) override;
  Error optimizerBegin(ArrayRef<float *> params, ArrayRef<const float *> m,
                       ArrayRef<const float *> v) override;
  Error zeroGradients() override;
  Error adamStep(const AdamScalars &s) override;
  Error optimizerSync(ArrayRef<float *> m, ArrayRef<float *> v) override;
  Error optimizerEnd(ArrayRef<float *> m, ArrayRef<float *> v) override;
  const MemoryTracker &memory() const override { return mem_.tracker(); }

private:
  Error checkSupported();
  Error setupLinear(
      DevLinear &dl, LinearLayer &lin,
      const std::map<std::pair<int64_t, std::string>, std::string> &names,
      MixQCudaFindKernelFn find);
  Error uploadParameters();
  Error ensureWorkspace(int64_t rows);
  Error gemmXWt(const float *x, const float *w, int64_t n, int64_t in,
                int64_t out, float *y);
  Error gemmDyW(const float *dy, const float *w, int64_t n, int64_t in,
                int64_t out, float *dx);
  Error linearForward(DevLinear &dl, const float *x, int64_t n, float *y,
                      const uint8_t *hostMask, DevBuf<uint8_t> *maskDev);
  Error linearBackward(DevLinear &dl, const float *x, const float *dy,
                       int64_t n, float *dx, const DevBuf<uint8_t> *maskDev);
  Expected<double> run(const Batch &batch, float gradScale,
                       ArrayRef<const uint8_t *> masks, bool backward);

  Model &model_;
  DeviceOptions opts_;
  DeviceMemory mem_;
  cublasHandle_t blas_ = nullptr;
  std::string deviceName_;
  DevBuf<float> embed_, finalNorm_, invFreq_;
  std::vector<DevLayer> layers_;
  std::unique_ptr<DevLinear> lmHead_;
  DevBuf<uint8_t> ws_;
  /// Device-resident AdamW (optimizerBegin .. optimizerEnd): one entry per
  /// Model::parameters() pair, its device parameter and gradient, and the
  /// moments.
  struct DevParam {
    DevBuf<float> *param = nullptr, *grad = nullptr;
    float *host = nullptr;
    DevBuf<float> m, v;
  };
  std::vector<DevParam> params_;
  bool resident_ = false;
};

Error CudaExecutor::checkSupported() {
  // Everything the device path does not run is refused here, before any
  // device work, naming the feature.
  auto unsupported = [&](const Twine &what) {
    return execError(Twine("--device ") + kBackendName + " does not support " +
                     what + " (run it with --device cpu)");
  };
  for (DecoderLayer &L : model_.layers()) {
    if (!L.dNorm1.empty() || !L.dNorm2.empty())
      return unsupported("--train-norms (trainable RMSNorm weights)");
    for (LinearLayer &lin : L.proj) {
      if (lin.isAdaLoRA())
        return unsupported("AdaLoRA adapters (linear '" + lin.weightName +
                           "')");
      if (!lin.dW.empty())
        return unsupported("base-weight gradients (importance measurement)");
    }
  }
  if (LinearLayer *lm = model_.lmHead())
    if (lm->hasAdapter())
      return unsupported("an adapter on lm_head");
  return Error::success();
}

Error CudaExecutor::init() {
  MIXQ_TRY(checkSupported());
  int count = 0;
  cudaError_t st = cudaGetDeviceCount(&count);
  if (st != cudaSuccess || count == 0) {
    cudaGetLastError();
    return execError(
        formatv("no CUDA device: cudaGetDeviceCount {0} ({1} "
                "devices); --device {2} needs a GPU (use "
                "--device cpu, or cuda-emu to test on the CPU "
                "emulator)",
                st == cudaSuccess ? "found none" : cudaGetErrorString(st),
                count, kBackendName));
  }
  MIXQ_TRY(cudaCheck(cudaSetDevice(0), "cudaSetDevice"));
  cudaDeviceProp prop;
  MIXQ_TRY(
      cudaCheck(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties"));
  deviceName_ = prop.name;
  MIXQ_TRY(blasCheck(cublasCreate(&blas_), "cublasCreate"));

  auto lib = loadKernelLibrary(opts_.variantDir, prop.major, prop.minor,
                               opts_.verbose);
  if (!lib)
    return lib.takeError();
  auto find = reinterpret_cast<MixQCudaFindKernelFn>(
      dlsym(*lib, "mixq_cuda_find_kernel"));
  if (!find)
    return execError("the kernels of '" + opts_.variantDir +
                     "' export no mixq_cuda_find_kernel (regenerate them)");
  auto names = readKernelManifest(opts_.variantDir);
  if (!names)
    return names.takeError();

  const ModelConfig &c = model_.config();
  const int64_t d = c.hiddenSize, v = c.vocabSize;
  MIXQ_TRY(embed_.fill(mem_, MemCategory::Weights, model_.embedding(), v * d,
                       "embedding"));
  MIXQ_TRY(finalNorm_.fill(mem_, MemCategory::Weights, model_.finalNorm(), d,
                           "final norm"));
  // RoPE inverse frequencies exactly as Ops.cpp computes them.
  const int64_t half = c.headDim / 2;
  std::vector<float> invFreq(half);
  for (int64_t i = 0; i < half; ++i)
    invFreq[i] =
        float(1.0 / std::pow(c.ropeTheta, double(2 * i) / double(c.headDim)));
  MIXQ_TRY(invFreq_.fill(mem_, MemCategory::Weights, invFreq.data(), half,
                         "rope frequencies"));
  layers_.resize(model_.layers().size());
  for (size_t l = 0; l < layers_.size(); ++l) {
    DecoderLayer &L = model_.layers()[l];
    DevLayer &D = layers_[l];
    MIXQ_TRY(
        D.norm1.fill(mem_, MemCategory::Weights, L.norm1.data(), d, "norm"));
    MIXQ_TRY(
        D.norm2.fill(mem_, MemCategory::Weights, L.norm2.data(), d, "norm"));
    for (int r = 0; r < kNumProjectionRoles; ++r)
      MIXQ_TRY(setupLinear(D.proj[r], L.proj[r], *names, find));
  }
  if (LinearLayer *lm = model_.lmHead()) {
    lmHead_ = std::make_unique<DevLinear>();
    MIXQ_TRY(setupLinear(*lmHead_, *lm, *names, find));
  }
  return cudaCheck(cudaDeviceSynchronize(), "setup");
}

Error CudaExecutor::setupLinear(
    DevLinear &dl, LinearLayer &lin,
    const std::map<std::pair<int64_t, std::string>, std::string> &names,
    MixQCudaFindKernelFn find) {
  dl.host = &lin;
  const bool needsKernel = !lin.isDense() || lin.hasAdapter();
  if (!needsKernel) {
    // f32 base without adapter: a plain cuBLAS GEMM.
    return dl.dense.fill(mem_, MemCategory::Weights, lin.dense.data(),
                         lin.out * lin.in, "f32 weight");
  }
  const std::string where = formatv("linear '{0}' (layer {1}, {2})",
                                    lin.weightName, lin.layer, lin.role)
                                .str();
  auto it = names.find({lin.layer, lin.role});
  if (it == names.end())
    return execError(formatv("variant '{0}': kernels/manifest.json names no "
                             "kernel for {1}; regenerate the kernels "
                             "(mixq-opt --mixq-emit-kernels=out={0})",
                             opts_.variantDir, where));
  dl.kernel = find(it->second.c_str());
  if (!dl.kernel)
    return execError(formatv("variant '{0}': the kernel registry has no "
                             "kernel '{1}' for {2}; regenerate the kernels "
                             "(mixq-opt --mixq-emit-kernels=out={0})",
                             opts_.variantDir, it->second, where));
  // The kernel must compute this linear (a stale kernels/ dir otherwise).
  const MixQCudaKernel &k = *dl.kernel;
  const kernels::AdapterView &view = lin.view;
  const int format = int(lin.spec.quant.format);
  const int adapter = int(lin.spec.adapter.kind);
  if (k.out != lin.out || k.in != lin.in || k.format != format ||
      k.adapter != adapter ||
      (adapter != 0 && adapter != 3 && k.storedRank != view.rank) ||
      (adapter != 0 &&
       (k.poolIn != view.poolIn || k.repeatOut != view.repeatOut)))
    return execError(formatv(
        "variant '{0}': kernel '{1}' does not match {2} (kernel [{3}, {4}] "
        "format {5} adapter {6} rank {7}; linear [{8}, {9}] format {10} "
        "adapter {11} rank {12}); regenerate the kernels "
        "(mixq-opt --mixq-emit-kernels=out={0})",
        opts_.variantDir, k.name, where, k.out, k.in, k.format, k.adapter,
        k.storedRank, lin.out, lin.in, format, adapter, view.rank));
  if (lin.isDense()) {
    // An f32 base with an adapter: the f32 kernel reads the floats as its
    // payload (rowBytes = 4 * in).
    MIXQ_TRY(dl.codes.fill(mem_, MemCategory::Weights,
                           reinterpret_cast<const uint8_t *>(lin.dense.data()),
                           lin.out * lin.in * int64_t(sizeof(float)),
                           "f32 weight"));
  } else {
    const kernels::QuantizedTensor &q = *lin.quant;
    MIXQ_TRY(dl.codes.fill(mem_, MemCategory::Weights, q.codes.data(),
                           int64_t(q.codes.size()), "packed codes"));
    MIXQ_TRY(dl.scales.fill(mem_, MemCategory::Weights, q.scales.data(),
                            int64_t(q.scales.size()), "scales"));
    MIXQ_TRY(dl.zeros.fill(mem_, MemCategory::Weights, q.zeros.data(),
                           int64_t(q.zeros.size()), "zeros"));
    MIXQ_TRY(dl.scaleCodes.fill(mem_, MemCategory::Weights, q.scaleCodes.data(),
                                int64_t(q.scaleCodes.size()), "scale codes"));
    MIXQ_TRY(
        dl.scaleAbsmax.fill(mem_, MemCategory::Weights, q.scaleAbsmax.data(),
                            int64_t(q.scaleAbsmax.size()), "scale absmax"));
    dl.w.scaleOffset = q.scaleOffset;
  }
  dl.w.codes = dl.codes.get();
  dl.w.scales = dl.scales.get();
  dl.w.zeros = dl.zeros.get();
  dl.w.scaleCodes = dl.scaleCodes.get();
  dl.w.scaleAbsmax = dl.scaleAbsmax.get();
  if (lin.hasAdapter()) {
    MIXQ_TRY(dl.A.alloc(mem_, MemCategory::Adapters, lin.A.size(), "lora_A"));
    MIXQ_TRY(dl.B.alloc(mem_, MemCategory::Adapters, lin.B.size(), "lora_B"));
    MIXQ_TRY(dl.H.alloc(mem_, MemCategory::Adapters, lin.H.size(), "lora_H"));
    dl.train = !lin.dA.empty() || !lin.dB.empty() || !lin.dH.empty();
    if (dl.train) {
      MIXQ_TRY(dl.dA.alloc(mem_, MemCategory::Gradients, lin.dA.size(),
                           "lora_A gradient"));
      MIXQ_TRY(dl.dB.alloc(mem_, MemCategory::Gradients, lin.dB.size(),
                           "lora_B gradient"));
      MIXQ_TRY(dl.dH.alloc(mem_, MemCategory::Gradients, lin.dH.size(),
                           "lora_H gradient"));
    }
    dl.ad.A = dl.A.get();
    dl.ad.B = dl.B.get();
    dl.ad.H = dl.H.get();
    dl.ad.scale = view.scale;
  }
  return Error::success();
}

Error CudaExecutor::uploadParameters() {
  auto up = [&](DevLinear &dl) -> Error {
    if (!dl.host || !dl.host->hasAdapter())
      return Error::success();
    MIXQ_TRY(dl.A.upload(dl.host->A.data(), dl.host->A.size()));
    MIXQ_TRY(dl.B.upload(dl.host->B.data(), dl.host->B.size()));
    return dl.H.upload(dl.host->H.data(), dl.host->H.size());
  };
  for (DevLayer &D : layers_)
    for (DevLinear &dl : D.proj)
      MIXQ_TRY(up(dl));
  return Error::success();
}

Error CudaExecutor::ensureWorkspace(int64_t rows) {
  int64_t need = 0;
  auto visit = [&](DevLinear &dl) {
    if (dl.kernel)
      need = std::max<int64_t>(need, int64_t(dl.kernel->workspaceBytes(rows)));
  };
  for (DevLayer &D : layers_)
    for (DevLinear &dl : D.proj)
      visit(dl);
  if (lmHead_)
    visit(*lmHead_);
  if (need <= ws_.size())
    return Error::success();
  return ws_.alloc(mem_, MemCategory::Workspace, need, "kernel workspace");
}

Error CudaExecutor::gemmXWt(const float *x, const float *w, int64_t n,
                            int64_t in, int64_t out, float *y) {
  if (n == 0 || out == 0)
    return Error::success();
  const float one = 1.0f, zero = 0.0f;
  // Row-major y [n, out] is column-major y^T = W x^T.
  return blasCheck(cublasSgemm(blas_, CUBLAS_OP_T, CUBLAS_OP_N, int(out),
                               int(n), int(in), &one, w, int(in), x, int(in),
                               &zero, y, int(out)),
                   "cublasSgemm (x W^T)");
}

Error CudaExecutor::gemmDyW(const float *dy, const float *w, int64_t n,
                            int64_t in, int64_t out, float *dx) {
  if (n == 0 || in == 0)
    return Error::success();
  const float one = 1.0f, zero = 0.0f;
  // Row-major dx [n, in] is column-major dx^T = W^T dy^T.
  return blasCheck(cublasSgemm(blas_, CUBLAS_OP_N, CUBLAS_OP_N, int(in), int(n),
                               int(out), &one, w, int(in), dy, int(out), &zero,
                               dx, int(in)),
                   "cublasSgemm (dY W)");
}

Error CudaExecutor::linearForward(DevLinear &dl, const float *x, int64_t n,
                                  float *y, const uint8_t *hostMask,
                                  DevBuf<uint8_t> *maskDev) {
  LinearLayer &lin = *dl.host;
  const float *xa = nullptr;
  DevBuf<float> xaBuf;
  if (hostMask && lin.hasAdapter() && maskDev) {
    const float inv = float(1.0 / (1.0 - lin.spec.adapter.dropout));
    MIXQ_TRY(maskDev->fill(mem_, MemCategory::Activations, hostMask, n * lin.in,
                           "dropout mask"));
    MIXQ_TRY(xaBuf.alloc(mem_, MemCategory::Workspace, n * lin.in,
                         "dropped-out input"));
    MIXQ_TRY(cudaCheck(cudaops::dropoutApply(x, maskDev->get(), inv, n * lin.in,
                                             xaBuf.get(), false, 0),
                       "dropout"));
    xa = xaBuf.get();
  }
  if (!dl.kernel)
    return gemmXWt(x, dl.dense.get(), n, lin.in, lin.out, y);
  if (n == 0)
    return Error::success();
  return cudaCheck(dl.kernel->forward(&dl.w,
                                      lin.hasAdapter() ? &dl.ad : nullptr, x,
                                      xa, n, y, ws_.get(), 0),
                   Twine("kernel ") + dl.kernel->name + " forward");
}

Error CudaExecutor::linearBackward(DevLinear &dl, const float *x,
                                   const float *dy, int64_t n, float *dx,
                                   const DevBuf<uint8_t> *maskDev) {
  LinearLayer &lin = *dl.host;
  if (!dl.kernel)
    return gemmDyW(dy, dl.dense.get(), n, lin.in, lin.out, dx);
  if (n == 0)
    return Error::success();
  const bool dropped = dl.train && maskDev && !maskDev->empty();
  const float inv = float(1.0 / (1.0 - lin.spec.adapter.dropout));
  DevBuf<float> xaBuf, dxa;
  if (dropped) {
    MIXQ_TRY(xaBuf.alloc(mem_, MemCategory::Workspace, n * lin.in,
                         "dropped-out input"));
    MIXQ_TRY(cudaCheck(cudaops::dropoutApply(x, maskDev->get(), inv, n * lin.in,
                                             xaBuf.get(), false, 0),
                       "dropout"));
    MIXQ_TRY(dxa.alloc(mem_, MemCategory::Workspace, n * lin.in,
                       "adapter input gradient"));
  }
  MixQCudaGrads g{};
  g.dX = dx;
  g.dXAdapter = dropped ? dxa.get() : nullptr;
  if (dl.train) {
    g.dA = dl.dA.get();
    g.dB = dl.dB.get();
    g.dH = dl.dH.get();
  }
  g.accumulate = 1;
  MIXQ_TRY(
      cudaCheck(dl.kernel->backward(&dl.w, lin.hasAdapter() ? &dl.ad : nullptr,
                                    x, dropped ? xaBuf.get() : nullptr, dy, n,
                                    &g, ws_.get(), 0),
                Twine("kernel ") + dl.kernel->name + " backward"));
  if (dropped)
    MIXQ_TRY(cudaCheck(cudaops::dropoutApply(dxa.get(), maskDev->get(), inv,
                                             n * lin.in, dx, true, 0),
                       "dropout backward"));
  return Error::success();
}

Expected<double> CudaExecutor::run(const Batch &batch, float gradScale,
                                   ArrayRef<const uint8_t *> masks,
                                   bool backward) {
  namespace ops = cudaops;
  const ModelConfig &c = model_.config();
  const int64_t n = batch.numTokens(), d = c.hiddenSize, hd = c.headDim,
                vocab = c.vocabSize, S = batch.numSequences();
  const float eps = float(c.rmsNormEps);
  const MemCategory act = MemCategory::Activations,
                    wsc = MemCategory::Workspace;
  if (backward)
    for (DecoderLayer &L : model_.layers())
      for (LinearLayer &lin : L.proj)
        if (!lin.dW.empty())
          return execError(Twine("--device ") + kBackendName +
                           " does not support base-weight gradients "
                           "(importance measurement)");
  if (!masks.empty() &&
      int64_t(masks.size()) != int64_t(layers_.size()) * kNumProjectionRoles)
    return execError("dropout masks: expected one entry per decoder linear");
  if (n == 0)
    return 0.0;

  // Index arrays: positions, sequence starts, probability offsets, loss rows.
  std::vector<int> pos(n);
  std::vector<int64_t> probOffset(S + 1, 0);
  int64_t maxProb = 0;
  for (int64_t s = 0; s < S; ++s) {
    for (int64_t i = batch.seqStart[s]; i < batch.seqStart[s + 1]; ++i)
      pos[i] = int(i - batch.seqStart[s]);
    const int64_t len = batch.seqStart[s + 1] - batch.seqStart[s];
    probOffset[s + 1] = probOffset[s] + len * len;
  }
  std::vector<int> rows, tgt;
  for (int64_t i = 0; i < n; ++i)
    if (batch.targets[i] >= 0) {
      rows.push_back(int(i));
      tgt.push_back(batch.targets[i]);
    }
  const int64_t nt = int64_t(rows.size());
  DevBuf<int> tokensD, posD, rowsD, tgtD;
  DevBuf<int64_t> seqStartD;
  MIXQ_TRY(tokensD.fill(mem_, wsc, batch.tokens.data(), n, "tokens"));
  MIXQ_TRY(posD.fill(mem_, wsc, pos.data(), n, "positions"));
  MIXQ_TRY(rowsD.fill(mem_, wsc, rows.data(), nt, "loss rows"));
  MIXQ_TRY(tgtD.fill(mem_, wsc, tgt.data(), nt, "targets"));
  MIXQ_TRY(seqStartD.fill(mem_, wsc, batch.seqStart.data(), S + 1,
                          "sequence starts"));
  // probOffset counts len^2 per sequence; a layer with h heads stores
  // h * len^2 probabilities per sequence, so its offsets are h * probOffset
  // (uploaded once per distinct h).
  std::map<int64_t, DevBuf<int64_t>> probOffsetD;
  for (DecoderLayer &L : model_.layers()) {
    const int64_t h = L.shape.numHeads;
    maxProb = std::max(maxProb, h * probOffset[S]);
    if (probOffsetD.count(h))
      continue;
    std::vector<int64_t> off(S + 1);
    for (int64_t s = 0; s <= S; ++s)
      off[s] = h * probOffset[s];
    MIXQ_TRY(probOffsetD[h].fill(mem_, wsc, off.data(), S + 1,
                                 "probability offsets"));
  }
  if (!resident_)
    MIXQ_TRY(uploadParameters());
  // Resident AdamW: the gradients accumulate on the device until
  // zeroGradients.
  if (backward && !resident_)
    MIXQ_TRY(zeroGradients());
  MIXQ_TRY(ensureWorkspace(std::max<int64_t>(n, nt)));
  auto launched = [](cudaError_t st, const char *what) {
    return cudaCheck(st, what);
  };

  // Forward.
  std::vector<DevActs> acts(layers_.size());
  DevBuf<float> x;
  MIXQ_TRY(x.alloc(mem_, act, n * d, "residual"));
  MIXQ_TRY(launched(
      ops::embeddingForward(embed_.get(), d, tokensD.get(), n, x.get(), 0),
      "embedding"));
  int64_t maxWidth = d;
  for (size_t l = 0; l < layers_.size(); ++l) {
    DevLayer &D = layers_[l];
    DevActs &a = acts[l];
    const LayerShape &sh = model_.layers()[l].shape;
    const int64_t h = sh.numHeads, g = sh.numKVHeads, f = sh.intermediateSize;
    maxWidth = std::max({maxWidth, f, h * hd});
    auto mask = [&](int r) -> const uint8_t * {
      return masks.empty() ? nullptr : masks[l * kNumProjectionRoles + r];
    };
    ops::PackedSeqs seqs{seqStartD.get(), probOffsetD[h].get(), S};
    a.x = std::move(x);
    MIXQ_TRY(a.xn.alloc(mem_, act, n * d, "normed input"));
    MIXQ_TRY(a.rinv1.alloc(mem_, act, n, "rms"));
    MIXQ_TRY(launched(ops::rmsNormForward(a.x.get(), D.norm1.get(), n, d, eps,
                                          a.xn.get(), a.rinv1.get(), 0),
                      "rmsnorm"));
    MIXQ_TRY(a.q.alloc(mem_, act, n * h * hd, "q"));
    MIXQ_TRY(a.k.alloc(mem_, act, n * g * hd, "k"));
    MIXQ_TRY(a.v.alloc(mem_, act, n * g * hd, "v"));
    MIXQ_TRY(linearForward(D.proj[0], a.xn.get(), n, a.q.get(), mask(0),
                           &a.mask[0]));
    MIXQ_TRY(linearForward(D.proj[1], a.xn.get(), n, a.k.get(), mask(1),
                           &a.mask[1]));
    MIXQ_TRY(linearForward(D.proj[2], a.xn.get(), n, a.v.get(), mask(2),
                           &a.mask[2]));
    MIXQ_TRY(launched(
        ops::rope(a.q.get(), n, h, hd, posD.get(), invFreq_.get(), false, 0),
        "rope"));
    MIXQ_TRY(launched(
        ops::rope(a.k.get(), n, g, hd, posD.get(), invFreq_.get(), false, 0),
        "rope"));
    MIXQ_TRY(a.probs.alloc(mem_, act, h * probOffset[S], "attention probs"));
    MIXQ_TRY(a.att.alloc(mem_, act, n * h * hd, "attention output"));
    MIXQ_TRY(
        launched(ops::attentionForward(a.q.get(), a.k.get(), a.v.get(), seqs, h,
                                       g, hd, a.att.get(), a.probs.get(), 0),
                 "attention"));
    MIXQ_TRY(a.xmid.alloc(mem_, act, n * d, "residual"));
    MIXQ_TRY(linearForward(D.proj[3], a.att.get(), n, a.xmid.get(), mask(3),
                           &a.mask[3]));
    MIXQ_TRY(launched(ops::addInPlace(a.xmid.get(), a.x.get(), n * d, 0),
                      "residual add"));
    MIXQ_TRY(a.xn2.alloc(mem_, act, n * d, "normed input"));
    MIXQ_TRY(a.rinv2.alloc(mem_, act, n, "rms"));
    MIXQ_TRY(launched(ops::rmsNormForward(a.xmid.get(), D.norm2.get(), n, d,
                                          eps, a.xn2.get(), a.rinv2.get(), 0),
                      "rmsnorm"));
    MIXQ_TRY(a.gate.alloc(mem_, act, n * f, "gate"));
    MIXQ_TRY(a.up.alloc(mem_, act, n * f, "up"));
    MIXQ_TRY(a.hmid.alloc(mem_, act, n * f, "swiglu"));
    MIXQ_TRY(linearForward(D.proj[4], a.xn2.get(), n, a.gate.get(), mask(4),
                           &a.mask[4]));
    MIXQ_TRY(linearForward(D.proj[5], a.xn2.get(), n, a.up.get(), mask(5),
                           &a.mask[5]));
    MIXQ_TRY(launched(
        ops::swigluForward(a.gate.get(), a.up.get(), n * f, a.hmid.get(), 0),
        "swiglu"));
    MIXQ_TRY(x.alloc(mem_, act, n * d, "residual"));
    MIXQ_TRY(linearForward(D.proj[6], a.hmid.get(), n, x.get(), mask(6),
                           &a.mask[6]));
    MIXQ_TRY(launched(ops::addInPlace(x.get(), a.xmid.get(), n * d, 0),
                      "residual add"));
    if (!backward)
      a = DevActs(); // loss only: nothing is kept for a backward pass
  }

  // Loss rows only: final norm, LM head and cross-entropy on target rows.
  DevBuf<float> xg, xfn, rinvF, logits;
  DevBuf<double> rowLoss;
  MIXQ_TRY(xg.alloc(mem_, act, nt * d, "loss rows"));
  MIXQ_TRY(xfn.alloc(mem_, act, nt * d, "final norm"));
  MIXQ_TRY(rinvF.alloc(mem_, act, nt, "rms"));
  MIXQ_TRY(logits.alloc(mem_, act, nt * vocab, "logits"));
  MIXQ_TRY(rowLoss.alloc(mem_, wsc, nt, "row losses"));
  MIXQ_TRY(launched(ops::gatherRows(x.get(), rowsD.get(), nt, d, xg.get(), 0),
                    "gather"));
  MIXQ_TRY(launched(ops::rmsNormForward(xg.get(), finalNorm_.get(), nt, d, eps,
                                        xfn.get(), rinvF.get(), 0),
                    "final rmsnorm"));
  if (lmHead_)
    MIXQ_TRY(
        linearForward(*lmHead_, xfn.get(), nt, logits.get(), nullptr, nullptr));
  else
    MIXQ_TRY(gemmXWt(xfn.get(), embed_.get(), nt, d, vocab, logits.get()));
  MIXQ_TRY(launched(ops::crossEntropy(logits.get(), nt, vocab, tgtD.get(),
                                      rowLoss.get(), gradScale, backward, 0),
                    "cross-entropy"));
  std::vector<double> lossRows(nt);
  if (nt)
    MIXQ_TRY(cudaCheck(cudaMemcpy(lossRows.data(), rowLoss.get(),
                                  sizeof(double) * size_t(nt),
                                  cudaMemcpyDeviceToHost),
                       "download losses"));
  double lossSum = 0.0;
  for (double r : lossRows)
    lossSum += r;
  if (!backward)
    return lossSum;

  // Backward.
  DevBuf<float> dx;
  MIXQ_TRY(dx.alloc(mem_, wsc, n * d, "residual gradient"));
  MIXQ_TRY(dx.zero());
  {
    DevBuf<float> dxfn, dxg;
    MIXQ_TRY(dxfn.alloc(mem_, wsc, nt * d, "final norm gradient"));
    MIXQ_TRY(dxg.alloc(mem_, wsc, nt * d, "loss row gradient"));
    if (lmHead_)
      MIXQ_TRY(linearBackward(*lmHead_, xfn.get(), logits.get(), nt, dxfn.get(),
                              nullptr));
    else
      MIXQ_TRY(gemmDyW(logits.get(), embed_.get(), nt, d, vocab, dxfn.get()));
    logits.reset();
    MIXQ_TRY(launched(ops::rmsNormBackward(xg.get(), finalNorm_.get(),
                                           rinvF.get(), dxfn.get(), nt, d,
                                           dxg.get(), false, nullptr, 0),
                      "final rmsnorm backward"));
    MIXQ_TRY(
        launched(ops::scatterRows(dxg.get(), rowsD.get(), nt, d, dx.get(), 0),
                 "scatter"));
  }
  xg.reset();
  xfn.reset();
  rinvF.reset();
  x.reset();
  DevBuf<float> bufA, bufB, bufC, bufD, dsScratch;
  MIXQ_TRY(bufA.alloc(mem_, wsc, n * maxWidth, "backward buffer"));
  MIXQ_TRY(bufB.alloc(mem_, wsc, n * maxWidth, "backward buffer"));
  MIXQ_TRY(bufC.alloc(mem_, wsc, n * maxWidth, "backward buffer"));
  MIXQ_TRY(bufD.alloc(mem_, wsc, n * maxWidth, "backward buffer"));
  MIXQ_TRY(dsScratch.alloc(mem_, wsc, maxProb, "attention backward"));
  for (size_t li = layers_.size(); li-- > 0;) {
    DevLayer &D = layers_[li];
    DevActs &a = acts[li];
    const LayerShape &sh = model_.layers()[li].shape;
    const int64_t h = sh.numHeads, g = sh.numKVHeads, f = sh.intermediateSize;
    ops::PackedSeqs seqs{seqStartD.get(), probOffsetD[h].get(), S};
    float *A = bufA.get(), *B = bufB.get(), *C = bufC.get(), *Dd = bufD.get();
    // MLP.
    MIXQ_TRY(
        linearBackward(D.proj[6], a.hmid.get(), dx.get(), n, A, &a.mask[6]));
    MIXQ_TRY(launched(
        ops::swigluBackward(a.gate.get(), a.up.get(), A, n * f, B, C, 0),
        "swiglu backward"));
    MIXQ_TRY(linearBackward(D.proj[4], a.xn2.get(), B, n, Dd, &a.mask[4]));
    MIXQ_TRY(linearBackward(D.proj[5], a.xn2.get(), C, n, A, &a.mask[5]));
    MIXQ_TRY(launched(ops::addInPlace(Dd, A, n * d, 0), "add"));
    MIXQ_TRY(launched(ops::rmsNormBackward(a.xmid.get(), D.norm2.get(),
                                           a.rinv2.get(), Dd, n, d, dx.get(),
                                           true, nullptr, 0),
                      "rmsnorm backward"));
    // Attention.
    MIXQ_TRY(
        linearBackward(D.proj[3], a.att.get(), dx.get(), n, A, &a.mask[3]));
    MIXQ_TRY(launched(ops::attentionBackward(a.q.get(), a.k.get(), a.v.get(),
                                             a.probs.get(), A, seqs, h, g, hd,
                                             B, C, Dd, dsScratch.get(), 0),
                      "attention backward"));
    MIXQ_TRY(
        launched(ops::rope(B, n, h, hd, posD.get(), invFreq_.get(), true, 0),
                 "rope backward"));
    MIXQ_TRY(
        launched(ops::rope(C, n, g, hd, posD.get(), invFreq_.get(), true, 0),
                 "rope backward"));
    MIXQ_TRY(linearBackward(D.proj[0], a.xn.get(), B, n, A, &a.mask[0]));
    MIXQ_TRY(linearBackward(D.proj[1], a.xn.get(), C, n, B, &a.mask[1]));
    MIXQ_TRY(launched(ops::addInPlace(A, B, n * d, 0), "add"));
    MIXQ_TRY(linearBackward(D.proj[2], a.xn.get(), Dd, n, B, &a.mask[2]));
    MIXQ_TRY(launched(ops::addInPlace(A, B, n * d, 0), "add"));
    MIXQ_TRY(
        launched(ops::rmsNormBackward(a.x.get(), D.norm1.get(), a.rinv1.get(),
                                      A, n, d, dx.get(), true, nullptr, 0),
                 "rmsnorm backward"));
    a = DevActs(); // release this layer's saved tensors
  }

  // Adapter gradients back into the host buffers (accumulating).
  std::vector<float> tmp;
  auto addBack = [&](DevBuf<float> &dev, Buffer<float> &host) -> Error {
    if (dev.empty())
      return Error::success();
    tmp.resize(size_t(dev.size()));
    MIXQ_TRY(
        cudaCheck(cudaMemcpy(tmp.data(), dev.get(), sizeof(float) * tmp.size(),
                             cudaMemcpyDeviceToHost),
                  "download gradients"));
    for (int64_t i = 0; i < dev.size(); ++i)
      host[i] += tmp[size_t(i)];
    return Error::success();
  };
  for (DevLayer &D : layers_)
    for (DevLinear &dl : D.proj)
      if (dl.train && !resident_) {
        MIXQ_TRY(addBack(dl.dA, dl.host->dA));
        MIXQ_TRY(addBack(dl.dB, dl.host->dB));
        MIXQ_TRY(addBack(dl.dH, dl.host->dH));
      }
  MIXQ_TRY(cudaCheck(cudaDeviceSynchronize(), "step"));
  return lossSum;
}

//===----------------------------------------------------------------------===//
// Inference: Model::forwardInfer with the KV cache in device memory
//===----------------------------------------------------------------------===//

Expected<std::unique_ptr<DeviceKVCache>>
CudaExecutor::makeCache(int64_t capacity) {
  auto c = std::make_unique<DevKVCache>();
  c->capacity = capacity;
  const int64_t hd = model_.config().headDim;
  for (DecoderLayer &L : model_.layers()) {
    const int64_t kw = L.shape.numKVHeads * hd;
    c->k.emplace_back();
    c->v.emplace_back();
    MIXQ_TRY(c->k.back().alloc(mem_, MemCategory::Activations, capacity * kw,
                               "KV cache keys"));
    MIXQ_TRY(c->v.back().alloc(mem_, MemCategory::Activations, capacity * kw,
                               "KV cache values"));
  }
  // The parameters of this moment serve the whole cache's life (with a
  // resident AdamW the device copies are the current ones).
  if (!resident_)
    MIXQ_TRY(uploadParameters());
  return std::unique_ptr<DeviceKVCache>(std::move(c));
}

Error CudaExecutor::forwardInfer(ArrayRef<int> tokens, DeviceKVCache &cacheBase,
                                 int64_t p0, ArrayRef<int64_t> logitRows,
                                 float *logits) {
  namespace ops = cudaops;
  auto &cache = static_cast<DevKVCache &>(cacheBase);
  const ModelConfig &c = model_.config();
  const int64_t n = int64_t(tokens.size()), d = c.hiddenSize, hd = c.headDim,
                vocab = c.vocabSize, nr = int64_t(logitRows.size());
  const float eps = float(c.rmsNormEps);
  const MemCategory wsc = MemCategory::Workspace;
  if (p0 < 0 || p0 + n > cache.capacity)
    return execError(formatv("KV cache overflow: positions {0}..{1} in a "
                             "cache of {2}",
                             p0, p0 + n, cache.capacity));
  if (n == 0)
    return Error::success();
  std::vector<int> pos(n), rows(nr);
  for (int64_t i = 0; i < n; ++i)
    pos[i] = int(p0 + i);
  for (int64_t i = 0; i < nr; ++i) {
    if (logitRows[i] < 0 || logitRows[i] >= n)
      return execError(
          formatv("logit row {0} outside the {1} new tokens", logitRows[i], n));
    rows[i] = int(logitRows[i]);
  }
  int64_t maxW = d;
  for (DecoderLayer &L : model_.layers())
    maxW = std::max({maxW, L.shape.intermediateSize, L.shape.numHeads * hd});
  DevBuf<int> tokensD, posD, rowsD;
  MIXQ_TRY(tokensD.fill(mem_, wsc, tokens.data(), n, "tokens"));
  MIXQ_TRY(posD.fill(mem_, wsc, pos.data(), n, "positions"));
  MIXQ_TRY(rowsD.fill(mem_, wsc, rows.data(), nr, "logit rows"));
  MIXQ_TRY(ensureWorkspace(std::max<int64_t>(n, nr)));
  DevBuf<float> x, xn, q, att, gate, up, tmp, scores;
  MIXQ_TRY(x.alloc(mem_, wsc, n * d, "residual"));
  MIXQ_TRY(xn.alloc(mem_, wsc, n * d, "normed input"));
  MIXQ_TRY(q.alloc(mem_, wsc, n * maxW, "q"));
  MIXQ_TRY(att.alloc(mem_, wsc, n * maxW, "attention output"));
  MIXQ_TRY(gate.alloc(mem_, wsc, n * maxW, "gate"));
  MIXQ_TRY(up.alloc(mem_, wsc, n * maxW, "up"));
  MIXQ_TRY(tmp.alloc(mem_, wsc, n * d, "projection output"));
  int64_t maxHeads = 0;
  for (DecoderLayer &L : model_.layers())
    maxHeads = std::max(maxHeads, L.shape.numHeads);
  MIXQ_TRY(
      scores.alloc(mem_, wsc, n * maxHeads * (p0 + n), "attention scores"));
  MIXQ_TRY(cudaCheck(
      ops::embeddingForward(embed_.get(), d, tokensD.get(), n, x.get(), 0),
      "embedding"));
  for (size_t l = 0; l < layers_.size(); ++l) {
    DevLayer &D = layers_[l];
    const LayerShape &sh = model_.layers()[l].shape;
    const int64_t h = sh.numHeads, g = sh.numKVHeads, f = sh.intermediateSize,
                  kw = g * hd;
    float *kNew = cache.k[l].get() + p0 * kw;
    float *vNew = cache.v[l].get() + p0 * kw;
    MIXQ_TRY(cudaCheck(ops::rmsNormForward(x.get(), D.norm1.get(), n, d, eps,
                                           xn.get(), nullptr, 0),
                       "rmsnorm"));
    MIXQ_TRY(linearForward(D.proj[0], xn.get(), n, q.get(), nullptr, nullptr));
    MIXQ_TRY(linearForward(D.proj[1], xn.get(), n, kNew, nullptr, nullptr));
    MIXQ_TRY(linearForward(D.proj[2], xn.get(), n, vNew, nullptr, nullptr));
    MIXQ_TRY(cudaCheck(
        ops::rope(q.get(), n, h, hd, posD.get(), invFreq_.get(), false, 0),
        "rope"));
    MIXQ_TRY(cudaCheck(
        ops::rope(kNew, n, g, hd, posD.get(), invFreq_.get(), false, 0),
        "rope"));
    MIXQ_TRY(cudaCheck(ops::attentionCached(q.get(), cache.k[l].get(),
                                            cache.v[l].get(), p0, n, h, g, hd,
                                            att.get(), scores.get(), 0),
                       "cached attention"));
    MIXQ_TRY(
        linearForward(D.proj[3], att.get(), n, tmp.get(), nullptr, nullptr));
    MIXQ_TRY(cudaCheck(ops::addInPlace(x.get(), tmp.get(), n * d, 0),
                       "residual add"));
    MIXQ_TRY(cudaCheck(ops::rmsNormForward(x.get(), D.norm2.get(), n, d, eps,
                                           xn.get(), nullptr, 0),
                       "rmsnorm"));
    MIXQ_TRY(
        linearForward(D.proj[4], xn.get(), n, gate.get(), nullptr, nullptr));
    MIXQ_TRY(linearForward(D.proj[5], xn.get(), n, up.get(), nullptr, nullptr));
    MIXQ_TRY(
        cudaCheck(ops::swigluForward(gate.get(), up.get(), n * f, att.get(), 0),
                  "swiglu"));
    MIXQ_TRY(
        linearForward(D.proj[6], att.get(), n, tmp.get(), nullptr, nullptr));
    MIXQ_TRY(cudaCheck(ops::addInPlace(x.get(), tmp.get(), n * d, 0),
                       "residual add"));
  }
  if (nr == 0)
    return cudaCheck(cudaDeviceSynchronize(), "inference");
  // Final norm and LM head on the requested rows only.
  DevBuf<float> xg, xf, logitsD;
  MIXQ_TRY(xg.alloc(mem_, wsc, nr * d, "logit rows"));
  MIXQ_TRY(xf.alloc(mem_, wsc, nr * d, "final norm"));
  MIXQ_TRY(logitsD.alloc(mem_, wsc, nr * vocab, "logits"));
  MIXQ_TRY(cudaCheck(ops::gatherRows(x.get(), rowsD.get(), nr, d, xg.get(), 0),
                     "gather"));
  MIXQ_TRY(cudaCheck(ops::rmsNormForward(xg.get(), finalNorm_.get(), nr, d, eps,
                                         xf.get(), nullptr, 0),
                     "final rmsnorm"));
  if (lmHead_)
    MIXQ_TRY(
        linearForward(*lmHead_, xf.get(), nr, logitsD.get(), nullptr, nullptr));
  else
    MIXQ_TRY(gemmXWt(xf.get(), embed_.get(), nr, d, vocab, logitsD.get()));
  return cudaCheck(cudaMemcpy(logits, logitsD.get(),
                              sizeof(float) * size_t(nr * vocab),
                              cudaMemcpyDeviceToHost),
                   "download logits");
}

//===----------------------------------------------------------------------===//
// AdamW on the device
//===----------------------------------------------------------------------===//

Error CudaExecutor::optimizerBegin(ArrayRef<float *> hostParams,
                                   ArrayRef<const float *> m,
                                   ArrayRef<const float *> v) {
  if (resident_)
    return execError("optimizerBegin: the optimizer is already on the device");
  // The device buffers of every host parameter, in Model::parameters()
  // order.
  std::map<const float *, std::pair<DevBuf<float> *, DevBuf<float> *>> dev;
  for (DevLayer &D : layers_)
    for (DevLinear &dl : D.proj)
      if (dl.train) {
        LinearLayer &lin = *dl.host;
        if (!lin.dA.empty())
          dev[lin.A.data()] = {&dl.A, &dl.dA};
        if (!lin.dB.empty())
          dev[lin.B.data()] = {&dl.B, &dl.dB};
        if (!lin.dH.empty())
          dev[lin.H.data()] = {&dl.H, &dl.dH};
      }
  const size_t np = hostParams.size();
  if (m.size() != np || v.size() != np || dev.size() != np)
    return execError(formatv("optimizerBegin: {0} parameters ({1} on the "
                             "device), {2} / {3} moments",
                             np, dev.size(), m.size(), v.size()));
  std::vector<DevParam> params(np);
  for (size_t i = 0; i < np; ++i) {
    auto it = dev.find(hostParams[i]);
    if (it == dev.end())
      return execError(formatv("optimizerBegin: trainable parameter {0} has "
                               "no device copy",
                               i));
    DevParam &p = params[i];
    p.param = it->second.first;
    p.grad = it->second.second;
    p.host = hostParams[i];
    const int64_t n = p.param->size();
    MIXQ_TRY(p.param->upload(p.host, n));
    MIXQ_TRY(p.m.fill(mem_, MemCategory::Optimizer, m[i], n, "AdamW m"));
    MIXQ_TRY(p.v.fill(mem_, MemCategory::Optimizer, v[i], n, "AdamW v"));
  }
  params_ = std::move(params);
  resident_ = true;
  return zeroGradients();
}

Error CudaExecutor::zeroGradients() {
  for (DevLayer &D : layers_)
    for (DevLinear &dl : D.proj)
      if (dl.train) {
        MIXQ_TRY(dl.dA.zero());
        MIXQ_TRY(dl.dB.zero());
        MIXQ_TRY(dl.dH.zero());
      }
  return Error::success();
}

Error CudaExecutor::adamStep(const AdamScalars &s) {
  if (!resident_)
    return execError("adamStep without optimizerBegin");
  for (DevParam &p : params_)
    MIXQ_TRY(
        cudaCheck(cudaops::adamw(p.param->get(), p.grad->get(), p.m.get(),
                                 p.v.get(), p.param->size(), s.b1, s.b2,
                                 s.stepSize, s.decay, s.invSqrtC2, s.eps, 0),
                  "AdamW"));
  return Error::success();
}

Error CudaExecutor::optimizerSync(ArrayRef<float *> m, ArrayRef<float *> v) {
  if (!resident_)
    return execError("optimizerSync without optimizerBegin");
  if (m.size() != params_.size() || v.size() != params_.size())
    return execError("optimizerSync: moment count mismatch");
  auto down = [](float *host, const DevBuf<float> &d) {
    return cudaCheck(cudaMemcpy(host, d.get(), sizeof(float) * size_t(d.size()),
                                cudaMemcpyDeviceToHost),
                     "download optimizer state");
  };
  for (size_t i = 0; i < params_.size(); ++i) {
    MIXQ_TRY(down(params_[i].host, *params_[i].param));
    MIXQ_TRY(down(m[i], params_[i].m));
    MIXQ_TRY(down(v[i], params_[i].v));
  }
  return Error::success();
}

Error CudaExecutor::optimizerEnd(ArrayRef<float *> m, ArrayRef<float *> v) {
  MIXQ_TRY(optimizerSync(m, v));
  params_.clear();
  resident_ = false;
  return Error::success();
}

} // namespace
} // namespace runtime
} // namespace mixq

extern "C" __attribute__((visibility("default")))
mixq::runtime::DeviceExecutor *
mixq_create_device_executor(int abiVersion, mixq::runtime::Model *model,
                            const mixq::runtime::DeviceOptions *opts,
                            std::string *error) {
  using namespace mixq::runtime;
  if (abiVersion != kDeviceAbiVersion) {
    *error = formatv("device backend ABI {0}, mixq-run expects {1} (a stale "
                     "libMixQCudaExec; rebuild)",
                     kDeviceAbiVersion, abiVersion)
                 .str();
    return nullptr;
  }
  auto exec = std::make_unique<CudaExecutor>(*model, *opts);
  if (Error e = exec->init()) {
    *error = toString(std::move(e));
    return nullptr;
  }
  return exec.release();
}
