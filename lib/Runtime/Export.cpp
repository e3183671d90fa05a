//===- Export.cpp - adapters in the PEFT layout, merged HF models -*- C++ -*-===//

#include "mixq/Runtime/Export.h"
#include "mixq/Runtime/AdaLoRA.h"

#include "mixq/Import/Checkpoint.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <cstring>
#include <map>
#include <set>

using namespace llvm;

namespace mixq {
namespace runtime {

static Error exportError(StringRef path, const Twine &msg) {
  return createStringError(inconvertibleErrorCode(), path + ": " + msg);
}

static TensorData tensor2D(std::string name, const std::vector<float> &v,
                           int64_t rows, int64_t cols) {
  TensorData t;
  t.name = std::move(name);
  t.dtype = DType::F32;
  t.shape = {rows, cols};
  t.bytes.resize(v.size() * 4);
  std::memcpy(t.bytes.data(), v.data(), t.bytes.size());
  return t;
}

static Error writeJSON(StringRef path, json::Value v) {
  std::error_code ec;
  raw_fd_ostream os(path, ec);
  if (ec)
    return exportError(path, "cannot write: " + ec.message());
  os << formatv("{0:2}", v) << "\n";
  return Error::success();
}

static std::string join(StringRef dir, StringRef file) {
  SmallString<256> p(dir);
  sys::path::append(p, file);
  return std::string(p);
}

/// AdaLoRA in PEFT's saved layout: only the kept triplets (as PEFT's
/// resize_state_dict_by_rank_pattern), tensors `<module>.lora_A` [k, in],
/// `lora_B` [out, k], `lora_E` [k, 1], `ranknum` [1] (the initial rank), and
/// `rank_pattern` (per module, a kept flag for each initial triplet).
static Error writeAdaLoRAPeft(Model &model, StringRef dir,
                              StringRef basePath) {
  std::vector<TensorData> tensors;
  json::Object rankPattern;
  std::set<std::string> targets;
  const AdapterSpec *first = nullptr;
  for (LinearLayer *lin : model.linears()) {
    if (!lin->hasAdapter())
      continue;
    if (!lin->isAdaLoRA())
      return exportError(dir, "a model mixing AdaLoRA with other adapters "
                              "has no PEFT form; use --merged");
    const AdapterSpec &a = lin->spec.adapter;
    if (!first)
      first = &a;
    const int64_t r = lin->view.rank;
    std::vector<int64_t> kept;
    json::Array pattern;
    for (int64_t i = 0; i < r; ++i) {
      if (lin->rankMask[i] != 0.0f)
        kept.push_back(i);
      pattern.push_back(lin->rankMask[i] != 0.0f);
    }
    // PEFT cannot store a rank-0 module: keep one triplet with lambda = 0
    // (it adds nothing) so that the tensors are not empty.
    bool none = kept.empty();
    if (none)
      kept.push_back(0);
    const int64_t k = int64_t(kept.size());
    std::vector<float> A(static_cast<size_t>(k * lin->in)),
        B(static_cast<size_t>(lin->out * k)), E(static_cast<size_t>(k));
    // ranknum: the initial rank, the denominator of the scale alpha / ranknum.
    std::vector<float> N{float(lin->view.scale > 0.0f
                                   ? a.alpha / double(lin->view.scale)
                                   : double(a.rank))};
    for (int64_t j = 0; j < k; ++j) {
      int64_t i = kept[j];
      std::memcpy(&A[j * lin->in], &lin->A[i * lin->in],
                  sizeof(float) * lin->in);
      for (int64_t o = 0; o < lin->out; ++o)
        B[o * k + j] = lin->B[o * r + i];
      E[j] = none ? 0.0f : lin->E[i];
    }
    std::string mod = peftModuleName(lin->layer, lin->role);
    tensors.push_back(tensor2D(mod + ".lora_A", A, k, lin->in));
    tensors.push_back(tensor2D(mod + ".lora_B", B, lin->out, k));
    tensors.push_back(tensor2D(mod + ".lora_E", E, k, 1));
    TensorData n = tensor2D(mod + ".ranknum", N, 1, 1);
    n.shape = {1};
    tensors.push_back(std::move(n));
    rankPattern[mod.substr(strlen("base_model.model.")) + ".lora_E"] =
        std::move(pattern);
    targets.insert(lin->role);
  }
  json::Array tm;
  for (const std::string &t : targets)
    tm.push_back(t);
  json::Object cfg{{"peft_type", "ADALORA"},
                   {"task_type", "CAUSAL_LM"},
                   {"base_model_name_or_path", basePath.str()},
                   {"r", first->rank},
                   {"init_r", first->rank},
                   {"target_r", first->targetRank},
                   {"tinit", first->tinit},
                   {"tfinal", first->tfinal},
                   {"deltaT", first->deltaT},
                   {"beta1", first->beta1},
                   {"beta2", first->beta2},
                   {"orth_reg_weight", first->orthReg},
                   {"lora_alpha", first->alpha},
                   {"lora_dropout", first->dropout},
                   {"target_modules", std::move(tm)},
                   {"rank_pattern", std::move(rankPattern)},
                   {"bias", "none"},
                   {"fan_in_fan_out", false},
                   {"inference_mode", true}};
  if (Error e = writeJSON(join(dir, "adapter_config.json"), std::move(cfg)))
    return e;
  return writeSafetensors(join(dir, "adapter_model.safetensors"), tensors,
                          {{"format", "pt"}});
}

Error writeNativeAdapters(Model &model, StringRef path) {
  std::vector<TensorData> tensors;
  for (LinearLayer *lin : model.linears()) {
    if (!lin->hasAdapter())
      continue;
    if (lin->isAdaLoRA()) // its PEFT file is its native form
      return Error::success();
    std::string mod = peftModuleName(lin->layer, lin->role);
    auto add = [&](const Buffer<float> &b, StringRef suffix) {
      if (b.empty())
        return;
      TensorData t;
      t.name = (mod + "." + suffix + ".weight").str();
      t.dtype = DType::F32;
      t.shape = {b.size()};
      t.bytes.resize(size_t(b.size()) * 4);
      std::memcpy(t.bytes.data(), b.data(), t.bytes.size());
      tensors.push_back(std::move(t));
    };
    add(lin->A, "lora_A");
    add(lin->B, "lora_B");
    add(lin->H, "lora_H");
  }
  if (tensors.empty())
    return exportError(path, "the model has no adapters to save");
  return writeSafetensors(path, tensors, {{"format", "mixq-native"}});
}

Error writePeftAdapters(Model &model, StringRef dir, StringRef basePath,
                        std::vector<std::string> *leftOut) {
  if (std::error_code ec = sys::fs::create_directories(dir))
    return exportError(dir, "cannot create: " + ec.message());
  for (LinearLayer *lin : model.linears())
    if (lin->isAdaLoRA())
      return writeAdaLoRAPeft(model, dir, basePath);
  std::vector<TensorData> tensors;
  std::map<int64_t, int64_t> rankCount;
  std::map<std::string, int64_t> ranks;
  std::map<std::string, double> alphas;
  std::set<std::string> targets;
  double dropout = 0.0;
  std::vector<std::string> omitted;
  for (LinearLayer *lin : model.linears()) {
    if (!lin->hasAdapter())
      continue;
    const AdapterSpec &a = lin->spec.adapter;
    if (a.kind == AdapterKind::QABLoRA) {
      // No PEFT form: left out (the merged export folds it).
      omitted.push_back(peftModuleName(lin->layer, lin->role)
                            .substr(strlen("base_model.model.")));
      continue;
    }
    const int64_t r = lin->view.rank, pool = lin->view.poolIn,
                  rep = lin->view.repeatOut;
    // Expand Q-BLoRA to plain LoRA of rank r: A' [r, in], B' [out, r].
    std::vector<float> A(size_t(r * lin->in)), B(size_t(lin->out * r));
    const int64_t inP = lin->in / pool;
    for (int64_t i = 0; i < r; ++i)
      for (int64_t j = 0; j < lin->in; ++j)
        A[i * lin->in + j] = lin->A[i * inP + j / pool] / float(pool);
    for (int64_t o = 0; o < lin->out; ++o)
      for (int64_t i = 0; i < r; ++i)
        B[o * r + i] = lin->B[(o / rep) * r + i];
    // PEFT scales by lora_alpha / r: keep s = alpha / spec.rank.
    double alpha = double(lin->view.scale) * double(r);
    std::string mod = peftModuleName(lin->layer, lin->role);
    tensors.push_back(tensor2D(mod + ".lora_A.weight", A, r, lin->in));
    tensors.push_back(tensor2D(mod + ".lora_B.weight", B, lin->out, r));
    std::string key = mod.substr(strlen("base_model.model."));
    ranks[key] = r;
    alphas[key] = alpha;
    targets.insert(lin->role);
    rankCount[r]++;
    dropout = a.dropout;
  }
  if (leftOut)
    *leftOut = omitted;
  if (tensors.empty() && !omitted.empty())
    return exportError(dir, "no adapter has a PEFT form (QA-BLoRA: " +
                                llvm::join(omitted, ", ") +
                                "); export with --merged, which folds them");
  if (tensors.empty())
    return exportError(dir, "the model has no adapters to export");
  int64_t defRank = 0, best = -1;
  for (auto &[r, c] : rankCount)
    if (c > best) {
      best = c;
      defRank = r;
    }
  std::map<double, int64_t> alphaCount;
  for (auto &[k, al] : alphas)
    alphaCount[al]++;
  double defAlpha = 0.0;
  best = -1;
  for (auto &[al, c] : alphaCount)
    if (c > best) {
      best = c;
      defAlpha = al;
    }
  json::Object rankPattern, alphaPattern;
  for (auto &[k, r] : ranks)
    if (r != defRank)
      rankPattern[k] = r;
  for (auto &[k, al] : alphas)
    if (al != defAlpha)
      alphaPattern[k] = al;
  json::Array tm;
  for (const std::string &t : targets)
    tm.push_back(t);
  json::Object cfg{{"peft_type", "LORA"},
                   {"task_type", "CAUSAL_LM"},
                   {"base_model_name_or_path", basePath.str()},
                   {"r", defRank},
                   {"lora_alpha", defAlpha},
                   {"lora_dropout", dropout},
                   {"target_modules", std::move(tm)},
                   {"rank_pattern", std::move(rankPattern)},
                   {"alpha_pattern", std::move(alphaPattern)},
                   {"bias", "none"},
                   {"fan_in_fan_out", false},
                   {"inference_mode", true},
                   {"init_lora_weights", true}};
  if (Error e = writeJSON(join(dir, "adapter_config.json"), std::move(cfg)))
    return e;
  return writeSafetensors(join(dir, "adapter_model.safetensors"), tensors,
                          {{"format", "pt"}});
}

Error writeMergedModel(Model &model, StringRef dir) {
  if (std::error_code ec = sys::fs::create_directories(dir))
    return exportError(dir, "cannot create: " + ec.message());
  const ModelConfig &c = model.config();
  std::vector<TensorData> tensors;
  auto add1D = [&](std::string name, const Buffer<float> &b) {
    TensorData t;
    t.name = std::move(name);
    t.shape = {b.size()};
    t.bytes.resize(size_t(b.size()) * 4);
    std::memcpy(t.bytes.data(), b.data(), t.bytes.size());
    tensors.push_back(std::move(t));
  };
  for (size_t l = 0; l < model.layers().size(); ++l) {
    DecoderLayer &L = model.layers()[l];
    add1D(formatv("model.layers.{0}.input_layernorm.weight", l).str(),
          L.norm1);
    add1D(formatv("model.layers.{0}.post_attention_layernorm.weight", l).str(),
          L.norm2);
  }
  for (LinearLayer *lin : model.linears()) {
    std::vector<float> w = lin->baseWeight();
    if (lin->isAdaLoRA())
      refreshAdaLoRA(*lin);
    if (lin->hasAdapter())
      if (Error e = kernels::mergeAdapterDense(lin->view, w.data(), lin->out,
                                               lin->in))
        return e;
    tensors.push_back(tensor2D(lin->weightName, w, lin->out, lin->in));
  }
  std::vector<float> embed(size_t(c.vocabSize * c.hiddenSize));
  std::memcpy(embed.data(), model.embedding(), embed.size() * 4);
  tensors.push_back(tensor2D("model.embed_tokens.weight", embed, c.vocabSize,
                             c.hiddenSize));
  {
    TensorData t;
    t.name = "model.norm.weight";
    t.shape = {c.hiddenSize};
    t.bytes.resize(size_t(c.hiddenSize) * 4);
    std::memcpy(t.bytes.data(), model.finalNorm(), t.bytes.size());
    tensors.push_back(std::move(t));
  }
  if (Error e = writeJSON(join(dir, "config.json"), c.toJSON()))
    return e;
  return writeSafetensors(join(dir, "model.safetensors"), tensors,
                          {{"format", "pt"}});
}

} // namespace runtime
} // namespace mixq
