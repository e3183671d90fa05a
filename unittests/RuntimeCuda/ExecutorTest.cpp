//===- ExecutorTest.cpp - the CUDA executor's gradients vs the CPU Model --===//
//
// A random 2-layer GQA checkpoint with an untied, NF4-quantized lm_head is
// compiled into a variant with generated kernels (mixq-import, mixq-opt
// --mixq-emit-kernels from the build's bin/), built twice into a Model, and
// one copy is attached to the cuda-emu executor (libMixQCudaExecEmu.so). The
// two then run the same packed batches (three sequences, some rows without
// target) with the same dropout generator: the loss and every adapter
// gradient (LoRA, Q-BLoRA, QA-BLoRA; accumulated over two calls) must agree,
// and so must Model::loss.
//
// Tolerances, relative to the largest value of each reference gradient: 1e-4
// with at most 16 rows per linear (the generated kernels' f32 GEMV path;
// measured at most 4.4e-6), 2e-2 for the gradients and 1e-2 for the loss
// with more rows (the generated GEMM rounds x and W to bf16, 2^-9 per
// operand; measured at most 8e-3).
//
//===----------------------------------------------------------------------===//

#include "mixq/Import/Checkpoint.h"
#include "mixq/Runtime/Device.h"
#include "mixq/Runtime/Model.h"
#include "mixq/Runtime/Random.h"
#include "mixq/Runtime/Variant.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/raw_ostream.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>

using namespace llvm;
using namespace mixq;
using namespace mixq::runtime;

namespace {

/// Runs a tool of the build's bin/; false (with its output as a failure)
/// when it fails.
bool runTool(StringRef tool, std::vector<std::string> args) {
  SmallString<256> path(MIXQ_BINARY_DIR);
  sys::path::append(path, "bin", tool);
  SmallString<128> log;
  sys::fs::createTemporaryFile("mixq-exec-test", "log", log);
  std::vector<StringRef> argv = {path};
  for (const std::string &a : args)
    argv.push_back(a);
  std::optional<StringRef> redirects[] = {std::nullopt, StringRef(log),
                                          StringRef(log)};
  int rc = sys::ExecuteAndWait(path, argv, std::nullopt, redirects);
  std::string out;
  if (auto b = MemoryBuffer::getFile(log))
    out = (*b)->getBuffer().str();
  sys::fs::remove(log);
  if (rc != 0)
    ADD_FAILURE() << tool.str() << " failed (" << rc << "): " << out;
  return rc == 0;
}

constexpr const char *kConfig = R"({"version": 1,
 "default": {"format": "nf4", "block": 64, "double_quant": true,
             "adapter": "lora", "rank": 4, "alpha": 8, "dropout": 0.1},
 "layers": [
   {"role": "lm_head", "format": "nf4", "block": 64, "adapter": "none"},
   {"layer": 0, "role": "gate_proj", "adapter": "qblora", "rank": 2,
    "lambda": 2, "alpha": 4},
   {"layer": 1, "role": "up_proj", "format": "f32", "adapter": "none"},
   {"layer": 1, "role": "down_proj", "format": "int4", "tile": [4, 4],
    "adapter": "qablora", "lambda": [4, 4], "alpha": 1},
   {"layer": 1, "role": "k_proj", "format": "int8", "dropout": 0.0}]})";

class ExecutorTest : public ::testing::Test {
protected:
  void SetUp() override {
    ASSERT_FALSE(sys::fs::createUniqueDirectory("mixq-exec-test", dir));
    ModelConfig c;
    c.hiddenSize = 64;
    c.intermediateSize = 128;
    c.numLayers = 2;
    c.numHeads = 4;
    c.numKVHeads = 2;
    c.headDim = 16;
    c.vocabSize = 96;
    c.maxSeqLen = 64;
    c.tiedEmbeddings = false;
    ASSERT_FALSE(bool(c.validate("tiny")));
    SmallString<128> ckpt(dir), cfg(dir), mlir(dir);
    sys::path::append(ckpt, "ckpt");
    sys::path::append(cfg, "config.json");
    sys::path::append(mlir, "model.mlir");
    variantDir = dir;
    sys::path::append(variantDir, "variant");
    ASSERT_FALSE(sys::fs::create_directories(ckpt));
    if (Error e = writeRandomCheckpoint(c, ckpt, 21))
      FAIL() << toString(std::move(e));
    {
      std::error_code ec;
      raw_fd_ostream os(cfg, ec);
      ASSERT_FALSE(ec);
      os << kConfig;
    }
    ASSERT_TRUE(
        runTool("mixq-import", {ckpt.str().str(), "-o", mlir.str().str()}));
    ASSERT_TRUE(runTool("mixq-opt",
                        {mlir.str().str(),
                         "--mixq-assign-config=config=" + cfg.str().str(),
                         "--mixq-emit-variant=out=" + variantDir.str().str(),
                         "--mixq-emit-kernels=out=" + variantDir.str().str(),
                         "-o", "/dev/null"}));
    auto v = Variant::open(variantDir);
    ASSERT_TRUE(bool(v)) << toString(v.takeError());
    variant = std::move(*v);
    ModelOptions mo;
    mo.seed = 3;
    for (int i = 0; i < 2; ++i) {
      auto m = variant->buildModel(mem[i], mo);
      ASSERT_TRUE(bool(m)) << toString(m.takeError());
      model[i] = std::move(*m);
    }
    // B (and H) start at zero; give both copies the same random values so
    // that every adapter gradient is non-zero.
    Rng rng(11);
    auto l0 = model[0]->linears(), l1 = model[1]->linears();
    for (size_t i = 0; i < l0.size(); ++i)
      for (auto bufs : {std::make_pair(&l0[i]->B, &l1[i]->B),
                        std::make_pair(&l0[i]->H, &l1[i]->H)})
        for (int64_t j = 0; j < bufs.first->size(); ++j)
          (*bufs.first)[j] = (*bufs.second)[j] = 0.2f * rng.normal();
    DeviceOptions dopts;
    dopts.variantDir = variantDir.str().str();
    dopts.libraryDir = MIXQ_BINARY_DIR "/lib";
    auto exec = loadDeviceExecutor(DeviceKind::CudaEmu, *model[1], dopts);
    ASSERT_TRUE(bool(exec)) << toString(exec.takeError());
    device = std::move(*exec);
    model[1]->attachDevice(device);
  }
  void TearDown() override {
    model[1].reset();
    device.reset();
    sys::fs::remove_directories(dir);
  }

  /// Three packed sequences of the given lengths; every third row has no
  /// target.
  static Batch makeBatch(std::vector<int> lens, uint64_t seed) {
    Rng rng(seed);
    Batch b;
    for (int len : lens) {
      std::vector<int> toks(len), tgts(len);
      for (int i = 0; i < len; ++i) {
        toks[i] = int(rng.uniform() * 96) % 96;
        tgts[i] = i % 3 == 2 ? -1 : int(rng.uniform() * 96) % 96;
      }
      b.addSequence(toks, tgts);
    }
    return b;
  }

  /// Runs `calls` accumulating forwardBackward calls on both models and
  /// compares the losses and every gradient.
  void compare(const Batch &b, int calls, double lossTol, double gradTol) {
    model[0]->zeroGrads();
    model[1]->zeroGrads();
    Rng r0(5), r1(5);
    for (int c = 0; c < calls; ++c) {
      double l0 = model[0]->forwardBackward(b, 0.25f, &r0);
      double l1 = model[1]->forwardBackward(b, 0.25f, &r1);
      EXPECT_NEAR(l1, l0, lossTol * std::fabs(l0)) << "call " << c;
    }
    auto p0 = model[0]->parameters(), p1 = model[1]->parameters();
    ASSERT_EQ(p0.size(), p1.size());
    ASSERT_GT(p0.size(), 0u);
    int nonZero = 0;
    for (size_t i = 0; i < p0.size(); ++i) {
      const Buffer<float> &g0 = *p0[i].second, &g1 = *p1[i].second;
      ASSERT_EQ(g0.size(), g1.size());
      double mx = 0.0, err = 0.0;
      for (int64_t j = 0; j < g0.size(); ++j) {
        mx = std::max(mx, double(std::fabs(g0[j])));
        err = std::max(err, double(std::fabs(g0[j] - g1[j])));
      }
      nonZero += mx > 0.0;
      EXPECT_LE(err, gradTol * mx) << "gradient " << i << " of " << p0.size()
                                   << " (" << g0.size() << " values)";
    }
    EXPECT_EQ(nonZero, int(p0.size())) << "every gradient is exercised";
    double e0 = model[0]->loss(b), e1 = model[1]->loss(b);
    EXPECT_NEAR(e1, e0, lossTol * std::fabs(e0)) << "Model::loss";
  }

  SmallString<128> dir, variantDir;
  std::unique_ptr<Variant> variant;
  MemoryTracker mem[2];
  std::unique_ptr<Model> model[2];
  std::shared_ptr<DeviceExecutor> device;
};

TEST_F(ExecutorTest, GradientsMatchCPUOnTheF32Path) {
  // 14 rows <= 16: every generated kernel runs its f32 GEMV.
  compare(makeBatch({6, 1, 7}, 1), 2, 1e-4, 1e-4);
  EXPECT_GT(device->memory().peakOf(MemCategory::Activations), 0);
  EXPECT_EQ(device->memory().peakOf(MemCategory::Optimizer), 0);
  EXPECT_EQ(device->memory().live(MemCategory::Activations), 0)
      << "a step releases its activations";
}

TEST_F(ExecutorTest, GradientsMatchCPUOnTheTensorCorePath) {
  // 60 rows: the generated GEMM with bf16 operands.
  compare(makeBatch({25, 3, 32}, 2), 1, 1e-2, 2e-2);
}

/// Model::forwardInfer with the KV cache on the device vs the CPU: a
/// prefill, 1-token decode steps (GQA attention against the cached keys), a
/// rewind to a shorter prefix (as the multiple-choice eval does), and a new
/// cache after the host parameters changed (as between optimizer steps).
/// Every logit row within `tol` of the largest |logit| of the CPU's: 1e-4
/// on the f32 GEMV path (measured 7e-7), 2e-2 with bf16 tensor-core
/// operands (measured 1.6e-3).
class InferTest : public ExecutorTest {
protected:
  struct Run {
    KVCache cache;
    Model *model;
  };
  /// Runs `toks` on both models' caches and compares the logits of `rows`.
  void step(Run (&r)[2], ArrayRef<int> toks, ArrayRef<int64_t> rows, double tol,
            const std::string &what) {
    const int64_t vocab = model[0]->config().vocabSize;
    std::vector<float> out[2];
    for (int i = 0; i < 2; ++i) {
      out[i].assign(size_t(rows.size() * vocab), 0.0f);
      r[i].model->forwardInfer(toks, r[i].cache, rows, out[i].data());
    }
    EXPECT_EQ(r[0].cache.length, r[1].cache.length) << what;
    double mx = 0.0, err = 0.0;
    for (size_t j = 0; j < out[0].size(); ++j) {
      mx = std::max(mx, double(std::fabs(out[0][j])));
      err = std::max(err, double(std::fabs(out[0][j] - out[1][j])));
    }
    EXPECT_GT(mx, 0.0) << what;
    EXPECT_LE(err, tol * mx)
        << what << ": max |cpu - device| " << err << ", max |cpu| " << mx;
  }
  static std::vector<int> tokens(int n, uint64_t seed) {
    Rng rng(seed);
    std::vector<int> t(n);
    for (int &x : t)
      x = int(rng.uniform() * 96) % 96;
    return t;
  }
};

TEST_F(InferTest, PrefillDecodeRewindMatchCPU) {
  std::vector<int> prompt = tokens(10, 7), more = tokens(8, 8);
  {
    Run r[2] = {{model[0]->makeCache(20), model[0].get()},
                {model[1]->makeCache(20), model[1].get()}};
    ASSERT_EQ(r[0].cache.device, nullptr);
    ASSERT_NE(r[1].cache.device, nullptr) << "the cache lives on the device";
    EXPECT_TRUE(r[1].cache.k.empty()) << "no host copy of the keys";
    const int64_t cacheBytes = device->memory().live(MemCategory::Activations);
    // 2 layers x (keys + values) x 20 positions x 2 kv heads x 16 dims.
    EXPECT_EQ(cacheBytes, int64_t(2 * 2 * 20 * 32 * sizeof(float)));
    // At most 16 rows: the generated kernels' f32 GEMV path.
    step(r, prompt, {0, 4, 9}, 1e-4, "prefill");
    for (int i = 0; i < 5; ++i)
      step(r, ArrayRef<int>(more).slice(i, 1), {0}, 1e-4,
           "decode step " + std::to_string(i));
    EXPECT_EQ(r[1].cache.length, 15);
    // Rewind to 6 positions and continue with 3 tokens at once.
    r[0].cache.length = r[1].cache.length = 6;
    step(r, ArrayRef<int>(more).take_front(3), {1, 2}, 1e-4, "after rewind");
  }
  EXPECT_EQ(device->memory().live(MemCategory::Activations), 0)
      << "the device cache is released with its KVCache";
  // The host parameters change (an optimizer step): a new cache sees them.
  auto l0 = model[0]->linears(), l1 = model[1]->linears();
  for (size_t i = 0; i < l0.size(); ++i)
    for (int64_t j = 0; j < l0[i]->B.size(); ++j)
      l0[i]->B[j] = l1[i]->B[j] = -l1[i]->B[j] + 0.01f;
  Run r[2] = {{model[0]->makeCache(12), model[0].get()},
              {model[1]->makeCache(12), model[1].get()}};
  step(r, prompt, {9}, 1e-4, "after a parameter change");
}

TEST_F(InferTest, LongPrefillMatchesCPUOnTheTensorCorePath) {
  // 40 rows: the generated GEMM rounds x and W to bf16 (2^-9 per operand),
  // then decode steps read those keys.
  std::vector<int> prompt = tokens(40, 9), more = tokens(3, 10);
  Run r[2] = {{model[0]->makeCache(43), model[0].get()},
              {model[1]->makeCache(43), model[1].get()}};
  step(r, prompt, {0, 20, 39}, 2e-2, "long prefill");
  for (int i = 0; i < 3; ++i)
    step(r, ArrayRef<int>(more).slice(i, 1), {0}, 2e-2,
         "decode step " + std::to_string(i));
}

} // namespace
