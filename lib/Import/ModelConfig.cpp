//===- ModelConfig.cpp - LLaMA-family model shape description ---*- C++ -*-===//
//
// Parsing, printing and validation of the Hugging Face `config.json` of a
// LLaMA-family decoder, with the MixQ `mixq_layers` extension for pruned
// models.
//
//===----------------------------------------------------------------------===//

#include "mixq/Import/ModelConfig.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/MemoryBuffer.h"

#include <cmath>
#include <limits>

using namespace mixq;
using llvm::Error;
using llvm::Expected;
using llvm::StringRef;
using llvm::Twine;

namespace {

/// Upper bound on every size in a config (keeps products far from int64
/// overflow: 2^31 * 2^31 fits easily).
constexpr int64_t kMaxDimension = int64_t(1) << 31;

Error configError(StringRef origin, const Twine &msg) {
  return llvm::createStringError(std::errc::invalid_argument, "%s: %s",
                                 origin.str().c_str(), msg.str().c_str());
}

StringRef kindName(const llvm::json::Value &v) {
  switch (v.kind()) {
  case llvm::json::Value::Null:
    return "null";
  case llvm::json::Value::Boolean:
    return "a boolean";
  case llvm::json::Value::Number:
    return "a number";
  case llvm::json::Value::String:
    return "a string";
  case llvm::json::Value::Array:
    return "an array";
  case llvm::json::Value::Object:
    return "an object";
  }
  return "a value";
}

/// Reads integer `key` of `obj` into `out`. Absent keys leave `out` alone
/// unless `required`.
Error readInt(const llvm::json::Object &obj, StringRef key, StringRef keyPath,
              int64_t &out, bool required, StringRef origin) {
  const llvm::json::Value *v = obj.get(key);
  if (!v || v->kind() == llvm::json::Value::Null) {
    if (required)
      return configError(origin, "missing required key '" + keyPath + "'");
    return Error::success();
  }
  if (std::optional<int64_t> i = v->getAsInteger()) {
    out = *i;
    return Error::success();
  }
  // Accept integral doubles such as 4096.0.
  if (std::optional<double> d = v->getAsNumber()) {
    if (std::isfinite(*d) && std::floor(*d) == *d && std::fabs(*d) < 9.0e15) {
      out = static_cast<int64_t>(*d);
      return Error::success();
    }
  }
  return configError(origin, "key '" + keyPath + "' must be an integer, got " +
                                 kindName(*v));
}

Error readDouble(const llvm::json::Object &obj, StringRef key, double &out,
                 StringRef origin) {
  const llvm::json::Value *v = obj.get(key);
  if (!v || v->kind() == llvm::json::Value::Null)
    return Error::success();
  std::optional<double> d = v->getAsNumber();
  if (!d || !std::isfinite(*d))
    return configError(origin, "key '" + key +
                                   "' must be a finite number, got " +
                                   kindName(*v));
  out = *d;
  return Error::success();
}

Error readBool(const llvm::json::Object &obj, StringRef key, bool &out,
               StringRef origin) {
  const llvm::json::Value *v = obj.get(key);
  if (!v || v->kind() == llvm::json::Value::Null)
    return Error::success();
  std::optional<bool> b = v->getAsBoolean();
  if (!b)
    return configError(origin, "key '" + key + "' must be a boolean, got " +
                                   kindName(*v));
  out = *b;
  return Error::success();
}

/// Rejects features MixQ's decoder does not model.
Error checkUnsupported(const llvm::json::Object &obj, StringRef origin) {
  if (const llvm::json::Value *v = obj.get("hidden_act")) {
    std::optional<StringRef> act = v->getAsString();
    if (!act)
      return configError(origin, "key 'hidden_act' must be a string, got " +
                                     kindName(*v));
    if (*act != "silu" && *act != "swish")
      return configError(origin, "key 'hidden_act' is '" + *act +
                                     "'; MixQ supports LLaMA's 'silu'");
  }
  for (StringRef key : {"attention_bias", "mlp_bias"}) {
    bool bias = false;
    if (Error err = readBool(obj, key, bias, origin))
      return err;
    if (bias)
      return configError(origin, "key '" + key +
                                     "' is true; MixQ supports bias-free "
                                     "LLaMA projections only");
  }
  return Error::success();
}

Error parseArchitecture(const llvm::json::Object &obj, ModelConfig &cfg,
                        StringRef origin) {
  const llvm::json::Value *v = obj.get("architectures");
  if (!v || v->kind() == llvm::json::Value::Null)
    return Error::success();
  const llvm::json::Array *arr = v->getAsArray();
  if (!arr || arr->empty() || !(*arr)[0].getAsString())
    return configError(origin,
                       "key 'architectures' must be a non-empty array of "
                       "strings");
  cfg.architecture = (*arr)[0].getAsString()->str();
  return Error::success();
}

Error parseLayers(const llvm::json::Object &obj, ModelConfig &cfg,
                  StringRef origin) {
  const llvm::json::Value *v = obj.get("mixq_layers");
  if (!v || v->kind() == llvm::json::Value::Null)
    return Error::success();
  const llvm::json::Array *arr = v->getAsArray();
  if (!arr)
    return configError(origin,
                       Twine("key 'mixq_layers' must be an array, got ") +
                           kindName(*v));
  for (auto [i, entry] : llvm::enumerate(*arr)) {
    std::string prefix = ("mixq_layers[" + Twine(i) + "]").str();
    const llvm::json::Object *layer = entry.getAsObject();
    if (!layer)
      return configError(origin, "key '" + prefix +
                                     "' must be an object, got " +
                                     kindName(entry));
    LayerShape shape;
    if (Error err = readInt(*layer, "num_heads", prefix + ".num_heads",
                            shape.numHeads, true, origin))
      return err;
    if (Error err = readInt(*layer, "num_key_value_heads",
                            prefix + ".num_key_value_heads", shape.numKVHeads,
                            true, origin))
      return err;
    if (Error err =
            readInt(*layer, "intermediate_size", prefix + ".intermediate_size",
                    shape.intermediateSize, true, origin))
      return err;
    cfg.layers.push_back(shape);
  }
  return Error::success();
}

} // namespace

//===----------------------------------------------------------------------===//
// Parsing
//===----------------------------------------------------------------------===//

Expected<ModelConfig> ModelConfig::fromHFConfigFile(StringRef path) {
  llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> buf =
      llvm::MemoryBuffer::getFile(path, /*IsText=*/true);
  if (!buf)
    return configError(path, "cannot read: " + buf.getError().message());
  Expected<llvm::json::Value> json = llvm::json::parse((*buf)->getBuffer());
  if (!json)
    return configError(path,
                       "malformed JSON: " + llvm::toString(json.takeError()));
  return fromJSON(*json, path);
}

Expected<ModelConfig> ModelConfig::fromJSON(const llvm::json::Value &v,
                                            StringRef origin) {
  const llvm::json::Object *obj = v.getAsObject();
  if (!obj)
    return configError(origin,
                       Twine("expected a JSON object, got ") + kindName(v));
  ModelConfig cfg;
  // Hugging Face LlamaConfig defaults for the optional keys.
  cfg.maxSeqLen = 2048;
  cfg.rmsNormEps = 1e-6;
  int64_t kvHeads = -1;
  struct IntKey {
    StringRef key;
    int64_t *out;
    bool required;
  } intKeys[] = {
      {"hidden_size", &cfg.hiddenSize, true},
      {"intermediate_size", &cfg.intermediateSize, true},
      {"num_hidden_layers", &cfg.numLayers, true},
      {"num_attention_heads", &cfg.numHeads, true},
      {"num_key_value_heads", &kvHeads, false},
      {"head_dim", &cfg.headDim, false},
      {"vocab_size", &cfg.vocabSize, true},
      {"max_position_embeddings", &cfg.maxSeqLen, false},
  };
  for (const IntKey &k : intKeys)
    if (Error err = readInt(*obj, k.key, k.key, *k.out, k.required, origin))
      return std::move(err);
  cfg.numKVHeads = kvHeads == -1 ? cfg.numHeads : kvHeads;
  if (Error err = readDouble(*obj, "rms_norm_eps", cfg.rmsNormEps, origin))
    return std::move(err);
  if (Error err = readDouble(*obj, "rope_theta", cfg.ropeTheta, origin))
    return std::move(err);
  if (Error err =
          readBool(*obj, "tie_word_embeddings", cfg.tiedEmbeddings, origin))
    return std::move(err);
  if (Error err = checkUnsupported(*obj, origin))
    return std::move(err);
  if (Error err = parseArchitecture(*obj, cfg, origin))
    return std::move(err);
  if (Error err = parseLayers(*obj, cfg, origin))
    return std::move(err);
  if (Error err = cfg.validate(origin))
    return std::move(err);
  return cfg;
}

//===----------------------------------------------------------------------===//
// Printing
//===----------------------------------------------------------------------===//

llvm::json::Value ModelConfig::toJSON() const {
  llvm::json::Object obj{
      {"architectures", llvm::json::Array{architecture}},
      {"model_type", "llama"},
      {"hidden_size", hiddenSize},
      {"intermediate_size", intermediateSize},
      {"num_hidden_layers", numLayers},
      {"num_attention_heads", numHeads},
      {"num_key_value_heads", numKVHeads},
      {"vocab_size", vocabSize},
      {"max_position_embeddings", maxSeqLen},
      {"rms_norm_eps", rmsNormEps},
      {"rope_theta", ropeTheta},
      {"hidden_act", "silu"},
      {"tie_word_embeddings", tiedEmbeddings},
  };
  if (numHeads > 0 &&
      (hiddenSize % numHeads != 0 || headDim != hiddenSize / numHeads))
    obj["head_dim"] = headDim;
  bool uniform = llvm::all_of(layers, [&](const LayerShape &l) {
    return l.numHeads == numHeads && l.numKVHeads == numKVHeads &&
           l.intermediateSize == intermediateSize;
  });
  if (!uniform) {
    llvm::json::Array arr;
    for (const LayerShape &l : layers)
      arr.push_back(
          llvm::json::Object{{"num_heads", l.numHeads},
                             {"num_key_value_heads", l.numKVHeads},
                             {"intermediate_size", l.intermediateSize}});
    obj["mixq_layers"] = std::move(arr);
  }
  return llvm::json::Value(std::move(obj));
}

//===----------------------------------------------------------------------===//
// Validation and derived sizes
//===----------------------------------------------------------------------===//

static Error checkSize(StringRef origin, StringRef key, int64_t value) {
  if (value <= 0)
    return configError(origin, "key '" + key + "' must be positive, got " +
                                   Twine(value));
  if (value > kMaxDimension)
    return configError(origin,
                       "key '" + key + "' is too large: " + Twine(value));
  return Error::success();
}

static Error checkHeads(StringRef origin, StringRef prefix, int64_t heads,
                        int64_t kvHeads) {
  if (heads % kvHeads != 0)
    return configError(origin, prefix + "num_attention_heads (" + Twine(heads) +
                                   ") is not a multiple of "
                                   "num_key_value_heads (" +
                                   Twine(kvHeads) + ")");
  return Error::success();
}

/// Checks one `mixq_layers` entry; the key prefix is only formatted for an
/// error (validate runs on every header the llama2.c fuzzer produces).
static Error checkLayer(StringRef origin, size_t index, const LayerShape &l) {
  auto prefix = [&] { return ("mixq_layers[" + Twine(index) + "].").str(); };
  if (l.numHeads <= 0 || l.numHeads > kMaxDimension)
    return checkSize(origin, prefix() + "num_heads", l.numHeads);
  if (l.numKVHeads <= 0 || l.numKVHeads > kMaxDimension)
    return checkSize(origin, prefix() + "num_key_value_heads", l.numKVHeads);
  if (l.intermediateSize <= 0 || l.intermediateSize > kMaxDimension)
    return checkSize(origin, prefix() + "intermediate_size",
                     l.intermediateSize);
  if (l.numHeads % l.numKVHeads != 0)
    return checkHeads(origin, prefix(), l.numHeads, l.numKVHeads);
  return Error::success();
}

Error ModelConfig::validate(StringRef origin) {
  struct {
    StringRef key;
    int64_t value;
  } sizes[] = {{"hidden_size", hiddenSize},
               {"intermediate_size", intermediateSize},
               {"num_hidden_layers", numLayers},
               {"num_attention_heads", numHeads},
               {"num_key_value_heads", numKVHeads},
               {"vocab_size", vocabSize},
               {"max_position_embeddings", maxSeqLen}};
  for (const auto &s : sizes)
    if (Error err = checkSize(origin, s.key, s.value))
      return err;
  if (numLayers > 65536)
    return configError(origin, "key 'num_hidden_layers' is too large: " +
                                   Twine(numLayers));
  if (headDim == 0) {
    if (hiddenSize % numHeads != 0)
      return configError(origin, "hidden_size (" + Twine(hiddenSize) +
                                     ") is not a multiple of "
                                     "num_attention_heads (" +
                                     Twine(numHeads) +
                                     ") and no 'head_dim' is given");
    headDim = hiddenSize / numHeads;
  }
  if (Error err = checkSize(origin, "head_dim", headDim))
    return err;
  if (headDim % 2 != 0)
    return configError(origin, "head_dim " + Twine(headDim) +
                                   " is odd; rotary embeddings need pairs");
  if (Error err = checkHeads(origin, "", numHeads, numKVHeads))
    return err;
  if (!(rmsNormEps > 0) || !std::isfinite(rmsNormEps))
    return configError(origin, "key 'rms_norm_eps' must be positive, got " +
                                   std::to_string(rmsNormEps));
  if (!(ropeTheta > 0) || !std::isfinite(ropeTheta))
    return configError(origin, "key 'rope_theta' must be positive, got " +
                                   std::to_string(ropeTheta));
  if (layers.empty())
    layers.assign(numLayers,
                  LayerShape{numHeads, numKVHeads, intermediateSize});
  if (static_cast<int64_t>(layers.size()) != numLayers)
    return configError(origin, "key 'mixq_layers' has " + Twine(layers.size()) +
                                   " entries but num_hidden_layers is " +
                                   Twine(numLayers));
  for (auto [i, l] : llvm::enumerate(layers))
    if (Error err = checkLayer(origin, i, l))
      return err;
  return Error::success();
}

std::pair<int64_t, int64_t> ModelConfig::projectionShape(int64_t layer,
                                                         StringRef role) const {
  if (role == "lm_head")
    return {hiddenSize, vocabSize};
  if (layer < 0 || layer >= static_cast<int64_t>(layers.size()))
    return {0, 0};
  const LayerShape &l = layers[layer];
  int64_t q = l.numHeads * headDim, kv = l.numKVHeads * headDim;
  if (role == "q_proj")
    return {hiddenSize, q};
  if (role == "k_proj" || role == "v_proj")
    return {hiddenSize, kv};
  if (role == "o_proj")
    return {q, hiddenSize};
  if (role == "gate_proj" || role == "up_proj")
    return {hiddenSize, l.intermediateSize};
  if (role == "down_proj")
    return {l.intermediateSize, hiddenSize};
  return {0, 0};
}

int64_t ModelConfig::numParameters() const {
  int64_t total = vocabSize * hiddenSize; // token embedding
  for (int64_t layer = 0, e = layers.size(); layer < e; ++layer) {
    for (const char *role : kProjectionRoles) {
      auto [in, out] = projectionShape(layer, role);
      total += in * out;
    }
    total += 2 * hiddenSize; // input and post-attention RMSNorm
  }
  total += hiddenSize; // final norm
  if (!tiedEmbeddings)
    total += vocabSize * hiddenSize;
  return total;
}
