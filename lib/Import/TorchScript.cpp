//===- TorchScript.cpp - TorchScript checkpoint reader ----------*- C++ -*-===//
//
// Reads the parameters of a TorchScript module. LibTorch itself lives in
// libMixQTorchPlugin.so (TorchPlugin.cpp), loaded with dlopen on the first .pt
// file, so MixQ processes that never open one do not load LibTorch. Here:
// name mapping (Hugging Face names pass through; llama2.c/Meta `model.py`
// names are renamed and their q/k rows flagged for the rotary permutation),
// the model shape (config.json beside the file, else inferred from the tensor
// shapes and the module's head-count attributes) and the f32 reads.
//
//===----------------------------------------------------------------------===//

#include "ImportInternal.h"

#include "llvm/ADT/StringMap.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

#include <cstdlib>
#include <set>

#ifdef MIXQ_HAVE_TORCH
#include "TorchPluginAPI.h"

#include <dlfcn.h>
#endif

using namespace mixq;
using namespace mixq::detail;
using llvm::Error;
using llvm::Expected;
using llvm::StringRef;
using llvm::Twine;

#ifdef MIXQ_HAVE_TORCH

//===----------------------------------------------------------------------===//
// Plugin loading
//===----------------------------------------------------------------------===//

namespace {

struct PluginState {
  const MixQTorchPluginAPI *api = nullptr;
  std::string failure;
};

/// dlopens the plugin: $MIXQ_TORCH_PLUGIN, else the path fixed at build time.
PluginState loadPlugin() {
  PluginState s;
  const char *env = std::getenv("MIXQ_TORCH_PLUGIN");
  std::string path = env && *env ? env : MIXQ_TORCH_PLUGIN_PATH;
  void *handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char *msg = dlerror();
    s.failure = "cannot load the LibTorch plugin " + path + ": " +
                (msg ? msg : "unknown error");
    return s;
  }
  auto get = reinterpret_cast<const MixQTorchPluginAPI *(*)()>(
      dlsym(handle, "mixqTorchPluginAPI"));
  if (!get) {
    s.failure = "the LibTorch plugin " + path + " lacks mixqTorchPluginAPI";
    return s;
  }
  const MixQTorchPluginAPI *api = get();
  if (!api || api->abiVersion != MIXQ_TORCH_PLUGIN_ABI) {
    s.failure = "the LibTorch plugin " + path +
                " has an incompatible ABI "
                "(expected version " +
                std::to_string(MIXQ_TORCH_PLUGIN_ABI) + ")";
    return s;
  }
  s.api = api;
  return s;
}

/// The plugin's function table, or an error saying why it is unavailable.
/// Loaded once per process (thread-safe static initialization).
Expected<const MixQTorchPluginAPI *> pluginAPI() {
  static const PluginState state = loadPlugin();
  if (!state.api)
    return llvm::createStringError(std::errc::not_supported, "%s",
                                   state.failure.c_str());
  return state.api;
}

/// Takes ownership of a plugin error string.
std::string takeString(const MixQTorchPluginAPI *api, char *s) {
  std::string out = s ? s : "unknown error";
  if (s)
    api->freeString(s);
  return out;
}

} // namespace

bool mixq::detail::haveTorchScript() {
  Expected<const MixQTorchPluginAPI *> api = pluginAPI();
  if (!api) {
    llvm::consumeError(api.takeError());
    return false;
  }
  return true;
}

//===----------------------------------------------------------------------===//
// Names and dtypes
//===----------------------------------------------------------------------===//

namespace {

/// Where a TorchScript tensor lands in the Hugging Face naming.
struct Mapped {
  std::string name;
  /// For Meta/llama2.c q/k weights: 'q' or 'k' (rows interleaved).
  char interleaved = 0;
  int64_t layer = -1;
};

/// Maps Meta/llama2.c `model.py` names (tok_embeddings, layers.{i}.attention.
/// wq, feed_forward.w1, ...) to Hugging Face names; other names pass through.
/// A leading "module." (DataParallel) is dropped.
Mapped mapName(StringRef name) {
  name.consume_front("module.");
  if (name == "tok_embeddings.weight")
    return {"model.embed_tokens.weight"};
  if (name == "norm.weight")
    return {"model.norm.weight"};
  if (name == "output.weight")
    return {"lm_head.weight"};
  static const std::pair<StringRef, StringRef> perLayer[] = {
      {"attention.wq.weight", "self_attn.q_proj.weight"},
      {"attention.wk.weight", "self_attn.k_proj.weight"},
      {"attention.wv.weight", "self_attn.v_proj.weight"},
      {"attention.wo.weight", "self_attn.o_proj.weight"},
      {"feed_forward.w1.weight", "mlp.gate_proj.weight"},
      {"feed_forward.w2.weight", "mlp.down_proj.weight"},
      {"feed_forward.w3.weight", "mlp.up_proj.weight"},
      {"attention_norm.weight", "input_layernorm.weight"},
      {"ffn_norm.weight", "post_attention_layernorm.weight"}};
  StringRef rest = name;
  int64_t layer;
  if (rest.consume_front("layers.") && !rest.consumeInteger(10, layer) &&
      rest.consume_front(".")) {
    for (auto [from, to] : perLayer)
      if (rest == from) {
        Mapped m{"model.layers." + std::to_string(layer) + "." + to.str()};
        m.layer = layer;
        if (from == "attention.wq.weight")
          m.interleaved = 'q';
        else if (from == "attention.wk.weight")
          m.interleaved = 'k';
        return m;
      }
  }
  return {name.str()};
}

std::optional<DType> toDType(StringRef torchName) {
  static const std::pair<StringRef, DType> table[] = {
      {"Float", DType::F32},  {"Half", DType::F16}, {"BFloat16", DType::BF16},
      {"Double", DType::F64}, {"Char", DType::I8},  {"Byte", DType::U8},
      {"Short", DType::I16},  {"Int", DType::I32},  {"Long", DType::I64}};
  for (auto [name, dtype] : table)
    if (torchName == name)
      return dtype;
  return std::nullopt;
}

//===----------------------------------------------------------------------===//
// Checkpoint
//===----------------------------------------------------------------------===//

class TorchScriptCheckpoint : public Checkpoint {
public:
  explicit TorchScriptCheckpoint(const MixQTorchPluginAPI *api) : api(api) {}
  ~TorchScriptCheckpoint() override {
    if (module)
      api->release(module);
  }
  StringRef format() const override { return "torchscript"; }
  Expected<std::vector<float>> readF32(StringRef name) const override;

  Error load(StringRef path);

private:
  Error collect();
  Error inferConfig();
  std::optional<int64_t> intAttr(std::initializer_list<const char *> names);
  const std::vector<int64_t> *shapeOf(StringRef name) const;

  const MixQTorchPluginAPI *api;
  MixQTorchModule *module = nullptr;
  /// HF name -> plugin tensor index and original mapping.
  llvm::StringMap<std::pair<int64_t, Mapped>> index;
};

Error TorchScriptCheckpoint::collect() {
  for (int64_t i = 0, e = api->numTensors(module); i < e; ++i) {
    std::string original = api->tensorName(module, i);
    Mapped m = mapName(original);
    std::optional<DType> dtype = toDType(api->tensorDType(module, i));
    if (!dtype)
      return importError(path_, "tensor '" + original +
                                    "' has unsupported dtype " +
                                    api->tensorDType(module, i));
    TensorInfo info;
    info.name = m.name;
    info.dtype = *dtype;
    info.nbytes = dtypeSize(*dtype);
    for (int64_t d = 0, r = api->tensorRank(module, i); d < r; ++d) {
      info.shape.push_back(api->tensorDim(module, i, d));
      info.nbytes *= info.shape.back();
    }
    if (!index.try_emplace(m.name, i, m).second)
      return importError(path_, "two tensors map to '" + m.name + "'");
    tensors_.push_back(std::move(info));
  }
  return Error::success();
}

const std::vector<int64_t> *
TorchScriptCheckpoint::shapeOf(StringRef name) const {
  const TensorInfo *t = find(name);
  return t && t->shape.size() == 2 ? &t->shape : nullptr;
}

std::optional<int64_t>
TorchScriptCheckpoint::intAttr(std::initializer_list<const char *> names) {
  for (const char *n : names) {
    int64_t v;
    if (api->intAttr(module, n, &v))
      return v;
  }
  return std::nullopt;
}

/// Reads the shape from config.json beside the file, else from the tensor
/// shapes plus the head counts the module keeps as attributes.
Error TorchScriptCheckpoint::inferConfig() {
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
  const std::vector<int64_t> *gate =
      shapeOf("model.layers.0.mlp.gate_proj.weight");
  const std::vector<int64_t> *q =
      shapeOf("model.layers.0.self_attn.q_proj.weight");
  const std::vector<int64_t> *k =
      shapeOf("model.layers.0.self_attn.k_proj.weight");
  if (!emb || !gate || !q || !k)
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
    int64_t l;
    if (n.consume_front("model.layers.") && !n.consumeInteger(10, l))
      layers.insert(l);
  }
  cfg.numLayers = layers.size();
  std::optional<int64_t> heads =
      intAttr({"num_attention_heads", "n_heads", "n_local_heads", "n_head"});
  std::optional<int64_t> kvHeads =
      intAttr({"num_key_value_heads", "n_kv_heads", "n_local_kv_heads"});
  std::optional<int64_t> headDim = intAttr({"head_dim"});
  if (!heads && headDim && *headDim > 0)
    heads = (*q)[0] / *headDim;
  if (!heads || *heads <= 0)
    return importError(path_, "cannot infer the number of attention heads: "
                              "put a config.json beside it or keep an "
                              "'n_heads' attribute in the module");
  cfg.numHeads = *heads;
  cfg.headDim = (*q)[0] / *heads;
  cfg.numKVHeads =
      kvHeads ? *kvHeads : (cfg.headDim > 0 ? (*k)[0] / cfg.headDim : 0);
  cfg.maxSeqLen =
      intAttr({"max_position_embeddings", "max_seq_len", "block_size"})
          .value_or(2048);
  for (const char *n : {"rms_norm_eps", "norm_eps", "eps"}) {
    double eps;
    if (api->doubleAttr(module, n, &eps)) {
      cfg.rmsNormEps = eps;
      break;
    }
  }
  cfg.tiedEmbeddings = !find("lm_head.weight");
  if (Error err = cfg.validate(path_))
    return err;
  config_ = std::move(cfg);
  return Error::success();
}

Error TorchScriptCheckpoint::load(StringRef path) {
  path_ = path.str();
  char *error = nullptr;
  module = api->load(path_.c_str(), &error);
  if (!module)
    return importError(path, "cannot load TorchScript module: " +
                                 takeString(api, error));
  if (Error err = collect())
    return err;
  if (Error err = inferConfig())
    return err;
  // Meta-named q/k weights are in the interleaved rotary layout.
  for (TensorInfo &t : tensors_) {
    const Mapped &m = index.find(t.name)->second.second;
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
  std::string bytes(info->nbytes, '\0');
  char *error = nullptr;
  if (api->readTensor(module, index.find(name)->second.first, bytes.data(),
                      bytes.size(), &error))
    return importError(path_, "cannot read tensor '" + name +
                                  "': " + takeString(api, error));
  return decodeTensor(*info, bytes);
}

} // namespace

Expected<std::unique_ptr<Checkpoint>>
mixq::detail::openTorchScript(StringRef path) {
  Expected<const MixQTorchPluginAPI *> api = pluginAPI();
  if (!api)
    return importError(path, "TorchScript import unavailable: " +
                                 llvm::toString(api.takeError()));
  auto ckpt = std::make_unique<TorchScriptCheckpoint>(*api);
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
