//===- CheckpointTest.cpp - open() and config-only --------------*- C++ -*-===//

#include "TestUtil.h"

using namespace mixq;
using namespace mixq::test;

namespace {

TEST(Checkpoint, ConfigOnlyLlama2_7B) {
  std::string path = MIXQ_SOURCE_DIR "/test/Inputs/llama2-7b/config.json";
  auto ckpt = Checkpoint::open(path);
  ASSERT_TRUE(bool(ckpt)) << llvm::toString(ckpt.takeError());
  EXPECT_EQ((*ckpt)->format(), "config-only");
  EXPECT_FALSE((*ckpt)->hasWeights());
  EXPECT_TRUE((*ckpt)->tensors().empty());
  EXPECT_EQ((*ckpt)->config().hiddenSize, 4096);
  EXPECT_EQ((*ckpt)->path(), path);
  // The directory form gives the same.
  auto dir = Checkpoint::open(MIXQ_SOURCE_DIR "/test/Inputs/llama2-7b");
  ASSERT_TRUE(bool(dir)) << llvm::toString(dir.takeError());
  EXPECT_EQ((*dir)->format(), "config-only");
  EXPECT_EQ((*dir)->config().numParameters(), 6738415616);
  std::string msg =
      errorOf((*dir)->readF32("model.layers.0.self_attn.q_proj.weight"));
  EXPECT_NE(msg.find("no tensor named"), std::string::npos) << msg;
  EXPECT_EQ(expectedTensorNames((*dir)->config()).size(), 2u + 32 * 9 + 1);
}

TEST(Checkpoint, ExpectedTensorNamesOrder) {
  std::vector<std::string> names = expectedTensorNames(tinyConfig(false));
  ASSERT_EQ(names.size(), 1u + 2 * 9 + 2);
  EXPECT_EQ(names[0], "model.embed_tokens.weight");
  EXPECT_EQ(names[1], "model.layers.0.input_layernorm.weight");
  EXPECT_EQ(names[2], "model.layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(names[6], "model.layers.0.post_attention_layernorm.weight");
  EXPECT_EQ(names[9], "model.layers.0.mlp.down_proj.weight");
  EXPECT_EQ(names[19], "model.norm.weight");
  EXPECT_EQ(names[20], "lm_head.weight");
  EXPECT_EQ(expectedTensorNames(tinyConfig(true)).size(), names.size() - 1);
}

TEST(Checkpoint, OpenErrors) {
  TempDir dir;
  std::string msg = errorOf(Checkpoint::open(dir.path("nothing")));
  EXPECT_NE(msg.find("nothing: cannot open"), std::string::npos) << msg;
  msg = errorOf(Checkpoint::open(dir.path()));
  EXPECT_NE(msg.find("no config.json, model.safetensors"), std::string::npos)
      << msg;
  writeFile(dir.path("pytorch_model.bin"), "PK\x03\x04....");
  msg = errorOf(Checkpoint::open(dir.path()));
  EXPECT_NE(msg.find("pickled PyTorch weights"), std::string::npos) << msg;
  msg = errorOf(Checkpoint::open(dir.path("pytorch_model.bin")));
  EXPECT_NE(msg.find("is a zip archive"), std::string::npos) << msg;
  writeFile(dir.path("weights.xyz"), "hello world");
  msg = errorOf(Checkpoint::open(dir.path("weights.xyz")));
  EXPECT_NE(msg.find("unknown checkpoint format"), std::string::npos) << msg;
  writeFile(dir.path("a.safetensors"), "");
  writeFile(dir.path("b.safetensors"), "");
  msg = errorOf(Checkpoint::open(dir.path()));
  EXPECT_NE(msg.find("several .safetensors files"), std::string::npos) << msg;
  writeFile(dir.path("config.json"), "{\"hidden_size\": 1");
  msg = errorOf(Checkpoint::open(dir.path("config.json")));
  EXPECT_NE(msg.find("config.json: malformed JSON"), std::string::npos) << msg;
}

TEST(Checkpoint, SniffsSafetensorsWithoutExtension) {
  TempDir dir;
  ASSERT_FALSE(bool(writeRandomCheckpoint(tinyConfig(), dir.path(), 1)));
  writeFile(dir.path("weights.dat"), readFile(dir.path("model.safetensors")));
  auto ckpt = Checkpoint::open(dir.path("weights.dat"));
  ASSERT_TRUE(bool(ckpt)) << llvm::toString(ckpt.takeError());
  EXPECT_EQ((*ckpt)->format(), "hf-safetensors");
  EXPECT_EQ((*ckpt)->find("model.norm.weight")->file, dir.path("weights.dat"));
  // A tiny file of unknown type is not mistaken for anything.
  writeFile(dir.path("tiny.dat"), "{}");
  std::string msg = errorOf(Checkpoint::open(dir.path("tiny.dat")));
  EXPECT_NE(msg.find("unknown checkpoint format"), std::string::npos) << msg;
}

TEST(Checkpoint, TorchScriptAvailability) {
#ifdef MIXQ_HAVE_TORCH
  EXPECT_TRUE(detail::haveTorchScript());
#else
  TempDir dir;
  writeFile(dir.path("m.pt"), "PK\x03\x04");
  std::string msg = errorOf(Checkpoint::open(dir.path("m.pt")));
  EXPECT_NE(msg.find("TorchScript import disabled"), std::string::npos) << msg;
#endif
}

} // namespace
