//===- WriterTest.cpp - safetensors/random writers --------------*- C++ -*-===//

#include "TestUtil.h"

#include <cmath>

using namespace mixq;
using namespace mixq::detail;
using namespace mixq::test;

namespace {

class RandomCheckpoint : public ::testing::TestWithParam<DType> {};

TEST_P(RandomCheckpoint, RoundTrips) {
  TempDir dir;
  ModelConfig cfg = tinyConfig(/*tied=*/false);
  ASSERT_FALSE(bool(writeRandomCheckpoint(cfg, dir.path(), 42, GetParam())));
  auto ckpt = Checkpoint::open(dir.path());
  ASSERT_TRUE(bool(ckpt)) << llvm::toString(ckpt.takeError());
  EXPECT_EQ((*ckpt)->format(), "hf-safetensors");
  EXPECT_EQ((*ckpt)->config().numKVHeads, cfg.numKVHeads);
  EXPECT_FALSE((*ckpt)->config().tiedEmbeddings);
  ASSERT_EQ((*ckpt)->tensors().size(), expectedTensorNames(cfg).size());
  double sum = 0, sumSq = 0;
  int64_t n = 0;
  for (const TensorInfo &t : (*ckpt)->tensors()) {
    EXPECT_EQ(t.dtype, GetParam()) << t.name;
    std::vector<float> v = llvm::cantFail((*ckpt)->readF32(t.name));
    if (llvm::StringRef(t.name).ends_with("norm.weight")) {
      EXPECT_EQ(v, std::vector<float>(v.size(), 1.0f)) << t.name;
      continue;
    }
    for (float x : v) {
      sum += x;
      sumSq += double(x) * x;
    }
    n += v.size();
  }
  double mean = sum / n, stddev = std::sqrt(sumSq / n - mean * mean);
  EXPECT_NEAR(mean, 0.0, 0.002);
  EXPECT_NEAR(stddev, 0.02, 0.001);
  // torch_dtype follows the weights.
  std::string config = readFile(dir.path("config.json"));
  const char *want = GetParam() == DType::BF16  ? "bfloat16"
                     : GetParam() == DType::F16 ? "float16"
                                                : "float32";
  EXPECT_NE(config.find(want), std::string::npos) << config;
}

INSTANTIATE_TEST_SUITE_P(DTypes, RandomCheckpoint,
                         ::testing::Values(DType::F32, DType::BF16,
                                           DType::F16));

TEST(RandomCheckpoint, DeterministicPerSeed) {
  TempDir a, b, c;
  ModelConfig cfg = tinyConfig();
  ASSERT_FALSE(bool(writeRandomCheckpoint(cfg, a.path(), 7)));
  ASSERT_FALSE(bool(writeRandomCheckpoint(cfg, b.path(), 7)));
  ASSERT_FALSE(bool(writeRandomCheckpoint(cfg, c.path(), 8)));
  std::string wa = readFile(a.path("model.safetensors"));
  ASSERT_FALSE(wa.empty());
  EXPECT_EQ(wa, readFile(b.path("model.safetensors")));
  EXPECT_NE(wa, readFile(c.path("model.safetensors")));
  EXPECT_EQ(wa.size(), readFile(c.path("model.safetensors")).size());
}

TEST(RandomCheckpoint, MultiChunkTensorsAreDeterministic) {
  // The embedding (66000 x 16) spans two generator chunks of 2^20 values,
  // which may be generated on different threads.
  TempDir a, b;
  ModelConfig cfg = tinyConfig();
  cfg.vocabSize = 66000;
  ASSERT_FALSE(bool(writeRandomCheckpoint(cfg, a.path(), 5)));
  ASSERT_FALSE(bool(writeRandomCheckpoint(cfg, b.path(), 5)));
  EXPECT_EQ(readFile(a.path("model.safetensors")),
            readFile(b.path("model.safetensors")));
  auto ckpt = llvm::cantFail(Checkpoint::open(a.path()));
  std::vector<float> emb =
      llvm::cantFail(ckpt->readF32("model.embed_tokens.weight"));
  ASSERT_EQ(emb.size(), 66000u * 16);
  const size_t chunk = size_t(1) << 20;
  std::vector<float> head(emb.begin(), emb.begin() + 1000);
  std::vector<float> second(emb.begin() + chunk, emb.begin() + chunk + 1000);
  EXPECT_NE(head, second);
  double sumSq = 0;
  for (size_t i = chunk; i < emb.size(); ++i)
    sumSq += double(emb[i]) * emb[i];
  EXPECT_NEAR(std::sqrt(sumSq / (emb.size() - chunk)), 0.02, 0.001);
}

TEST(RandomCheckpoint, BF16IsRoundedF32) {
  TempDir a, b;
  ModelConfig cfg = tinyConfig();
  ASSERT_FALSE(bool(writeRandomCheckpoint(cfg, a.path(), 3, DType::F32)));
  ASSERT_FALSE(bool(writeRandomCheckpoint(cfg, b.path(), 3, DType::BF16)));
  auto fa = llvm::cantFail(Checkpoint::open(a.path()));
  auto fb = llvm::cantFail(Checkpoint::open(b.path()));
  const char *name = "model.layers.1.mlp.up_proj.weight";
  std::vector<float> x = llvm::cantFail(fa->readF32(name));
  std::vector<float> y = llvm::cantFail(fb->readF32(name));
  ASSERT_EQ(x.size(), y.size());
  for (size_t i = 0; i < x.size(); ++i)
    EXPECT_EQ(y[i], bfloat16ToFloat(floatToBFloat16(x[i])));
}

TEST(RandomCheckpoint, PrunedConfig) {
  TempDir dir;
  ModelConfig cfg = tinyConfig();
  cfg.layers[1] = LayerShape{2, 1, 10};
  ASSERT_FALSE(bool(writeRandomCheckpoint(cfg, dir.path(), 1)));
  auto ckpt = Checkpoint::open(dir.path());
  ASSERT_TRUE(bool(ckpt)) << llvm::toString(ckpt.takeError());
  EXPECT_EQ((*ckpt)->config().layers[1].intermediateSize, 10);
  EXPECT_EQ((*ckpt)->find("model.layers.1.self_attn.q_proj.weight")->shape,
            (std::vector<int64_t>{8, 16}));
  EXPECT_EQ((*ckpt)->find("model.layers.1.mlp.down_proj.weight")->shape,
            (std::vector<int64_t>{16, 10}));
}

TEST(RandomCheckpoint, Errors) {
  TempDir dir;
  std::string msg =
      errorOf(writeRandomCheckpoint(tinyConfig(), dir.path(), 1, DType::I8));
  EXPECT_NE(msg.find("F32, BF16 or F16, not I8"), std::string::npos) << msg;
  ModelConfig bad = tinyConfig();
  bad.numKVHeads = 3;
  bad.layers.clear();
  msg = errorOf(writeRandomCheckpoint(bad, dir.path(), 1));
  EXPECT_NE(msg.find("not a multiple of num_key_value_heads (3)"),
            std::string::npos)
      << msg;
  writeFile(dir.path("file"), "x");
  msg = errorOf(writeRandomCheckpoint(tinyConfig(), dir.path("file/sub"), 1));
  EXPECT_NE(msg.find("cannot create directory"), std::string::npos) << msg;
}

TEST(WriteSafetensors, Errors) {
  TempDir dir;
  std::string path = dir.path("x.safetensors");
  std::string msg =
      errorOf(writeSafetensors(path, {{"a", DType::F32, {3}, {1, 2, 3}}}));
  EXPECT_NE(msg.find("tensor 'a' has 3 bytes, its shape and dtype need 12"),
            std::string::npos)
      << msg;
  msg = errorOf(writeSafetensors(
      path, {{"a", DType::U8, {1}, {1}}, {"a", DType::U8, {1}, {2}}}));
  EXPECT_NE(msg.find("duplicate tensor name 'a'"), std::string::npos) << msg;
  msg =
      errorOf(writeSafetensors(path, {{"__metadata__", DType::U8, {1}, {1}}}));
  EXPECT_NE(msg.find("invalid tensor name"), std::string::npos) << msg;
  msg = errorOf(writeSafetensors(dir.path("no/such/dir.safetensors"),
                                 {{"a", DType::U8, {1}, {1}}}));
  EXPECT_NE(msg.find("cannot create"), std::string::npos) << msg;
}

TEST(WriteSafetensors, MetadataRoundTrip) {
  TempDir dir;
  std::string path = dir.path("m.safetensors");
  ASSERT_FALSE(bool(writeSafetensors(path, {{"w", DType::U8, {2}, {1, 2}}},
                                     {{"format", "pt"}, {"k", "v"}})));
  SafetensorsHeader h =
      llvm::cantFail(parseSafetensorsBuffer(path, readFile(path)));
  ASSERT_EQ(h.metadata.size(), 2u);
  EXPECT_EQ(h.metadata[0],
            std::make_pair(std::string("format"), std::string("pt")));
  EXPECT_EQ(h.metadata[1].second, "v");
}

} // namespace
