//===- VariantConfigTest.cpp - the config JSON contract -----------*- C++ -*-===//

#include "mixq/Config/VariantConfig.h"

#include "gtest/gtest.h"

using namespace mixq;

namespace {

VariantConfig parse(llvm::StringRef text) {
  llvm::Expected<llvm::json::Value> v = llvm::json::parse(text);
  EXPECT_TRUE(bool(v)) << llvm::toString(v.takeError());
  llvm::Expected<VariantConfig> c = VariantConfig::fromJSON(*v, "test.json");
  EXPECT_TRUE(bool(c)) << llvm::toString(c.takeError());
  return std::move(*c);
}

std::string parseError(llvm::StringRef text) {
  llvm::Expected<llvm::json::Value> v = llvm::json::parse(text);
  if (!v)
    return llvm::toString(v.takeError());
  llvm::Expected<VariantConfig> c = VariantConfig::fromJSON(*v, "test.json");
  if (c)
    return "";
  return llvm::toString(c.takeError());
}

TEST(VariantConfig, UniformDefaultAppliesToProjectionsOnly) {
  VariantConfig c = parse(R"({"version": 1, "default": {"format": "nf4",
      "double_quant": true, "rank": 8}})");
  LinearSpec s = cantFail(c.resolve(3, "down_proj"));
  EXPECT_EQ(s.quant.format, QuantFormat::NF4);
  EXPECT_TRUE(s.quant.doubleQuant);
  EXPECT_EQ(s.adapter.kind, AdapterKind::LoRA);
  EXPECT_EQ(s.adapter.rank, 8);
  EXPECT_DOUBLE_EQ(s.adapter.alpha, 16.0); // 2 * rank by default
  EXPECT_TRUE(c.configures(3, "down_proj"));
  EXPECT_FALSE(c.configures(-1, "lm_head"));
  LinearSpec head = cantFail(c.resolve(-1, "lm_head"));
  EXPECT_EQ(head.quant.format, QuantFormat::F32);
  EXPECT_EQ(head.adapter.kind, AdapterKind::None);
}

TEST(VariantConfig, LaterEntriesOverrideFieldByField) {
  VariantConfig c = parse(R"({"default": {"bits": 4, "rank": 8, "alpha": 16},
      "layers": [{"layer": 1, "bits": 8},
                 {"layer": 1, "role": "v_proj", "rank": 2},
                 {"role": "lm_head", "bits": 16}]})");
  LinearSpec q0 = cantFail(c.resolve(0, "q_proj"));
  LinearSpec q1 = cantFail(c.resolve(1, "q_proj"));
  LinearSpec v1 = cantFail(c.resolve(1, "v_proj"));
  EXPECT_EQ(q0.quant.format, QuantFormat::NF4);
  EXPECT_EQ(q1.quant.format, QuantFormat::Int8);
  EXPECT_EQ(q1.adapter.rank, 8);
  EXPECT_EQ(v1.quant.format, QuantFormat::Int8);
  EXPECT_EQ(v1.adapter.rank, 2);
  EXPECT_DOUBLE_EQ(v1.adapter.alpha, 16.0); // explicit alpha is inherited
  EXPECT_TRUE(c.configures(-1, "lm_head"));
  EXPECT_EQ(cantFail(c.resolve(-1, "lm_head")).quant.format,
            QuantFormat::BF16);
}

TEST(VariantConfig, AdapterShapes) {
  VariantConfig c = parse(R"({"layers": [
      {"layer": 0, "role": "q_proj", "adapter": "qblora", "rank": 4,
       "lambda": 2},
      {"layer": 0, "role": "k_proj", "format": "int4", "tile": [8, 8],
       "adapter": "qablora", "lambda": [8, 8]},
      {"layer": 0, "role": "o_proj", "rank": 4, "init": "loftq",
       "init_iters": 5}]})");
  LinearSpec q = cantFail(c.resolve(0, "q_proj"));
  EXPECT_EQ(q.adapter.kind, AdapterKind::QBLoRA);
  EXPECT_EQ(q.adapter.lambda, 2);
  LinearSpec k = cantFail(c.resolve(0, "k_proj"));
  EXPECT_EQ(k.adapter.kind, AdapterKind::QABLoRA);
  EXPECT_EQ(k.quant.tileRows, 8);
  EXPECT_EQ(k.quant.tileCols, 8);
  EXPECT_EQ(k.adapter.lambdaRows, 8);
  LinearSpec o = cantFail(c.resolve(0, "o_proj"));
  EXPECT_EQ(o.adapter.init, AdapterInit::LoftQ);
  EXPECT_EQ(o.adapter.initIters, 5);
  // Projections no entry names are not configured.
  EXPECT_FALSE(c.configures(0, "up_proj"));
}

TEST(VariantConfig, InheritedDoubleQuantDropsForOtherFormats) {
  VariantConfig c = parse(R"({"default": {"format": "nf4",
      "double_quant": true}, "layers": [{"layer": 0, "bits": 8}]})");
  EXPECT_FALSE(cantFail(c.resolve(0, "q_proj")).quant.doubleQuant);
  EXPECT_TRUE(cantFail(c.resolve(1, "q_proj")).quant.doubleQuant);
}

TEST(VariantConfig, RoundTripsThroughJSON) {
  VariantConfig c = parse(R"({"version": 1, "model": "m", "task": "t",
      "default": {"bits": 4, "rank": 8},
      "layers": [{"layer": 2, "role": "up_proj", "bits": 8}]})");
  VariantConfig d = parse(llvm::formatv("{0}", c.toJSON()).str());
  EXPECT_EQ(d.model, "m");
  EXPECT_EQ(d.task, "t");
  for (int64_t l = 0; l < 4; ++l)
    for (const char *role : {"q_proj", "up_proj"}) {
      LinearSpec a = cantFail(c.resolve(l, role));
      LinearSpec b = cantFail(d.resolve(l, role));
      EXPECT_TRUE(a.quant == b.quant) << l << role;
      EXPECT_TRUE(a.adapter == b.adapter) << l << role;
    }
}

TEST(VariantConfig, ErrorsNameTheFileAndTheProblem) {
  EXPECT_EQ(parseError("[1, 2]"),
            "test.json: expected a JSON object at the top level");
  EXPECT_EQ(parseError(R"({"version": 3})"),
            "test.json: unsupported config version 3 (this MixQ reads "
            "version 1)");
  EXPECT_EQ(parseError(R"({"defaults": {}})"),
            "test.json: unknown top-level key 'defaults'");
  EXPECT_EQ(parseError(R"({"default": {"bits": 5}})"),
            "test.json: layer 0 q_proj: bits 5 not allowed; expected 2, 3, "
            "4, 8, 16 or 32");
  EXPECT_EQ(parseError(R"({"default": {"format": "nf5"}})"),
            "test.json: layer 0 q_proj: unknown format; expected one of f32, "
            "bf16, nf4, fp4, int8, int4, int3, int2");
  EXPECT_EQ(parseError(R"({"layers": [{"layer": -1}]})"),
            "test.json: 'layers'[0]: 'layer' must be a non-negative integer");
  EXPECT_EQ(parseError(R"({"layers": [{"role": "qkv"}]})"),
            "test.json: 'layers'[0]: 'role' must be one of q_proj, k_proj, "
            "v_proj, o_proj, gate_proj, up_proj, down_proj, lm_head");
  EXPECT_EQ(parseError(R"({"layers": [{"layer": 1, "rnak": 4}]})"),
            "test.json: unknown key 'rnak' in 'layers'[0]");
  EXPECT_EQ(parseError(R"({"default": {"rank": "8"}})"),
            "test.json: layer 0 q_proj: 'rank' must be an integer");
  EXPECT_EQ(parseError(R"({"default": {"tile": [1, 2, 3]}})"),
            "test.json: layer 0 q_proj: 'tile' must be an integer or [rows, "
            "cols]");
  EXPECT_EQ(parseError(R"({"default": {"adapter": "dora"}})"),
            "test.json: layer 0 q_proj: unknown adapter; expected none, "
            "lora, qblora, qablora or adalora");
}

TEST(VariantConfig, MissingFileIsAnError) {
  llvm::Expected<VariantConfig> c =
      VariantConfig::fromFile("/nonexistent/cfg.json");
  ASSERT_FALSE(bool(c));
  EXPECT_NE(llvm::toString(c.takeError()).find("/nonexistent/cfg.json"),
            std::string::npos);
}

} // namespace
