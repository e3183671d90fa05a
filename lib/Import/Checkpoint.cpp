//===- Checkpoint.cpp - format dispatch, model checks -----------*- C++ -*-===//
//
// Checkpoint::open picks the reader from the path, the shared f32 reader works
// for every file-backed format, and the model-level checks compare a reader's
// tensors with config.json.
//
//===----------------------------------------------------------------------===//

#include "ImportInternal.h"

#include "llvm/ADT/StringMap.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <algorithm>

using namespace mixq;
using namespace mixq::detail;
using llvm::Error;
using llvm::Expected;
using llvm::StringRef;
using llvm::Twine;

//===----------------------------------------------------------------------===//
// Checkpoint
//===----------------------------------------------------------------------===//

Checkpoint::~Checkpoint() = default;

const TensorInfo *Checkpoint::find(StringRef name) const {
  for (const TensorInfo &t : tensors_)
    if (t.name == name)
      return &t;
  return nullptr;
}

Expected<std::vector<float>> Checkpoint::readF32(StringRef name) const {
  const TensorInfo *info = find(name);
  if (!info)
    return importError(path_, "no tensor named '" + name + "'");
  if (info->file.empty())
    return importError(path_, "tensor '" + name + "' has no backing file");
  // Re-check the size: the file may have changed since it was opened, and
  // mapping past its end would fault.
  uint64_t size = 0;
  if (std::error_code ec = llvm::sys::fs::file_size(info->file, size))
    return importError(info->file, "cannot stat: " + ec.message());
  if (info->offset > size || info->nbytes > size - info->offset)
    return importError(info->file, "tensor '" + name +
                                       "' lies beyond the end of the " +
                                       "file (it shrank after it was opened?)");
  if (info->nbytes == 0)
    return decodeTensor(*info, StringRef());
  llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> buf =
      llvm::MemoryBuffer::getFileSlice(info->file, info->nbytes, info->offset);
  if (!buf)
    return importError(info->file, "cannot read tensor '" + name +
                                       "': " + buf.getError().message());
  return decodeTensor(*info, (*buf)->getBuffer());
}

namespace {

/// A config.json without weights: shapes only.
class ConfigOnlyCheckpoint : public Checkpoint {
public:
  ConfigOnlyCheckpoint(std::string path, ModelConfig config) {
    path_ = std::move(path);
    config_ = std::move(config);
  }
  StringRef format() const override { return "config-only"; }
};

bool hasExtension(StringRef path, StringRef ext) {
  return llvm::sys::path::extension(path).equals_insensitive(ext);
}

std::string joinPath(StringRef dir, StringRef name) {
  llvm::SmallString<256> p(dir);
  llvm::sys::path::append(p, name);
  return std::string(p);
}

/// The single `*.safetensors` file in `dir`, "" if none, an error if several.
Expected<std::string> findLoneSafetensors(StringRef dir) {
  std::vector<std::string> found;
  std::error_code ec;
  for (llvm::sys::fs::directory_iterator it(dir, ec), end; it != end && !ec;
       it.increment(ec))
    if (hasExtension(it->path(), ".safetensors"))
      found.push_back(it->path());
  if (ec)
    return importError(dir, "cannot list directory: " + ec.message());
  if (found.size() > 1)
    return importError(dir, "several .safetensors files and no "
                            "model.safetensors.index.json to tell them apart");
  return found.empty() ? std::string() : found.front();
}

Expected<std::unique_ptr<Checkpoint>> openDirectory(StringRef dir) {
  std::string index = joinPath(dir, "model.safetensors.index.json");
  if (llvm::sys::fs::exists(index))
    return openShardedSafetensors(index);
  std::string single = joinPath(dir, "model.safetensors");
  if (llvm::sys::fs::exists(single))
    return openSafetensorsFile(single);
  Expected<std::string> lone = findLoneSafetensors(dir);
  if (!lone)
    return lone.takeError();
  if (!lone->empty())
    return openSafetensorsFile(*lone);
  if (llvm::sys::fs::exists(joinPath(dir, "pytorch_model.bin")) ||
      llvm::sys::fs::exists(joinPath(dir, "pytorch_model.bin.index.json")))
    return importError(dir, "holds pickled PyTorch weights "
                            "(pytorch_model.bin), which MixQ does not read; "
                            "convert them to safetensors");
  std::string config = joinPath(dir, "config.json");
  if (llvm::sys::fs::exists(config))
    return openConfigOnly(config);
  return importError(dir, "no config.json, model.safetensors or "
                          "model.safetensors.index.json in this directory");
}

/// Reads up to 16 leading bytes of `path` to guess its format.
std::string sniff(StringRef path) {
  uint64_t size = 0;
  if (llvm::sys::fs::file_size(path, size) || size == 0)
    return "";
  llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> buf =
      llvm::MemoryBuffer::getFileSlice(path, std::min<uint64_t>(size, 16), 0);
  if (!buf)
    return "";
  return (*buf)->getBuffer().str();
}

} // namespace

Expected<std::unique_ptr<Checkpoint>>
detail::openConfigOnly(StringRef configPath) {
  Expected<ModelConfig> cfg = ModelConfig::fromHFConfigFile(configPath);
  if (!cfg)
    return cfg.takeError();
  return std::make_unique<ConfigOnlyCheckpoint>(configPath.str(),
                                                std::move(*cfg));
}

Expected<std::unique_ptr<Checkpoint>> Checkpoint::open(StringRef path) {
  llvm::sys::fs::file_status status;
  if (std::error_code ec = llvm::sys::fs::status(path, status))
    return importError(path, "cannot open: " + ec.message());
  if (llvm::sys::fs::is_directory(status))
    return openDirectory(path);
  if (!llvm::sys::fs::is_regular_file(status))
    return importError(path, "not a regular file or directory");
  StringRef fileName = llvm::sys::path::filename(path);
  if (fileName == "model.safetensors.index.json")
    return openShardedSafetensors(path);
  if (hasExtension(path, ".json"))
    return openConfigOnly(path);
  if (hasExtension(path, ".safetensors"))
    return openSafetensorsFile(path);
  if (hasExtension(path, ".pt") || hasExtension(path, ".pth"))
    return openTorchScript(path);
  std::string head = sniff(path);
  if (StringRef(head).starts_with("PK\x03\x04"))
    return importError(path, "is a zip archive (a PyTorch pickle or "
                             "TorchScript file); name TorchScript files .pt");
  if (hasExtension(path, ".bin"))
    return openLlama2c(path);
  if (head.size() > 8 && head[8] == '{')
    return openSafetensorsFile(path);
  return importError(path, "unknown checkpoint format (expected a directory, "
                           ".safetensors, .bin, .pt or config.json)");
}

//===----------------------------------------------------------------------===//
// Expected tensors
//===----------------------------------------------------------------------===//

std::vector<TensorSpec> detail::expectedTensors(const ModelConfig &config) {
  std::vector<TensorSpec> out;
  int64_t hidden = config.hiddenSize;
  out.push_back(
      {"model.embed_tokens.weight", DType::F32, {config.vocabSize, hidden}});
  for (int64_t l = 0, e = config.layers.size(); l < e; ++l) {
    std::string prefix = "model.layers." + std::to_string(l) + ".";
    auto proj = [&](StringRef module, StringRef role) {
      auto [in, out_] = config.projectionShape(l, role);
      out.push_back({prefix + module.str() + "." + role.str() + ".weight",
                     DType::F32,
                     {out_, in}});
    };
    out.push_back({prefix + "input_layernorm.weight", DType::F32, {hidden}});
    for (StringRef role : {"q_proj", "k_proj", "v_proj", "o_proj"})
      proj("self_attn", role);
    out.push_back(
        {prefix + "post_attention_layernorm.weight", DType::F32, {hidden}});
    for (StringRef role : {"gate_proj", "up_proj", "down_proj"})
      proj("mlp", role);
  }
  out.push_back({"model.norm.weight", DType::F32, {hidden}});
  if (!config.tiedEmbeddings)
    out.push_back({"lm_head.weight", DType::F32, {config.vocabSize, hidden}});
  return out;
}

std::vector<std::string> mixq::expectedTensorNames(const ModelConfig &config) {
  std::vector<std::string> names;
  for (TensorSpec &t : expectedTensors(config))
    names.push_back(std::move(t.name));
  return names;
}

static bool isFloating(DType t) {
  return t == DType::F32 || t == DType::F16 || t == DType::BF16 ||
         t == DType::F64;
}

static Error checkOne(StringRef origin, const TensorSpec &want,
                      const TensorInfo &got) {
  if (got.shape != want.shape)
    return importError(origin, "tensor '" + want.name + "' has shape " +
                                   shapeString(got.shape) +
                                   " but config.json implies " +
                                   shapeString(want.shape));
  if (!isFloating(got.dtype))
    return importError(origin, "tensor '" + want.name + "' has dtype " +
                                   dtypeName(got.dtype) +
                                   "; model weights must be F32, F16, BF16 "
                                   "or F64");
  return Error::success();
}

Error detail::checkTensorsAgainstConfig(StringRef origin,
                                        const ModelConfig &config,
                                        std::vector<TensorInfo> &tensors) {
  llvm::StringMap<size_t> index;
  for (size_t i = 0; i < tensors.size(); ++i)
    if (!index.try_emplace(tensors[i].name, i).second)
      return importError(origin, "duplicate tensor '" + tensors[i].name + "'");
  std::vector<TensorSpec> want = expectedTensors(config);
  if (config.tiedEmbeddings)
    want.push_back(
        {"lm_head.weight", DType::F32, {config.vocabSize, config.hiddenSize}});
  std::vector<std::string> missing;
  std::vector<TensorInfo> ordered;
  std::vector<bool> used(tensors.size(), false);
  for (const TensorSpec &w : want) {
    auto it = index.find(w.name);
    if (it == index.end()) {
      if (!(config.tiedEmbeddings && w.name == "lm_head.weight"))
        missing.push_back(w.name);
      continue;
    }
    if (Error err = checkOne(origin, w, tensors[it->second]))
      return err;
    used[it->second] = true;
    ordered.push_back(std::move(tensors[it->second]));
  }
  if (!missing.empty()) {
    std::string list;
    for (size_t i = 0; i < missing.size() && i < 4; ++i)
      list += (i ? ", '" : "'") + missing[i] + "'";
    if (missing.size() > 4)
      list += ", ...";
    return importError(origin,
                       "missing " + Twine(missing.size()) +
                           " tensor(s) required by config.json: " + list);
  }
  std::vector<TensorInfo> extra;
  for (size_t i = 0; i < tensors.size(); ++i)
    if (!used[i])
      extra.push_back(std::move(tensors[i]));
  llvm::sort(extra, [](const TensorInfo &a, const TensorInfo &b) {
    return a.name < b.name;
  });
  for (TensorInfo &t : extra)
    ordered.push_back(std::move(t));
  tensors = std::move(ordered);
  return Error::success();
}
