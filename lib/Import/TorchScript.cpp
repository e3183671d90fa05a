//===- TorchScript.cpp - TorchScript checkpoint reader ----------*- C++ -*-===//
//
// Reads the parameters of a TorchScript module through LibTorch when MixQ is
// built with it (MIXQ_HAVE_TORCH); otherwise reports that the import is
// disabled.
//
//===----------------------------------------------------------------------===//

#include "ImportInternal.h"

using namespace mixq;
using namespace mixq::detail;
using llvm::Expected;
using llvm::StringRef;

#ifdef MIXQ_HAVE_TORCH

#include "llvm/ADT/StringMap.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

#include <torch/script.h>

#include <map>
#include <regex>
#include <set>

using llvm::Error;
using llvm::Twine;

bool mixq::detail::haveTorchScript() { return true; }

namespace {

/// Where a TorchScript tensor lands in the Hugging Face naming.
struct Mapped {
  std::string name;
  /// For Meta/llama2.c q/k weights: "q" or "k" (rows interleaved).
  char interleaved = 0;
  int64_t layer = -1;
};

/// Maps Meta/llama2.c `model.py` names (tok_embeddings, layers.{i}.attention.
/// wq, feed_forward.w1, ...) to Hugging Face names; HF names pass through. A
/// leading "module." (DataParallel) is dropped.
Mapped mapName(StringRef name) {
  name.consume_front("module.");
  static const std::regex layerRe(R"(^layers\.(\d+)\.(.+)$)");
  static const std::map<std::string, std::string> perLayer = {
      {"attention.wq.weight", "self_attn.q_proj.weight"},
      {"attention.wk.weight", "self_attn.k_proj.weight"},
      {"attention.wv.weight", "self_attn.v_proj.weight"},
      {"attention.wo.weight", "self_attn.o_proj.weight"},
      {"feed_forward.w1.weight", "mlp.gate_proj.weight"},
      {"feed_forward.w2.weight", "mlp.down_proj.weight"},
      {"feed_forward.w3.weight", "mlp.up_proj.weight"},
      {"attention_norm.weight", "input_layernorm.weight"},
      {"ffn_norm.weight", "post_attention_layernorm.weight"}};
  if (name == "tok_embeddings.weight")
    return {"model.embed_tokens.weight"};
  if (name == "norm.weight")
    return {"model.norm.weight"};
  if (name == "output.weight")
    return {"lm_head.weight"};
  std::string s = name.str();
  std::smatch m;
  if (std::regex_match(s, m, layerRe)) {
    auto it = perLayer.find(m[2].str());
    if (it != perLayer.end()) {
      Mapped out{"model.layers." + m[1].str() + "." + it->second};
      out.layer = std::stoll(m[1].str());
      if (m[2] == "attention.wq.weight")
        out.interleaved = 'q';
      else if (m[2] == "attention.wk.weight")
        out.interleaved = 'k';
      return out;
    }
  }
  return {s};
}

std::optional<DType> toDType(c10::ScalarType t) {
  switch (t) {
  case c10::ScalarType::Float:
    return DType::F32;
  case c10::ScalarType::Half:
    return DType::F16;
  case c10::ScalarType::BFloat16:
    return DType::BF16;
  case c10::ScalarType::Double:
    return DType::F64;
  case c10::ScalarType::Char:
    return DType::I8;
  case c10::ScalarType::Byte:
    return DType::U8;
  case c10::ScalarType::Short:
    return DType::I16;
  case c10::ScalarType::Int:
    return DType::I32;
  case c10::ScalarType::Long:
    return DType::I64;
  default:
    return std::nullopt;
  }
}

/// First integer attribute called one of `names` on any submodule.
std::optional<int64_t> findIntAttr(const torch::jit::Module &m,
                                   std::initializer_list<const char *> names) {
  for (const auto &sub : m.named_modules())
    for (const char *n : names)
      if (sub.value.hasattr(n)) {
        c10::IValue v = sub.value.attr(n);
        if (v.isInt())
          return v.toInt();
      }
  return std::nullopt;
}

std::optional<double> findDoubleAttr(const torch::jit::Module &m,
                                     std::initializer_list<const char *> names) {
  for (const auto &sub : m.named_modules())
    for (const char *n : names)
      if (sub.value.hasattr(n)) {
        c10::IValue v = sub.value.attr(n);
        if (v.isDouble())
          return v.toDouble();
      }
  return std::nullopt;
}

class TorchScriptCheckpoint : public Checkpoint {
public:
  StringRef format() const override { return "torchscript"; }
  Expected<std::vector<float>> readF32(StringRef name) const override;

  /// Loads `path`; all LibTorch exceptions stay inside.
  Error load(StringRef path);

private:
  Error collect(const torch::jit::Module &module);
  Error inferConfig(const torch::jit::Module &module);
  const std::vector<int64_t> *shapeOf(StringRef name) const;

  std::map<std::string, at::Tensor> data;
  std::map<std::string, Mapped> mapping;
};

Error TorchScriptCheckpoint::collect(const torch::jit::Module &module) {
  auto add = [&](const std::string &name, const at::Tensor &t) -> Error {
    Mapped m = mapName(name);
    std::optional<DType> dtype = toDType(t.scalar_type());
    if (!dtype)
      return importError(path_, "tensor '" + name + "' has unsupported dtype " +
                                    std::string(c10::toString(t.scalar_type())));
    if (data.count(m.name))
      return importError(path_, "two tensors map to '" + m.name + "'");
    TensorInfo info;
    info.name = m.name;
    info.dtype = *dtype;
    info.shape.assign(t.sizes().begin(), t.sizes().end());
    info.nbytes = static_cast<uint64_t>(t.numel()) * dtypeSize(*dtype);
    tensors_.push_back(std::move(info));
    data[m.name] = t;
    mapping[m.name] = m;
    return Error::success();
  };
  for (const auto &p : module.named_parameters(/*recurse=*/true))
    if (Error err = add(p.name, p.value))
      return err;
  for (const auto &b : module.named_buffers(/*recurse=*/true))
    if (Error err = add(b.name, b.value))
      return err;
  return Error::success();
}

const std::vector<int64_t> *
TorchScriptCheckpoint::shapeOf(StringRef name) const {
  for (const TensorInfo &t : tensors_)
    if (t.name == name)
      return &t.shape;
  return nullptr;
}

/// Reads the shape from config.json beside the file, else from the tensor
/// shapes plus the head counts the module keeps as attributes.
Error TorchScriptCheckpoint::inferConfig(const torch::jit::Module &module) {
  llvm::SmallString<256> cfgPath(llvm::sys::path::parent_path(path_));
  llvm::sys::path::append(cfgPath, "config.json");
  if (llvm::sys::fs::exists(cfgPath)) {
    Expected<ModelConfig> cfg = ModelConfig::fromHFConfigFile(cfgPath);
    if (!cfg)
      return cfg.takeError();
    config_ = std::move(*cfg);
    return Error::success();
  }
  const std::vector<int64_t> *emb = shapeOf("model.embed_tokens.weight");
  const std::vector<int64_t> *gate = shapeOf("model.layers.0.mlp.gate_proj.weight");
  const std::vector<int64_t> *q = shapeOf("model.layers.0.self_attn.q_proj.weight");
  const std::vector<int64_t> *k = shapeOf("model.layers.0.self_attn.k_proj.weight");
  if (!emb || emb->size() != 2 || !gate || gate->size() != 2 || !q ||
      q->size() != 2 || !k || k->size() != 2)
    return importError(path_, "no config.json beside it and no LLaMA "
                              "embedding/layer-0 weights to infer the shape "
                              "from");
  ModelConfig cfg;
  cfg.vocabSize = (*emb)[0];
  cfg.hiddenSize = (*emb)[1];
  cfg.intermediateSize = (*gate)[0];
  std::set<int64_t> layers;
  for (const TensorInfo &t : tensors_) {
    StringRef n = t.name;
    if (n.consume_front("model.layers.")) {
      int64_t l;
      if (!n.consumeInteger(10, l))
        layers.insert(l);
    }
  }
  cfg.numLayers = layers.size();
  std::optional<int64_t> heads = findIntAttr(
      module, {"num_attention_heads", "n_heads", "n_local_heads", "n_head"});
  std::optional<int64_t> kvHeads = findIntAttr(
      module, {"num_key_value_heads", "n_kv_heads", "n_local_kv_heads"});
  std::optional<int64_t> headDim = findIntAttr(module, {"head_dim"});
  if (!heads && headDim && *headDim > 0)
    heads = (*q)[0] / *headDim;
  if (!heads)
    return importError(path_, "cannot infer the number of attention heads: "
                              "put a config.json beside it or keep an "
                              "'n_heads' attribute in the module");
  cfg.numHeads = *heads;
  cfg.headDim = *heads > 0 ? (*q)[0] / *heads : 0;
  cfg.numKVHeads = kvHeads ? *kvHeads
                           : (cfg.headDim > 0 ? (*k)[0] / cfg.headDim : 0);
  cfg.maxSeqLen = findIntAttr(module, {"max_position_embeddings", "max_seq_len",
                                       "block_size"})
                      .value_or(2048);
  cfg.rmsNormEps = findDoubleAttr(module, {"rms_norm_eps", "norm_eps", "eps"})
                       .value_or(1e-5);
  cfg.tiedEmbeddings = !shapeOf("lm_head.weight");
  if (Error err = cfg.validate(path_))
    return err;
  config_ = std::move(cfg);
  return Error::success();
}

Error TorchScriptCheckpoint::load(StringRef path) {
  path_ = path.str();
  torch::jit::Module module;
  try {
    module = torch::jit::load(path_, torch::kCPU);
  } catch (const c10::Error &e) {
    return importError(path, "cannot load TorchScript module: " +
                                 Twine(e.what_without_backtrace()));
  } catch (const std::exception &e) {
    return importError(path, "cannot load TorchScript module: " +
                                 Twine(e.what()));
  }
  try {
    if (Error err = collect(module))
      return err;
    if (Error err = inferConfig(module))
      return err;
  } catch (const c10::Error &e) {
    return importError(path, "cannot read TorchScript module: " +
                                 Twine(e.what_without_backtrace()));
  }
  // Meta-named q/k weights are in the interleaved rotary layout.
  for (TensorInfo &t : tensors_) {
    const Mapped &m = mapping[t.name];
    if (!m.interleaved || m.layer < 0 ||
        m.layer >= static_cast<int64_t>(config_.layers.size()))
      continue;
    const LayerShape &l = config_.layers[m.layer];
    t.interleavedRopeHeads = m.interleaved == 'q' ? l.numHeads : l.numKVHeads;
  }
  return checkTensorsAgainstConfig(path, config_, tensors_);
}

Expected<std::vector<float>>
TorchScriptCheckpoint::readF32(StringRef name) const {
  const TensorInfo *info = find(name);
  if (!info)
    return importError(path_, "no tensor named '" + name + "'");
  try {
    at::Tensor t = data.at(info->name).detach().to(torch::kCPU).contiguous();
    StringRef bytes(static_cast<const char *>(t.data_ptr()),
                    static_cast<size_t>(t.numel()) * t.element_size());
    return decodeTensor(*info, bytes);
  } catch (const c10::Error &e) {
    return importError(path_, "cannot read tensor '" + name +
                                  "': " + Twine(e.what_without_backtrace()));
  }
}

} // namespace

Expected<std::unique_ptr<Checkpoint>>
mixq::detail::openTorchScript(StringRef path) {
  auto ckpt = std::make_unique<TorchScriptCheckpoint>();
  if (Error err = ckpt->load(path))
    return std::move(err);
  return std::unique_ptr<Checkpoint>(std::move(ckpt));
}

#else // !MIXQ_HAVE_TORCH

bool mixq::detail::haveTorchScript() { return false; }

Expected<std::unique_ptr<Checkpoint>>
mixq::detail::openTorchScript(StringRef path) {
  return importError(path, "TorchScript import disabled: MixQ was built "
                           "without LibTorch");
}

#endif // MIXQ_HAVE_TORCH
