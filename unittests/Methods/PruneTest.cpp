//===- PruneTest.cpp - --mixq-prune on a tiny random GQA model -------------===//

#include "mixq/Dialect/MixQ/IR/MixQ.h"
#include "mixq/Import/Checkpoint.h"
#include "mixq/Import/ImportMLIR.h"
#include "mixq/Methods/Passes.h"
#include "mixq/Runtime/Model.h"
#include "mixq/Runtime/Variant.h"
#include "mixq/Transforms/ModelInfo.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include "gtest/gtest.h"

#include <cmath>
#include <set>

using namespace mixq;
using namespace mixq::runtime;

namespace {

struct PruneFixture {
  llvm::SmallString<128> dir;
  ModelConfig config;
  mlir::MLIRContext ctx;
  mlir::OwningOpRef<mlir::ModuleOp> module;
  std::string diagnostics;

  PruneFixture() {
    EXPECT_FALSE(llvm::sys::fs::createUniqueDirectory("mixq-prune", dir));
    config.hiddenSize = 16;
    config.intermediateSize = 24;
    config.numLayers = 3;
    config.numHeads = 8;
    config.numKVHeads = 4;
    config.headDim = 2;
    config.vocabSize = 40;
    config.maxSeqLen = 32;
    config.tiedEmbeddings = false;
    EXPECT_FALSE(bool(config.validate("tiny")));
    if (llvm::Error e = writeRandomCheckpoint(config, path("ckpt"), 9)) {
      ADD_FAILURE() << llvm::toString(std::move(e));
      return;
    }
    ctx.loadDialect<MixQDialect, mlir::func::FuncDialect>();
    auto ckpt = Checkpoint::open(path("ckpt"));
    if (!ckpt) {
      ADD_FAILURE() << llvm::toString(ckpt.takeError());
      return;
    }
    module = importCheckpoint(ctx, **ckpt);
    EXPECT_TRUE(module);
  }
  ~PruneFixture() { llvm::sys::fs::remove_directories(dir); }

  std::string path(llvm::StringRef name) const {
    llvm::SmallString<128> p(dir);
    llvm::sys::path::append(p, name);
    return std::string(p);
  }

  /// Importance scores: KV groups of layer l score (g * 5 + l) % 4 (a
  /// permutation), channel c scores (c * 7) % 24 (a permutation).
  std::string writeImportance(llvm::StringRef method) {
    llvm::json::Array layers;
    for (int64_t l = 0; l < config.numLayers; ++l) {
      llvm::json::Array kv, ch;
      for (int64_t g = 0; g < 4; ++g)
        kv.push_back(double((g * 5 + l) % 4));
      for (int64_t c = 0; c < 24; ++c)
        ch.push_back(double((c * 7) % 24));
      layers.push_back(llvm::json::Object{
          {"layer", l}, {"kv_heads", std::move(kv)}, {"channels", std::move(ch)}});
    }
    llvm::json::Object o{{"version", 1},
                         {"method", method},
                         {"importance", llvm::json::Array{1.0, 1.0, 1.0}},
                         {"layers", std::move(layers)}};
    std::string p = path("importance.json");
    std::error_code ec;
    llvm::raw_fd_ostream os(p, ec);
    os << llvm::json::Value(std::move(o));
    return p;
  }

  mlir::LogicalResult prune(const std::string &options) {
    mlir::ScopedDiagnosticHandler handler(&ctx, [&](mlir::Diagnostic &d) {
      diagnostics += d.str() + "\n";
      return mlir::success();
    });
    mlir::PassManager pm(&ctx);
    MixQPrunePassOptions o;
    llvm::StringRef rest = options;
    while (!rest.empty()) {
      auto [kv, tail] = rest.split(' ');
      rest = tail;
      auto [k, v] = kv.split('=');
      if (k == "ratio")
        v.getAsDouble(o.ratio);
      else if (k == "layers")
        o.layers = v.str();
      else if (k == "importance")
        o.importance = v.str();
      else if (k == "method")
        o.method = v.str();
      else if (k == "out")
        o.out = v.str();
    }
    pm.addPass(createMixQPrunePass(o));
    return pm.run(*module);
  }
};

/// Logits of every position of a fixed sequence.
std::vector<float> logitsOf(Model &m) {
  std::vector<int> seq = {1, 7, 22, 3, 39, 12, 5, 5, 30};
  std::vector<int64_t> rows;
  for (int64_t i = 0; i < int64_t(seq.size()); ++i)
    rows.push_back(i);
  std::vector<float> out(seq.size() * m.config().vocabSize);
  KVCache cache = m.makeCache(int64_t(seq.size()));
  m.forwardInfer(seq, cache, rows, out.data());
  return out;
}

TEST(Prune, PrunedModelEqualsTheMaskedOriginal) {
  PruneFixture f;
  ASSERT_TRUE(f.module);
  std::string imp = f.writeImportance("taylor1");
  ASSERT_TRUE(mlir::succeeded(f.prune("ratio=0.5 layers=1-2 importance=" +
                                      imp + " out=" + f.path("v"))))
      << f.diagnostics;
  // Layer 1 KV scores (g*5+1)%4 = [1, 2, 3, 0]: groups 3 and 0 go; layer 2
  // [2, 3, 0, 1]: groups 2 and 3 go. Channels: the 12 with (c*7)%24 >= 12.
  const std::vector<std::vector<int64_t>> keptKV = {{0, 1, 2, 3}, {1, 2}, {0, 1}};
  std::set<int64_t> keptCh;
  for (int64_t c = 0; c < 24; ++c)
    if ((c * 7) % 24 >= 12)
      keptCh.insert(c);
  auto cfg = inferModelConfig(*f.module);
  ASSERT_TRUE(mlir::succeeded(cfg));
  EXPECT_EQ(cfg->layers[0].numHeads, 8);
  EXPECT_EQ(cfg->layers[0].intermediateSize, 24);
  for (int l = 1; l < 3; ++l) {
    EXPECT_EQ(cfg->layers[l].numHeads, 4);
    EXPECT_EQ(cfg->layers[l].numKVHeads, 2);
    EXPECT_EQ(cfg->layers[l].intermediateSize, 12);
  }
  f.module->walk([&](AttentionOp att) {
    int64_t l = int64_t(att.getLayer().value_or(0));
    auto kept = att->getAttrOfType<mlir::DenseI64ArrayAttr>("mixq.kept_heads");
    if (l == 0) {
      EXPECT_FALSE(kept);
      return;
    }
    ASSERT_TRUE(kept);
    std::vector<int64_t> want;
    for (int64_t g : keptKV[l])
      want.insert(want.end(), {2 * g, 2 * g + 1});
    EXPECT_EQ(std::vector<int64_t>(kept.asArrayRef()), want);
  });

  // The pruned checkpoint through the runtime...
  MemoryTracker mem;
  ModelOptions mo;
  mo.training = false;
  auto pv = Variant::open(f.path("v/pruned"), "", "");
  ASSERT_TRUE(bool(pv)) << llvm::toString(pv.takeError());
  auto pruned = (*pv)->buildModel(mem, mo);
  ASSERT_TRUE(bool(pruned)) << llvm::toString(pruned.takeError());
  // ...against the original with the removed units' input columns zeroed.
  auto ov = Variant::open(f.path("ckpt"), "", "");
  ASSERT_TRUE(bool(ov));
  auto weights = [&](llvm::StringRef name)
      -> llvm::Expected<std::vector<float>> {
    auto w = (*ov)->readWeight(name);
    if (!w)
      return w.takeError();
    for (int64_t l = 1; l < 3; ++l) {
      std::set<int64_t> kv(keptKV[l].begin(), keptKV[l].end());
      if (name == hfWeightName(l, "o_proj")) // [16, 8 heads x 2]
        for (int64_t r = 0; r < 16; ++r)
          for (int64_t c = 0; c < 16; ++c)
            if (!kv.count(c / 4))
              (*w)[r * 16 + c] = 0.0f;
      if (name == hfWeightName(l, "down_proj")) // [16, 24]
        for (int64_t r = 0; r < 16; ++r)
          for (int64_t c = 0; c < 24; ++c)
            if (!keptCh.count(c))
              (*w)[r * 24 + c] = 0.0f;
    }
    return w;
  };
  auto noAdapters = [](llvm::StringRef) -> llvm::Expected<std::vector<float>> {
    return std::vector<float>();
  };
  auto masked = Model::build(f.config, nullptr, weights, noAdapters, mem, mo);
  ASSERT_TRUE(bool(masked)) << llvm::toString(masked.takeError());
  auto original = (*ov)->buildModel(mem, mo);
  ASSERT_TRUE(bool(original));
  std::vector<float> a = logitsOf(**pruned), b = logitsOf(**masked),
                     c = logitsOf(**original);
  float same = 0.0f, differ = 0.0f;
  for (size_t i = 0; i < a.size(); ++i) {
    same = std::max(same, std::fabs(a[i] - b[i]));
    differ = std::max(differ, std::fabs(a[i] - c[i]));
  }
  EXPECT_LT(same, 1e-5f);
  EXPECT_GT(differ, 1e-3f);
}

TEST(Prune, BadOptionsAndFilesAreErrors) {
  PruneFixture f;
  ASSERT_TRUE(f.module);
  EXPECT_TRUE(mlir::failed(f.prune("importance=" + f.path("missing.json") +
                                   " out=" + f.path("v"))));
  EXPECT_NE(f.diagnostics.find("missing.json: cannot read"), std::string::npos)
      << f.diagnostics;
  std::string imp = f.writeImportance("entropy");
  f.diagnostics.clear();
  EXPECT_TRUE(mlir::failed(f.prune("importance=" + imp + " out=" + f.path("v"))));
  EXPECT_NE(f.diagnostics.find("needs taylor1 or taylor2"), std::string::npos)
      << f.diagnostics;
  imp = f.writeImportance("taylor2");
  f.diagnostics.clear();
  EXPECT_TRUE(mlir::failed(f.prune("ratio=1.5 importance=" + imp + " out=" +
                                   f.path("v"))));
  EXPECT_NE(f.diagnostics.find("ratio must be in [0, 1)"), std::string::npos)
      << f.diagnostics;
}

} // namespace
