//===- Variant.cpp - what mixq-run runs: a variant dir or a checkpoint -*- C++ -*-===//

#include "mixq/Runtime/Variant.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <algorithm>

using namespace llvm;

namespace mixq {
namespace runtime {

static Error variantError(StringRef path, const Twine &msg) {
  return createStringError(inconvertibleErrorCode(),
                           "variant '" + path + "': " + msg);
}

/// `p` relative to `dir` unless absolute.
static std::string resolvePath(StringRef dir, StringRef p) {
  if (sys::path::is_absolute(p))
    return p.str();
  SmallString<256> out(dir);
  sys::path::append(out, p);
  return std::string(out);
}

/// A tokenizer beside a checkpoint: tokenizer.model, tokenizer.bin, tok*.bin.
static std::string findTokenizer(StringRef dir) {
  for (const char *name : {"tokenizer.model", "tokenizer.bin"}) {
    std::string p = resolvePath(dir, name);
    if (sys::fs::exists(p))
      return p;
  }
  std::vector<std::string> found;
  std::error_code ec;
  for (sys::fs::directory_iterator it(dir, ec), end; it != end && !ec;
       it.increment(ec)) {
    StringRef name = sys::path::filename(it->path());
    if (name.starts_with("tok") && name.ends_with(".bin"))
      found.push_back(it->path());
  }
  std::sort(found.begin(), found.end());
  return found.empty() ? "" : found.front();
}

Expected<std::unique_ptr<Variant>> Variant::open(StringRef path,
                                                 StringRef configPath,
                                                 StringRef tokenizerPath) {
  auto v = std::unique_ptr<Variant>(new Variant());
  v->path_ = path.str();
  std::string manifest = resolvePath(path, "manifest.json");
  std::string ckptPath = path.str(), tokDir;
  const json::Object *modelObj = nullptr;
  std::optional<json::Value> root;
  if (sys::fs::is_directory(path) && sys::fs::exists(manifest)) {
    if (!configPath.empty())
      return variantError(path, "--config is only for a checkpoint; a "
                                "variant directory has its config in "
                                "manifest.json");
    auto buf = MemoryBuffer::getFile(manifest, /*IsText=*/true);
    if (!buf)
      return variantError(manifest, "cannot read: " +
                                        buf.getError().message());
    auto parsed = json::parse((*buf)->getBuffer());
    if (!parsed)
      return variantError(manifest, "malformed JSON: " +
                                        toString(parsed.takeError()));
    root = std::move(*parsed);
    const json::Object *obj = root->getAsObject();
    if (!obj)
      return variantError(manifest, "top level must be an object");
    if (obj->getInteger("version").value_or(0) != 1)
      return variantError(manifest, "missing or unsupported \"version\" "
                                    "(expected 1)");
    auto ck = obj->getString("checkpoint");
    if (!ck)
      return variantError(manifest, "missing string \"checkpoint\"");
    ckptPath = resolvePath(path, *ck);
    if (auto w = obj->getString("weights")) {
      std::string wp = resolvePath(path, *w);
      auto o = Checkpoint::openTensorFile(wp);
      if (!o)
        return o.takeError();
      v->overrides_ = std::move(*o);
      v->overridesPath_ = wp;
      auto q = methods::QuantizedWeightsReader::open(wp);
      if (!q)
        return q.takeError();
      if (!(*q)->quantizedNames().empty())
        v->packed_ = std::move(*q);
    }
    if (auto t = obj->getString("tokenizer"))
      v->tokenizerPath_ = resolvePath(path, *t);
    modelObj = obj->getObject("model");
    if (const json::Value *cfg = obj->get("config")) {
      auto vc = VariantConfig::fromJSON(*cfg, manifest + " (config)");
      if (!vc)
        return vc.takeError();
      v->config_ = std::move(*vc);
    }
  } else if (!configPath.empty()) {
    auto vc = VariantConfig::fromFile(configPath);
    if (!vc)
      return vc.takeError();
    v->config_ = std::move(*vc);
  }
  auto base = Checkpoint::open(ckptPath);
  if (!base)
    return base.takeError();
  v->base_ = std::move(*base);
  if (!v->base_->hasWeights())
    return variantError(ckptPath, "the checkpoint has no weights");
  if (modelObj) {
    auto mc = ModelConfig::fromJSON(json::Value(json::Object(*modelObj)),
                                    manifest + " (model)");
    if (!mc)
      return mc.takeError();
    v->model_ = std::move(*mc);
  } else {
    v->model_ = v->base_->config();
  }
  if (Error e = v->model_.validate(path))
    return std::move(e);
  if (!tokenizerPath.empty())
    v->tokenizerPath_ = tokenizerPath.str();
  if (v->tokenizerPath_.empty()) {
    StringRef dir = sys::fs::is_directory(ckptPath)
                        ? StringRef(ckptPath)
                        : sys::path::parent_path(ckptPath);
    v->tokenizerPath_ = findTokenizer(dir.empty() ? "." : dir);
  }
  return std::move(v);
}

Expected<std::vector<float>> Variant::readWeight(StringRef name) const {
  if (overrides_ && overrides_->find(name))
    return overrides_->readF32(name);
  if (!base_->find(name))
    return variantError(base_->path(), "no tensor '" + name + "'");
  return base_->readF32(name);
}

Expected<std::vector<float>> Variant::readAdapter(StringRef name) const {
  for (const Checkpoint *c : {adapterFile_.get(), overrides_.get()})
    if (c && c->find(name))
      return c->readF32(name);
  return std::vector<float>();
}

Error Variant::setAdapterFile(StringRef path) {
  std::string p = path.str();
  // A run directory: its native adapters (every kind, in the runtime's
  // shapes), else its PEFT file.
  if (sys::fs::is_directory(p)) {
    std::string native = resolvePath(p, "adapters.safetensors");
    p = sys::fs::exists(native) ? native
                                : resolvePath(p, "adapter_model.safetensors");
  }
  auto c = Checkpoint::openTensorFile(p);
  if (!c)
    return c.takeError();
  adapterFile_ = std::move(*c);
  return Error::success();
}

Expected<std::unique_ptr<Tokenizer>> Variant::openTokenizer() const {
  if (tokenizerPath_.empty())
    return variantError(path_, "no tokenizer found beside the checkpoint "
                               "(tokenizer.model, tokenizer.bin or tok*.bin);"
                               " name one with --tokenizer");
  return Tokenizer::open(tokenizerPath_);
}

/// The fields of `s` that shape a packed tensor of its format.
static std::string packedSpecString(const QuantSpec &s) {
  std::string str = quantFormatName(s.format).str();
  switch (s.format) {
  case QuantFormat::NF4:
  case QuantFormat::FP4:
    return str + formatv(" block {0}{1}", s.block,
                         s.doubleQuant ? " double_quant" : "")
                     .str();
  case QuantFormat::Int8:
    return str + formatv(" block {0}", s.block).str();
  case QuantFormat::Int4:
  case QuantFormat::Int3:
  case QuantFormat::Int2:
    return str + formatv(" tile [{0}, {1}]", s.tileRows, s.tileCols).str();
  default:
    return str;
  }
}

Expected<std::unique_ptr<kernels::QuantizedTensor>>
Variant::readPrequantized(StringRef name, int64_t out, int64_t in,
                          const QuantSpec &spec) const {
  if (!packed_ || !packed_->hasQuantized(name))
    return nullptr;
  auto q = packed_->load(name);
  if (!q)
    return q.takeError();
  std::string have = packedSpecString(q->spec),
              want = packedSpecString(spec);
  if (q->rows != out || q->cols != in)
    return variantError(overridesPath_,
                        formatv("packed tensor '{0}' is [{1}, {2}] but the "
                                "variant's model has [{3}, {4}]",
                                name, q->rows, q->cols, out, in));
  if (have != want)
    return variantError(overridesPath_,
                        formatv("packed tensor '{0}' is {1} but the "
                                "variant's config says {2} (re-run "
                                "mixq-opt --mixq-materialize-quant)",
                                name, have, want));
  return std::make_unique<kernels::QuantizedTensor>(std::move(*q));
}

Expected<std::unique_ptr<Model>>
Variant::buildModel(MemoryTracker &mem, const ModelOptions &opts) const {
  auto weights = [&](StringRef n) { return readWeight(n); };
  auto adapters = [&](StringRef n) { return readAdapter(n); };
  numPrequantized_ = 0;
  ModelOptions o = opts;
  if (packed_)
    o.prequantized = [&](StringRef n, int64_t out, int64_t in,
                         const QuantSpec &spec)
        -> Expected<std::unique_ptr<kernels::QuantizedTensor>> {
      auto q = readPrequantized(n, out, in, spec);
      if (q && *q)
        ++numPrequantized_;
      return q;
    };
  return Model::build(model_, config(), weights, adapters, mem, o);
}

} // namespace runtime
} // namespace mixq
