//===- TorchScriptTest.cpp - TorchScript reader tests -----------*- C++ -*-===//
//
// Builds TorchScript fixtures with the LibTorch C++ API (no Python needed):
// modules whose attributes are the checkpoint's parameters, saved with save().
//
//===----------------------------------------------------------------------===//

#include "TestUtil.h"

#include <torch/script.h>

using namespace mixq;
using namespace mixq::test;

namespace {

/// Registers `value` as parameter `path` ("a.b.weight"), creating the
/// submodules on the way.
void registerPath(torch::jit::Module &root, const std::string &path,
                  const at::Tensor &value) {
  torch::jit::Module m = root;
  std::string prefix = "__torch__.mixq_test";
  size_t start = 0;
  for (size_t dot = path.find('.'); dot != std::string::npos;
       start = dot + 1, dot = path.find('.', start)) {
    std::string part = path.substr(start, dot - start);
    prefix += "_" + part;
    if (!m.hasattr(part)) {
      torch::jit::Module child{c10::QualifiedName(prefix)};
      m.register_module(part, child);
    }
    m = m.attr(part).toModule();
  }
  m.register_parameter(path.substr(start), value, /*is_buffer=*/false);
}

/// The tensors of `cfg` with values i * 1e-3 + tensor index.
std::map<std::string, at::Tensor> modelTensors(const ModelConfig &cfg) {
  std::map<std::string, at::Tensor> out;
  int idx = 0;
  for (const mixq::detail::TensorSpec &s : mixq::detail::expectedTensors(cfg)) {
    int64_t n = 1;
    for (int64_t d : s.shape)
      n *= d;
    at::Tensor t =
        (torch::arange(n, torch::kFloat) * 1e-3 + idx++).reshape(s.shape);
    out[s.name] = t;
  }
  return out;
}

TEST(TorchScript, HuggingFaceNamesWithConfig) {
  TempDir dir;
  ModelConfig cfg = tinyConfig(/*tied=*/false);
  auto tensors = modelTensors(cfg);
  torch::jit::Module root{c10::QualifiedName("__torch__.mixq_test")};
  for (auto &[name, t] : tensors)
    registerPath(root, name, t.to(torch::kBFloat16));
  root.save(dir.path("model.pt"));
  std::string text;
  llvm::raw_string_ostream os(text);
  os << cfg.toJSON();
  os.flush();
  writeFile(dir.path("config.json"), text);

  auto ckpt = Checkpoint::open(dir.path("model.pt"));
  ASSERT_TRUE(bool(ckpt)) << llvm::toString(ckpt.takeError());
  EXPECT_EQ((*ckpt)->format(), "torchscript");
  EXPECT_EQ((*ckpt)->config().numKVHeads, 2);
  ASSERT_EQ((*ckpt)->tensors().size(), tensors.size());
  for (auto &[name, t] : tensors) {
    const TensorInfo *info = (*ckpt)->find(name);
    ASSERT_NE(info, nullptr) << name;
    EXPECT_EQ(info->dtype, DType::BF16);
    std::vector<float> got = llvm::cantFail((*ckpt)->readF32(name));
    at::Tensor want = t.to(torch::kBFloat16).to(torch::kFloat).contiguous();
    ASSERT_EQ(got.size(), static_cast<size_t>(want.numel()));
    EXPECT_EQ(0,
              std::memcmp(got.data(), want.data_ptr<float>(), got.size() * 4))
        << name;
  }
}

TEST(TorchScript, MetaNamesInferredShape) {
  // llama2.c's model.py naming, interleaved q/k rows, head count kept as an
  // attribute; no config.json.
  TempDir dir;
  ModelConfig cfg = tinyConfig(/*tied=*/true);
  cfg.hiddenSize = 32; // head size 8: the permutation is not an involution
  cfg.headDim = 0;
  cfg.layers.clear();
  llvm::cantFail(cfg.validate("cfg"));
  auto tensors = modelTensors(cfg);
  torch::jit::Module root{c10::QualifiedName("__torch__.mixq_test")};
  root.register_attribute("n_heads", c10::IntType::get(), int64_t(4));
  root.register_attribute("n_kv_heads", c10::IntType::get(), int64_t(2));
  root.register_attribute("max_seq_len", c10::IntType::get(), int64_t(64));
  auto meta = [](std::string n) {
    static const std::pair<const char *, const char *> renames[] = {
        {"model.embed_tokens.weight", "tok_embeddings.weight"},
        {"model.norm.weight", "norm.weight"},
        {"self_attn.q_proj", "attention.wq"},
        {"self_attn.k_proj", "attention.wk"},
        {"self_attn.v_proj", "attention.wv"},
        {"self_attn.o_proj", "attention.wo"},
        {"mlp.gate_proj", "feed_forward.w1"},
        {"mlp.down_proj", "feed_forward.w2"},
        {"mlp.up_proj", "feed_forward.w3"},
        {"post_attention_layernorm", "ffn_norm"},
        {"input_layernorm", "attention_norm"},
        {"model.layers.", "layers."}};
    for (auto [from, to] : renames) {
      size_t pos = n.find(from);
      if (pos != std::string::npos)
        n.replace(pos, strlen(from), to);
    }
    return n;
  };
  for (auto &[name, t] : tensors) {
    at::Tensor stored = t;
    llvm::StringRef n(name);
    if (n.ends_with("q_proj.weight") || n.ends_with("k_proj.weight")) {
      // HF -> interleaved: the inverse of the permutation MixQ applies.
      int64_t heads = n.ends_with("q_proj.weight") ? 4 : 2;
      stored = t.reshape({heads, 2, 4, t.size(1)})
                   .transpose(1, 2)
                   .reshape(t.sizes())
                   .contiguous();
    }
    registerPath(root, meta(name), stored);
  }
  root.save(dir.path("llama.pt"));

  auto ckpt = Checkpoint::open(dir.path("llama.pt"));
  ASSERT_TRUE(bool(ckpt)) << llvm::toString(ckpt.takeError());
  const ModelConfig &c = (*ckpt)->config();
  EXPECT_EQ(c.hiddenSize, 32);
  EXPECT_EQ(c.headDim, 8);
  EXPECT_EQ(c.intermediateSize, 24);
  EXPECT_EQ(c.numLayers, 2);
  EXPECT_EQ(c.numHeads, 4);
  EXPECT_EQ(c.numKVHeads, 2);
  EXPECT_EQ(c.vocabSize, 32);
  EXPECT_EQ(c.maxSeqLen, 64);
  EXPECT_TRUE(c.tiedEmbeddings);
  for (auto &[name, t] : tensors) {
    std::vector<float> got = llvm::cantFail((*ckpt)->readF32(name));
    ASSERT_EQ(got.size(), static_cast<size_t>(t.numel())) << name;
    EXPECT_EQ(0, std::memcmp(got.data(), t.contiguous().data_ptr<float>(),
                             got.size() * 4))
        << name;
  }
}

TEST(TorchScript, Errors) {
  TempDir dir;
  writeFile(dir.path("junk.pt"), "not a zip file at all");
  std::string msg = errorOf(Checkpoint::open(dir.path("junk.pt")));
  EXPECT_NE(msg.find("junk.pt: cannot load TorchScript module"),
            std::string::npos)
      << msg;
  // A module without head counts and without config.json.
  torch::jit::Module root{c10::QualifiedName("__torch__.mixq_test")};
  for (auto &[name, t] : modelTensors(tinyConfig()))
    registerPath(root, name, t);
  root.save(dir.path("noheads.pt"));
  msg = errorOf(Checkpoint::open(dir.path("noheads.pt")));
  EXPECT_NE(msg.find("cannot infer the number of attention heads"),
            std::string::npos)
      << msg;
  // Unsupported dtype.
  torch::jit::Module cplx{c10::QualifiedName("__torch__.mixq_test")};
  cplx.register_parameter("w", torch::zeros({2}, torch::kBool), false);
  cplx.save(dir.path("bool.pt"));
  msg = errorOf(Checkpoint::open(dir.path("bool.pt")));
  EXPECT_NE(msg.find("tensor 'w' has unsupported dtype Bool"),
            std::string::npos)
      << msg;
}

} // namespace
