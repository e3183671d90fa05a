//===- MemoryAgreementTest.cpp - measured peak vs the static estimate -----===//
//
// The runtime's tracked peak of a training step and estimateFineTuneMemory
// for the same packed micro-batch must agree; the model follows the
// runtime's liveness exactly, so they are compared byte for byte, per
// category, on a tiny random model (no data files) with every adapter kind.
//
//===----------------------------------------------------------------------===//

#include "mixq/Config/MemoryModel.h"
#include "mixq/Import/Checkpoint.h"
#include "mixq/Runtime/Model.h"
#include "mixq/Runtime/Variant.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include "gtest/gtest.h"

using namespace mixq;
using namespace mixq::runtime;

namespace {

struct Measured {
  MemoryBreakdown measured, estimated;
};

/// Builds a tiny random model (layer 1 pruned to other shapes when
/// `pruned`), allocates AdamW's two states per parameter as the trainer
/// does, runs one training step of `batch` and returns the tracked peak next
/// to the estimate for that micro-batch.
Measured measure(const char *configJSON, const Batch &batch, bool trainNorms,
                 bool pruned) {
  Measured r;
  llvm::SmallString<128> dir;
  EXPECT_FALSE(llvm::sys::fs::createUniqueDirectory("mixq-memagree", dir));
  ModelConfig c;
  c.hiddenSize = 16;
  c.intermediateSize = 32;
  c.numLayers = 2;
  c.numHeads = 4;
  c.numKVHeads = 2;
  c.headDim = 4;
  c.vocabSize = 40;
  c.maxSeqLen = 64;
  c.tiedEmbeddings = true;
  c.layers.assign(2, LayerShape{4, 2, 32});
  if (pruned)
    c.layers[1] = LayerShape{2, 2, 16};
  EXPECT_FALSE(bool(c.validate("tiny")));
  if (llvm::Error e = writeRandomCheckpoint(c, dir, 5)) {
    ADD_FAILURE() << llvm::toString(std::move(e));
    return r;
  }
  llvm::SmallString<128> cfg(dir);
  llvm::sys::path::append(cfg, "variant.json");
  {
    std::error_code ec;
    llvm::raw_fd_ostream os(cfg, ec);
    os << configJSON;
  }
  auto v = Variant::open(dir, cfg, "");
  if (!v) {
    ADD_FAILURE() << llvm::toString(v.takeError());
    return r;
  }
  MemoryTracker mem;
  ModelOptions mo;
  mo.trainNorms = trainNorms;
  auto m = (*v)->buildModel(mem, mo);
  if (!m) {
    ADD_FAILURE() << llvm::toString(m.takeError());
    return r;
  }
  std::vector<Buffer<float>> adam;
  for (auto &p : (*m)->parameters()) {
    adam.emplace_back(mem, MemCategory::Optimizer, p.first->size());
    adam.emplace_back(mem, MemCategory::Optimizer, p.first->size());
  }
  mem.resetPeak();
  Rng rng(1);
  (*m)->forwardBackward(batch, 1.0f, &rng);
  r.measured.weights = mem.peakOf(MemCategory::Weights);
  r.measured.adapters = mem.peakOf(MemCategory::Adapters);
  r.measured.optimizer = mem.peakOf(MemCategory::Optimizer);
  r.measured.gradients = mem.peakOf(MemCategory::Gradients);
  r.measured.activations = mem.peakOf(MemCategory::Activations);
  r.measured.workspace = mem.peakOf(MemCategory::Workspace);
  EXPECT_EQ(r.measured.total(), mem.peakTotal());

  MemoryOptions opts;
  for (int64_t s = 0; s < batch.numSequences(); ++s)
    opts.seqLens.push_back(batch.seqStart[s + 1] - batch.seqStart[s]);
  opts.lossTokens = batch.numTargets();
  opts.trainNorms = trainNorms;
  const VariantConfig *vc = (*v)->config();
  r.estimated = estimateFineTuneMemory(
      (*v)->model(),
      [&](int64_t layer, llvm::StringRef role) {
        auto s = vc->resolve(layer, role);
        if (!s) {
          ADD_FAILURE() << llvm::toString(s.takeError());
          return LinearSpec();
        }
        return *s;
      },
      opts);
  llvm::sys::fs::remove_directories(dir);
  return r;
}

/// Sequences of different lengths, loss on some tokens only (bAbI-like).
Batch answerOnlyBatch() {
  Batch b;
  b.addSequence({1, 5, 9, 3, 17, 22, 8, 8, 30}, {-1, -1, -1, -1, -1, -1, -1, 4,
                                                 -1});
  b.addSequence({1, 30, 2, 8}, {-1, -1, 8, -1});
  b.addSequence({1, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 2},
                {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 2, 3});
  return b;
}

/// Two full windows with a loss on every token (packed text).
Batch textBatch() {
  Batch b;
  std::vector<int> t(24), y(24);
  for (int i = 0; i < 24; ++i) {
    t[i] = (i * 7 + 1) % 40;
    y[i] = (i * 7 + 8) % 40;
  }
  b.addSequence(t, y);
  b.addSequence(y, t);
  return b;
}

void expectSame(const Measured &r) {
  EXPECT_EQ(r.measured.weights, r.estimated.weights);
  EXPECT_EQ(r.measured.adapters, r.estimated.adapters);
  EXPECT_EQ(r.measured.optimizer, r.estimated.optimizer);
  EXPECT_EQ(r.measured.gradients, r.estimated.gradients);
  EXPECT_EQ(r.measured.activations, r.estimated.activations);
  EXPECT_EQ(r.measured.workspace, r.estimated.workspace);
  EXPECT_EQ(r.measured.total(), r.estimated.total());
}

const char *kNF4LoRA = R"({"version":1,"default":{"format":"nf4","block":16,
  "double_quant":true,"adapter":"lora","rank":4,"alpha":8,"dropout":0.1}})";
const char *kNF4LoRANoDropout = R"({"version":1,"default":{"format":"nf4",
  "block":16,"adapter":"lora","rank":4,"alpha":8}})";
const char *kF32LoRA = R"({"version":1,"default":{"format":"f32",
  "adapter":"lora","rank":4,"alpha":8,"dropout":0.05}})";
const char *kQBLoRA = R"({"version":1,"default":{"format":"nf4","block":16,
  "adapter":"qblora","rank":2,"lambda":2,"alpha":4,"dropout":0.05}})";
const char *kQABLoRA = R"({"version":1,"default":{"format":"int4",
  "tile":[4,4],"adapter":"qablora","lambda":[4,4],"alpha":1,
  "dropout":0.05}})";
const char *kMixed = R"({"version":1,"default":{"format":"nf4","block":16,
  "adapter":"lora","rank":4,"alpha":8,"dropout":0.05},
  "layers":[{"role":"down_proj","format":"f32"},
            {"layer":1,"role":"q_proj","adapter":"none"},
            {"layer":0,"role":"up_proj","format":"int4","tile":[4,4],
             "adapter":"qablora","lambda":[4,4],"alpha":1}]})";

TEST(MemoryAgreement, NF4LoRAWithDropout) {
  expectSame(measure(kNF4LoRA, answerOnlyBatch(), false, false));
  expectSame(measure(kNF4LoRA, textBatch(), false, false));
}

TEST(MemoryAgreement, NF4LoRAWithoutDropout) {
  expectSame(measure(kNF4LoRANoDropout, answerOnlyBatch(), false, false));
}

TEST(MemoryAgreement, F32LoRA) {
  expectSame(measure(kF32LoRA, answerOnlyBatch(), false, false));
  expectSame(measure(kF32LoRA, textBatch(), true, false));
}

TEST(MemoryAgreement, QBLoRAAndQABLoRA) {
  expectSame(measure(kQBLoRA, answerOnlyBatch(), false, false));
  expectSame(measure(kQABLoRA, textBatch(), false, false));
}

TEST(MemoryAgreement, MixedConfigAndPrunedLayers) {
  expectSame(measure(kMixed, answerOnlyBatch(), false, true));
  expectSame(measure(kMixed, textBatch(), true, true));
}

TEST(MemoryAgreement, PaddedShapeIsAnUpperBoundOfThePackedOne) {
  // The old interface (batch x seqLen, loss on every token) still works and
  // never estimates less than the packed micro-batch it pads.
  Batch b = answerOnlyBatch();
  Measured r = measure(kNF4LoRA, b, false, false);
  ModelConfig c;
  c.hiddenSize = 16;
  c.intermediateSize = 32;
  c.numLayers = 2;
  c.numHeads = 4;
  c.numKVHeads = 2;
  c.headDim = 4;
  c.vocabSize = 40;
  c.maxSeqLen = 64;
  c.layers.assign(2, LayerShape{4, 2, 32});
  LinearSpec s;
  s.quant.format = QuantFormat::NF4;
  s.quant.block = 16;
  s.adapter.kind = AdapterKind::LoRA;
  s.adapter.rank = 4;
  s.adapter.dropout = 0.1;
  MemoryOptions padded;
  padded.batch = b.numSequences();
  padded.seqLen = b.maxLength();
  MemoryBreakdown p = estimateFineTuneMemory(
      c, [&](int64_t, llvm::StringRef) { return s; }, padded);
  EXPECT_GT(p.activations, r.estimated.activations);
  EXPECT_GE(p.total(), r.measured.total());
}

} // namespace

namespace {

/// The numbers test/Transforms/mixq-estimate-memory.mlir derives by hand for
/// its tiny model (the pass calls this function).
TEST(MemoryAgreement, TinyModelNumbersDerivedByHand) {
  ModelConfig c;
  c.hiddenSize = 64;
  c.intermediateSize = 128;
  c.numLayers = 2;
  c.numHeads = 4;
  c.numKVHeads = 2;
  c.headDim = 16;
  c.vocabSize = 128;
  c.maxSeqLen = 256;
  c.tiedEmbeddings = false;
  c.layers.assign(2, LayerShape{4, 2, 128});
  LinearSpec s;
  s.quant.format = QuantFormat::NF4;
  s.quant.block = 64;
  s.quant.doubleQuant = true;
  s.adapter.kind = AdapterKind::LoRA;
  s.adapter.rank = 8;
  s.adapter.alpha = 16;
  s.adapter.dropout = 0.05;
  auto spec = [&](int64_t layer, llvm::StringRef) {
    return layer < 0 ? LinearSpec() : s;
  };
  MemoryOptions padded;
  padded.batch = 2;
  padded.seqLen = 16;
  MemoryBreakdown m = estimateFineTuneMemory(c, spec, padded);
  EXPECT_EQ(m.weights, 104944);
  EXPECT_EQ(m.adapters, 65536);
  EXPECT_EQ(m.activations, 262656);
  EXPECT_EQ(m.workspace, 107520);
  EXPECT_EQ(m.total(), 737264);
  MemoryOptions packed;
  packed.seqLens = {5, 9, 2};
  packed.lossTokens = 3;
  m = estimateFineTuneMemory(c, spec, packed);
  EXPECT_EQ(m.activations, 126656);
  EXPECT_EQ(m.workspace, 53572);
  EXPECT_EQ(m.total(), 547316);
}

} // namespace
