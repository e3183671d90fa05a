//===- ModelConfigTest.cpp - config.json parsing tests ----------*- C++ -*-===//

#include "TestUtil.h"

#include "mixq/Import/ModelConfig.h"

using namespace mixq;
using namespace mixq::test;

namespace {

llvm::Expected<ModelConfig> parse(llvm::StringRef text) {
  llvm::Expected<llvm::json::Value> v = llvm::json::parse(text);
  if (!v)
    return v.takeError();
  return ModelConfig::fromJSON(*v, "test.json");
}

const char *kBase = R"({"hidden_size": 64, "intermediate_size": 172,
  "num_hidden_layers": 5, "num_attention_heads": 8, "num_key_value_heads": 4,
  "vocab_size": 512, "max_position_embeddings": 512, "rms_norm_eps": 1e-05,
  "rope_theta": 10000.0, "tie_word_embeddings": true %s})";

std::string withExtra(llvm::StringRef extra) {
  std::string s = kBase;
  s.replace(s.find("%s"), 2, extra.str());
  return s;
}

TEST(ModelConfig, ParsesStories260KShape) {
  ModelConfig c = llvm::cantFail(parse(withExtra("")));
  EXPECT_EQ(c.hiddenSize, 64);
  EXPECT_EQ(c.intermediateSize, 172);
  EXPECT_EQ(c.numLayers, 5);
  EXPECT_EQ(c.numHeads, 8);
  EXPECT_EQ(c.numKVHeads, 4);
  EXPECT_EQ(c.headDim, 8);
  EXPECT_EQ(c.vocabSize, 512);
  EXPECT_EQ(c.maxSeqLen, 512);
  EXPECT_DOUBLE_EQ(c.rmsNormEps, 1e-5);
  EXPECT_TRUE(c.tiedEmbeddings);
  ASSERT_EQ(c.layers.size(), 5u);
  EXPECT_EQ(c.layers[4].numKVHeads, 4);
  // The README of ../shared/data gives 260,032 parameters.
  EXPECT_EQ(c.numParameters(), 260032);
  EXPECT_EQ(c.projectionShape(0, "q_proj"),
            std::make_pair(int64_t(64), int64_t(64)));
  EXPECT_EQ(c.projectionShape(0, "k_proj"),
            std::make_pair(int64_t(64), int64_t(32)));
  EXPECT_EQ(c.projectionShape(0, "down_proj"),
            std::make_pair(int64_t(172), int64_t(64)));
  EXPECT_EQ(c.projectionShape(0, "gate_proj"),
            std::make_pair(int64_t(64), int64_t(172)));
  EXPECT_EQ(c.projectionShape(7, "q_proj"),
            std::make_pair(int64_t(0), int64_t(0)));
  EXPECT_EQ(c.projectionShape(0, "bogus"),
            std::make_pair(int64_t(0), int64_t(0)));
}

TEST(ModelConfig, Llama2_7BInput) {
  std::string path = MIXQ_SOURCE_DIR "/test/Inputs/llama2-7b/config.json";
  ModelConfig c = llvm::cantFail(ModelConfig::fromHFConfigFile(path));
  EXPECT_EQ(c.hiddenSize, 4096);
  EXPECT_EQ(c.intermediateSize, 11008);
  EXPECT_EQ(c.numLayers, 32);
  EXPECT_EQ(c.numKVHeads, 32);
  EXPECT_EQ(c.headDim, 128);
  EXPECT_FALSE(c.tiedEmbeddings);
  EXPECT_EQ(c.maxSeqLen, 4096);
  // The public LLaMA-2-7B parameter count.
  EXPECT_EQ(c.numParameters(), 6738415616);
}

TEST(ModelConfig, Defaults) {
  ModelConfig c = llvm::cantFail(parse(R"({"hidden_size": 32,
    "intermediate_size": 64, "num_hidden_layers": 1,
    "num_attention_heads": 4, "vocab_size": 10})"));
  EXPECT_EQ(c.numKVHeads, 4);
  EXPECT_EQ(c.headDim, 8);
  EXPECT_EQ(c.maxSeqLen, 2048);
  EXPECT_DOUBLE_EQ(c.rmsNormEps, 1e-6);
  EXPECT_DOUBLE_EQ(c.ropeTheta, 10000.0);
  EXPECT_FALSE(c.tiedEmbeddings);
  EXPECT_EQ(c.architecture, "LlamaForCausalLM");
}

TEST(ModelConfig, ExplicitHeadDim) {
  ModelConfig c = llvm::cantFail(parse(withExtra(R"(, "head_dim": 16)")));
  EXPECT_EQ(c.headDim, 16);
  EXPECT_EQ(c.projectionShape(1, "q_proj"),
            std::make_pair(int64_t(64), int64_t(128)));
  EXPECT_EQ(c.projectionShape(1, "o_proj"),
            std::make_pair(int64_t(128), int64_t(64)));
}

TEST(ModelConfig, PrunedLayers) {
  ModelConfig c = llvm::cantFail(parse(withExtra(R"(, "mixq_layers": [
    {"num_heads": 8, "num_key_value_heads": 4, "intermediate_size": 172},
    {"num_heads": 6, "num_key_value_heads": 3, "intermediate_size": 100},
    {"num_heads": 8, "num_key_value_heads": 4, "intermediate_size": 172},
    {"num_heads": 4, "num_key_value_heads": 2, "intermediate_size": 50},
    {"num_heads": 8, "num_key_value_heads": 4, "intermediate_size": 172}])")));
  EXPECT_EQ(c.layers[1].numHeads, 6);
  EXPECT_EQ(c.projectionShape(1, "q_proj"),
            std::make_pair(int64_t(64), int64_t(48)));
  EXPECT_EQ(c.projectionShape(1, "v_proj"),
            std::make_pair(int64_t(64), int64_t(24)));
  EXPECT_EQ(c.projectionShape(3, "up_proj"),
            std::make_pair(int64_t(64), int64_t(50)));
  EXPECT_EQ(c.projectionShape(3, "down_proj"),
            std::make_pair(int64_t(50), int64_t(64)));
  // Layer 1: q 64*48, k/v 64*24 each, o 48*64, mlp 3*64*100, norms 128.
  int64_t unpruned = 260032;
  int64_t layer1 = 64 * 48 * 2 + 64 * 24 * 2 + 3 * 64 * 100;
  int64_t layer3 = 64 * 32 * 2 + 64 * 16 * 2 + 3 * 64 * 50;
  int64_t full = 64 * 64 * 2 + 64 * 32 * 2 + 3 * 64 * 172;
  EXPECT_EQ(c.numParameters(), unpruned - 2 * full + layer1 + layer3);

  // toJSON keeps the per-layer shapes and round-trips.
  llvm::json::Value json = c.toJSON();
  ASSERT_TRUE(json.getAsObject()->getArray("mixq_layers"));
  ModelConfig back = llvm::cantFail(ModelConfig::fromJSON(json, "round-trip"));
  ASSERT_EQ(back.layers.size(), 5u);
  EXPECT_EQ(back.layers[3].intermediateSize, 50);
  EXPECT_EQ(back.numParameters(), c.numParameters());
}

TEST(ModelConfig, ToJSONRoundTrip) {
  ModelConfig c = tinyConfig(/*tied=*/false);
  c.rmsNormEps = 1e-5;
  c.ropeTheta = 500000.0;
  llvm::json::Value json = c.toJSON();
  EXPECT_FALSE(json.getAsObject()->get("mixq_layers"));
  EXPECT_FALSE(json.getAsObject()->get("head_dim"));
  ModelConfig back = llvm::cantFail(ModelConfig::fromJSON(json, "round-trip"));
  EXPECT_EQ(back.hiddenSize, c.hiddenSize);
  EXPECT_EQ(back.numKVHeads, c.numKVHeads);
  EXPECT_EQ(back.vocabSize, c.vocabSize);
  EXPECT_EQ(back.maxSeqLen, c.maxSeqLen);
  EXPECT_DOUBLE_EQ(back.rmsNormEps, 1e-5);
  EXPECT_DOUBLE_EQ(back.ropeTheta, 500000.0);
  EXPECT_FALSE(back.tiedEmbeddings);
}

struct BadConfig {
  const char *extraOrWhole;
  bool whole;
  const char *message;
};

class ModelConfigErrors : public ::testing::TestWithParam<BadConfig> {};

TEST_P(ModelConfigErrors, NamesTheProblem) {
  const BadConfig &b = GetParam();
  std::string text =
      b.whole ? std::string(b.extraOrWhole) : withExtra(b.extraOrWhole);
  std::string msg = errorOf(parse(text));
  EXPECT_NE(msg.find("test.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find(b.message), std::string::npos) << msg;
}

INSTANTIATE_TEST_SUITE_P(
    All, ModelConfigErrors,
    ::testing::Values(
        BadConfig{R"({"intermediate_size": 1, "num_hidden_layers": 1,
          "num_attention_heads": 1, "vocab_size": 1})",
                  true, "missing required key 'hidden_size'"},
        BadConfig{R"({"hidden_size": "64", "intermediate_size": 1,
          "num_hidden_layers": 1, "num_attention_heads": 1, "vocab_size": 1})",
                  true, "key 'hidden_size' must be an integer, got a string"},
        BadConfig{R"([1, 2])", true, "expected a JSON object"},
        BadConfig{R"(, "num_key_value_heads": 3)", false,
                  "not a multiple of num_key_value_heads (3)"},
        BadConfig{R"(, "num_key_value_heads": 0)", false,
                  "key 'num_key_value_heads' must be positive"},
        BadConfig{R"(, "vocab_size": -4)", false,
                  "key 'vocab_size' must be positive"},
        BadConfig{R"(, "rms_norm_eps": "small")", false,
                  "key 'rms_norm_eps' must be a finite number"},
        BadConfig{R"(, "rms_norm_eps": -1)", false,
                  "key 'rms_norm_eps' must be positive"},
        BadConfig{R"(, "tie_word_embeddings": 1)", false,
                  "key 'tie_word_embeddings' must be a boolean"},
        BadConfig{R"(, "hidden_act": "gelu")", false,
                  "key 'hidden_act' is 'gelu'"},
        BadConfig{R"(, "attention_bias": true)", false,
                  "key 'attention_bias' is true"},
        BadConfig{R"(, "architectures": "Llama")", false,
                  "key 'architectures' must be a non-empty array"},
        BadConfig{R"(, "mixq_layers": {})", false,
                  "key 'mixq_layers' must be an array"},
        BadConfig{R"(, "mixq_layers": [{"num_heads": 8,
          "num_key_value_heads": 4, "intermediate_size": 10}])",
                  false,
                  "'mixq_layers' has 1 entries but num_hidden_layers is 5"},
        BadConfig{R"(, "mixq_layers": [1,2,3,4,5])", false,
                  "key 'mixq_layers[0]' must be an object"},
        BadConfig{R"(, "mixq_layers": [{"num_heads": 8,
          "intermediate_size": 10}])",
                  false,
                  "missing required key 'mixq_layers[0].num_key_value_heads'"},
        BadConfig{R"(, "num_hidden_layers": 2, "mixq_layers": [
          {"num_heads": 8, "num_key_value_heads": 4, "intermediate_size": 10},
          {"num_heads": 6, "num_key_value_heads": 4, "intermediate_size": 10}])",
                  false,
                  "mixq_layers[1].num_attention_heads (6) is not a multiple"},
        BadConfig{R"(, "head_dim": 5)", false,
                  "head_dim 5 is odd; rotary embeddings need pairs"},
        BadConfig{
            R"(, "num_attention_heads": 7)", false,
            "hidden_size (64) is not a multiple of num_attention_heads (7)"}));

TEST(ModelConfig, FileErrors) {
  TempDir dir;
  std::string msg =
      errorOf(ModelConfig::fromHFConfigFile(dir.path("none.json")));
  EXPECT_NE(msg.find("none.json: cannot read"), std::string::npos) << msg;
  writeFile(dir.path("bad.json"), "{\"hidden_size\": 64,");
  msg = errorOf(ModelConfig::fromHFConfigFile(dir.path("bad.json")));
  EXPECT_NE(msg.find("bad.json: malformed JSON"), std::string::npos) << msg;
}

} // namespace
