//===- Llama2cTest.cpp - llama2.c .bin reader tests -------------*- C++ -*-===//

#include "TestUtil.h"

#include "llvm/ADT/StringSet.h"

#include <cmath>

using namespace mixq;
using namespace mixq::detail;
using namespace mixq::test;

namespace {

struct Header {
  int32_t dim = 8, hidden = 12, layers = 2, heads = 2, kvHeads = 1, vocab = 10,
          seq = 4;
};

/// Number of fp32 values after the header of a well-formed file.
int64_t numFloats(const Header &h) {
  int64_t hd = h.dim / h.heads, kv = h.kvHeads * hd, v = std::abs(h.vocab);
  int64_t perLayer = h.dim + h.dim * h.dim + 2 * kv * h.dim + h.dim * h.dim +
                     h.dim + 3 * h.dim * h.hidden;
  return v * h.dim + h.layers * perLayer + h.dim + h.seq * hd +
         (h.vocab < 0 ? v * h.dim : 0);
}

/// A llama2.c file whose i-th float is `i` (so offsets can be checked), with
/// `delta` floats added (or removed when negative).
std::string llama2cBytes(const Header &h, int64_t delta = 0) {
  int32_t fields[7] = {h.dim,     h.hidden, h.layers, h.heads,
                       h.kvHeads, h.vocab,  h.seq};
  std::string out(reinterpret_cast<const char *>(fields), sizeof(fields));
  // Absurd headers get no data at all (their size would not fit in memory).
  int64_t n = h.dim > 4096 || h.hidden > 4096
                  ? 0
                  : std::max<int64_t>(0, numFloats(h) + delta);
  for (int64_t i = 0; i < n; ++i) {
    float f = static_cast<float>(i);
    out.append(reinterpret_cast<const char *>(&f), 4);
  }
  return out;
}

std::unique_ptr<Checkpoint> openBytes(const TempDir &dir,
                                      const std::string &bytes) {
  std::string path = dir.path("model.bin");
  writeFile(path, bytes);
  auto ckpt = Checkpoint::open(path);
  if (!ckpt) {
    ADD_FAILURE() << llvm::toString(ckpt.takeError());
    return nullptr;
  }
  return std::move(*ckpt);
}

TEST(Llama2c, SharedClassifierLayout) {
  TempDir dir;
  Header h;
  auto ckpt = openBytes(dir, llama2cBytes(h));
  ASSERT_TRUE(ckpt);
  EXPECT_EQ(ckpt->format(), "llama2c");
  const ModelConfig &c = ckpt->config();
  EXPECT_EQ(c.hiddenSize, 8);
  EXPECT_EQ(c.intermediateSize, 12);
  EXPECT_EQ(c.numKVHeads, 1);
  EXPECT_EQ(c.headDim, 4);
  EXPECT_EQ(c.maxSeqLen, 4);
  EXPECT_TRUE(c.tiedEmbeddings);
  EXPECT_EQ(ckpt->find("lm_head.weight"), nullptr);
  EXPECT_EQ(ckpt->tensors().size(), expectedTensorNames(c).size());
  for (size_t i = 0; i < ckpt->tensors().size(); ++i)
    EXPECT_EQ(ckpt->tensors()[i].name, expectedTensorNames(c)[i]);

  // Offsets follow llama2.c's order: embedding (80 floats), rms_att (2x8),
  // wq (2x64), wk (2x32), ...
  std::vector<float> emb =
      llvm::cantFail(ckpt->readF32("model.embed_tokens.weight"));
  ASSERT_EQ(emb.size(), 80u);
  EXPECT_EQ(emb[79], 79.0f);
  std::vector<float> rms1 =
      llvm::cantFail(ckpt->readF32("model.layers.1.input_layernorm.weight"));
  EXPECT_EQ(rms1[0], 88.0f);
  std::vector<float> v0 =
      llvm::cantFail(ckpt->readF32("model.layers.0.self_attn.v_proj.weight"));
  EXPECT_EQ(v0[0], 96.0f + 128 + 64);
  // w1 is gate_proj, w2 down_proj, w3 up_proj.
  int64_t w1 = 80 + 16 + 128 + 64 + 64 + 128 + 16;
  auto firstOf = [&](const char *name) {
    return llvm::cantFail(ckpt->readF32(name))[0];
  };
  EXPECT_EQ(firstOf("model.layers.0.mlp.gate_proj.weight"), w1);
  EXPECT_EQ(firstOf("model.layers.0.mlp.down_proj.weight"), w1 + 2 * 96);
  EXPECT_EQ(firstOf("model.layers.0.mlp.up_proj.weight"), w1 + 4 * 96);
  EXPECT_EQ(firstOf("model.norm.weight"), w1 + 6 * 96);
}

TEST(Llama2c, PermutesQueryAndKeyRows) {
  TempDir dir;
  Header h;
  auto ckpt = openBytes(dir, llama2cBytes(h));
  ASSERT_TRUE(ckpt);
  // q_proj of layer 0 starts at float 96: 8 rows of 8. Head size 4: HF row
  // h*4 + j*2 + i holds llama2.c row h*4 + 2*i + j.
  std::vector<float> q =
      llvm::cantFail(ckpt->readF32("model.layers.0.self_attn.q_proj.weight"));
  int rawRowOfHFRow[8] = {0, 2, 1, 3, 4, 6, 5, 7};
  for (int r = 0; r < 8; ++r)
    for (int col = 0; col < 8; ++col)
      EXPECT_EQ(q[r * 8 + col], 96.0f + rawRowOfHFRow[r] * 8 + col)
          << "row " << r;
  // k_proj has one KV head: 4 rows.
  std::vector<float> k =
      llvm::cantFail(ckpt->readF32("model.layers.1.self_attn.k_proj.weight"));
  float kStart = 96 + 128 + 32;
  for (int r = 0; r < 4; ++r)
    EXPECT_EQ(k[r * 8], kStart + rawRowOfHFRow[r] * 8);
  EXPECT_EQ(ckpt->find("model.layers.1.self_attn.k_proj.weight")
                ->interleavedRopeHeads,
            1);
  // v_proj and o_proj are not permuted.
  EXPECT_EQ(ckpt->find("model.layers.0.self_attn.v_proj.weight")
                ->interleavedRopeHeads,
            0);
}

TEST(Llama2c, SeparateClassifier) {
  TempDir dir;
  Header h;
  h.vocab = -10;
  auto ckpt = openBytes(dir, llama2cBytes(h));
  ASSERT_TRUE(ckpt);
  EXPECT_FALSE(ckpt->config().tiedEmbeddings);
  EXPECT_EQ(ckpt->config().vocabSize, 10);
  const TensorInfo *head = ckpt->find("lm_head.weight");
  ASSERT_NE(head, nullptr);
  EXPECT_EQ(head->shape, (std::vector<int64_t>{10, 8}));
  std::vector<float> w = llvm::cantFail(ckpt->readF32("lm_head.weight"));
  EXPECT_EQ(w[0], static_cast<float>(numFloats(h) - 80));
  EXPECT_EQ(w[79], static_cast<float>(numFloats(h) - 1));
}

struct BadFile {
  Header header;
  int64_t delta;
  const char *message;
};

Header with(void (*edit)(Header &)) {
  Header h;
  edit(h);
  return h;
}

class Llama2cErrors : public ::testing::TestWithParam<BadFile> {};

TEST_P(Llama2cErrors, NamesTheProblem) {
  TempDir dir;
  std::string path = dir.path("bad.bin");
  writeFile(path, llama2cBytes(GetParam().header, GetParam().delta));
  std::string msg = errorOf(Checkpoint::open(path));
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find(GetParam().message), std::string::npos) << msg;
}

INSTANTIATE_TEST_SUITE_P(
    All, Llama2cErrors,
    ::testing::Values(BadFile{Header(), -1, "truncated llama2.c checkpoint"},
                      BadFile{Header(), 3, "oversized llama2.c checkpoint"},
                      BadFile{with([](Header &h) { h.dim = 0; }), 0,
                              "dim must be positive, got 0"},
                      BadFile{with([](Header &h) { h.layers = -3; }), 0,
                              "n_layers must be positive, got -3"},
                      BadFile{with([](Header &h) { h.vocab = 0; }), 0,
                              "vocab_size is 0"},
                      BadFile{with([](Header &h) { h.heads = 3; }), 0,
                              "dim 8 is not a multiple of n_heads 3"},
                      BadFile{with([](Header &h) { h.kvHeads = 4; }), 0,
                              "n_heads 2 is not a multiple of n_kv_heads 4"},
                      BadFile{with([](Header &h) {
                                h.heads = 8;
                                h.kvHeads = 8;
                              }),
                              0, "head size 1 is odd"},
                      BadFile{with([](Header &h) {
                                h.dim = 1 << 20;
                                h.hidden = 1 << 20;
                              }),
                              0, "truncated llama2.c checkpoint"}));

TEST(Llama2c, ShorterThanHeader) {
  TempDir dir;
  std::string path = dir.path("short.bin");
  writeFile(path, std::string(27, '\1'));
  std::string msg = errorOf(Checkpoint::open(path));
  EXPECT_NE(msg.find("shorter than the 28-byte header"), std::string::npos)
      << msg;
}

TEST(Llama2c, ParserRejectsHugeHeaderWithoutAllocating) {
  // Sizes whose product overflows 64 bits must be rejected, not wrapped.
  int32_t fields[7] = {1 << 30, 2147483647,  65536,     2,
                       2,       -2147483647, 2147483647};
  std::string bytes(reinterpret_cast<const char *>(fields), sizeof(fields));
  std::string msg = errorOf(parseLlama2cHeader("mem", bytes, 1 << 20));
  EXPECT_NE(msg.find("mem: bad llama2.c header: the sizes overflow"),
            std::string::npos)
      << msg;
}

//===----------------------------------------------------------------------===//
// stories260K: the llama2.c file and its Hugging Face export agree.
//===----------------------------------------------------------------------===//

TEST(Llama2c, Stories260KMatchesHuggingFaceExport) {
  std::string bin = MIXQ_DATA_DIR "/models/stories260K/stories260K.bin";
  std::string hf = MIXQ_DATA_DIR "/models/stories260K-hf";
  if (!llvm::sys::fs::exists(bin) || !llvm::sys::fs::exists(hf))
    GTEST_SKIP() << "stories260K not found under " MIXQ_DATA_DIR;
  auto a = Checkpoint::open(bin);
  ASSERT_TRUE(bool(a)) << llvm::toString(a.takeError());
  auto b = Checkpoint::open(hf);
  ASSERT_TRUE(bool(b)) << llvm::toString(b.takeError());
  EXPECT_EQ((*a)->format(), "llama2c");
  EXPECT_EQ((*b)->format(), "hf-safetensors");
  const ModelConfig &ca = (*a)->config(), &cb = (*b)->config();
  EXPECT_EQ(ca.hiddenSize, cb.hiddenSize);
  EXPECT_EQ(ca.intermediateSize, cb.intermediateSize);
  EXPECT_EQ(ca.numLayers, 5);
  EXPECT_EQ(ca.numHeads, 8);
  EXPECT_EQ(ca.numKVHeads, 4);
  EXPECT_EQ(cb.numKVHeads, 4);
  EXPECT_EQ(ca.vocabSize, cb.vocabSize);
  EXPECT_EQ(ca.maxSeqLen, cb.maxSeqLen);
  EXPECT_EQ(ca.tiedEmbeddings, cb.tiedEmbeddings);
  EXPECT_EQ(ca.numParameters(), 260032);

  ASSERT_EQ((*a)->tensors().size(), (*b)->tensors().size());
  ASSERT_EQ((*a)->tensors().size(), 47u); // 1 + 5 * 9 + 1
  for (const TensorInfo &t : (*a)->tensors()) {
    const TensorInfo *u = (*b)->find(t.name);
    ASSERT_NE(u, nullptr) << t.name;
    EXPECT_EQ(t.shape, u->shape) << t.name;
    std::vector<float> x = llvm::cantFail((*a)->readF32(t.name));
    std::vector<float> y = llvm::cantFail((*b)->readF32(t.name));
    ASSERT_EQ(x.size(), y.size()) << t.name;
    float maxDiff = 0;
    for (size_t i = 0; i < x.size(); ++i)
      maxDiff = std::max(maxDiff, std::fabs(x[i] - y[i]));
    EXPECT_LE(maxDiff, 1e-7f) << t.name;
  }

  // The permutation matters: without it q_proj differs from the export.
  TensorInfo raw = *(*a)->find("model.layers.0.self_attn.q_proj.weight");
  raw.interleavedRopeHeads = 0;
  auto bytes = llvm::MemoryBuffer::getFileSlice(bin, raw.nbytes, raw.offset);
  ASSERT_TRUE(bool(bytes));
  std::vector<float> unpermuted =
      llvm::cantFail(decodeTensor(raw, (*bytes)->getBuffer()));
  EXPECT_NE(unpermuted, llvm::cantFail((*b)->readF32(raw.name)));
}

} // namespace
