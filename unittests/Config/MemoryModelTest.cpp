//===- MemoryModelTest.cpp - static fine-tuning memory estimate ---*- C++ -*-===//

#include "mixq/Config/MemoryModel.h"
#include "mixq/Kernels/Quant.h"

#include "gtest/gtest.h"

using namespace mixq;

namespace {

ModelConfig llama2_7b() {
  ModelConfig c;
  c.hiddenSize = 4096;
  c.intermediateSize = 11008;
  c.numLayers = 32;
  c.numHeads = c.numKVHeads = 32;
  c.headDim = 128;
  c.vocabSize = 32000;
  c.maxSeqLen = 4096;
  c.layers.assign(32, LayerShape{32, 32, 11008});
  return c;
}

LinearSpec nf4Lora(int64_t rank) {
  LinearSpec s;
  s.quant.format = QuantFormat::NF4;
  s.quant.doubleQuant = true;
  s.adapter.kind = AdapterKind::LoRA;
  s.adapter.rank = rank;
  s.adapter.alpha = 2.0 * rank;
  return s;
}

TEST(MemoryModel, BitsPerParamOfTheFormats) {
  QuantSpec q;
  q.format = QuantFormat::NF4;
  q.doubleQuant = true;
  EXPECT_NEAR(kernels::bitsPerParam(q, 4096, 4096), 4.127, 5e-4);
  q.doubleQuant = false;
  EXPECT_DOUBLE_EQ(kernels::bitsPerParam(q, 4096, 4096), 4.5);
  q.format = QuantFormat::Int8;
  EXPECT_DOUBLE_EQ(kernels::bitsPerParam(q, 4096, 4096), 8.5);
  q.format = QuantFormat::BF16;
  EXPECT_DOUBLE_EQ(kernels::bitsPerParam(q, 64, 64), 16.0);
}

TEST(MemoryModel, AdapterParameterCounts) {
  AdapterSpec lora{AdapterKind::LoRA, 8};
  EXPECT_EQ(adapterParams(4096, 11008, lora), 8 * (4096 + 11008));
  // Q-BLoRA keeps LoRA's parameter count: (in/l)(r l) + (r l)(out/l).
  AdapterSpec qb{AdapterKind::QBLoRA, 8};
  qb.lambda = 2;
  EXPECT_EQ(adapterParams(4096, 11008, qb), 8 * (4096 + 11008));
  AdapterSpec qa{AdapterKind::QABLoRA};
  qa.lambdaRows = qa.lambdaCols = 8;
  EXPECT_EQ(adapterParams(4096, 4096, qa), 512 * 512);
}

TEST(MemoryModel, Llama2_7bUniformNF4LoRA8) {
  ModelConfig m = llama2_7b();
  auto spec = [](int64_t layer, llvm::StringRef) {
    return layer < 0 ? LinearSpec() : nf4Lora(8);
  };
  MemoryOptions opts;
  opts.batch = 4;
  opts.seqLen = 256;
  MemoryBreakdown b = estimateFineTuneMemory(m, spec, opts);
  // PEFT reports 19,988,480 trainable parameters for r = 8 on all seven
  // projections of LLaMA-2-7B.
  EXPECT_EQ(b.adapters, 4 * 19988480);
  EXPECT_EQ(b.gradients, b.adapters);
  EXPECT_EQ(b.optimizer, 2 * b.adapters);
  // Base: 6,476,005,376 projection parameters at 4.127 bits plus f32
  // embedding, lm_head and norms.
  EXPECT_NEAR(double(b.weights), 6476005376.0 * 4.127 / 8 +
                                     2 * 4.0 * 32000 * 4096 + 4.0 * 65 * 4096,
              2e6);
  // Activations grow linearly in batch (and faster in sequence length).
  opts.batch = 8;
  MemoryBreakdown b8 = estimateFineTuneMemory(m, spec, opts);
  EXPECT_EQ(b8.activations, 2 * b.activations);
  EXPECT_EQ(b8.weights, b.weights);
  EXPECT_EQ(b.total(), b.weights + b.adapters + b.optimizer + b.gradients +
                           b.activations + b.workspace);
}

TEST(MemoryModel, PrunedLayersShrinkTheEstimate) {
  ModelConfig m = llama2_7b();
  auto spec = [](int64_t layer, llvm::StringRef) {
    return layer < 0 ? LinearSpec() : nf4Lora(8);
  };
  MemoryBreakdown full = estimateFineTuneMemory(m, spec, MemoryOptions());
  m.layers[3] = LayerShape{22, 22, 7706};
  MemoryBreakdown pruned = estimateFineTuneMemory(m, spec, MemoryOptions());
  EXPECT_LT(pruned.weights, full.weights);
  EXPECT_LT(pruned.adapters, full.adapters);
  EXPECT_LT(pruned.activations, full.activations);
}

} // namespace
