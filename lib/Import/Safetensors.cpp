//===- Safetensors.cpp - safetensors reader ---------------------*- C++ -*-===//
//
// Reads single-file and sharded Hugging Face safetensors checkpoints. The
// header is validated completely before any tensor is exposed: dtypes, shapes
// against byte spans, offsets in range, no overlaps, no holes, no duplicate
// names, and (with config.json) every expected tensor with its shape.
// Format: https://github.com/huggingface/safetensors (8-byte little-endian
// header length, JSON header, then the data section).
//
//===----------------------------------------------------------------------===//

#include "ImportInternal.h"

#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <algorithm>
#include <cctype>
#include <map>

using namespace mixq;
using namespace mixq::detail;
using llvm::Error;
using llvm::Expected;
using llvm::StringRef;
using llvm::Twine;

//===----------------------------------------------------------------------===//
// Header parsing (in memory)
//===----------------------------------------------------------------------===//

Expected<uint64_t> detail::parseSafetensorsHeaderSize(StringRef file,
                                                      StringRef prefix,
                                                      uint64_t fileSize) {
  if (fileSize < 8 || prefix.size() < 8)
    return importError(file, "truncated safetensors file: " + Twine(fileSize) +
                                 " bytes, shorter than the 8-byte header "
                                 "length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i)
    n = (n << 8) | static_cast<uint8_t>(prefix[i]);
  if (n > fileSize - 8)
    return importError(file, "safetensors header length " + Twine(n) +
                                 " goes beyond the end of the file (" +
                                 Twine(fileSize) + " bytes)");
  if (n > kMaxSafetensorsHeader)
    return importError(file, "safetensors header length " + Twine(n) +
                                 " exceeds the 100 MiB limit");
  if (n < 2)
    return importError(file, "safetensors header of " + Twine(n) +
                                 " bytes cannot hold a JSON object");
  return n;
}

std::optional<std::string> detail::findDuplicateTopLevelKey(StringRef text) {
  llvm::StringSet<> seen;
  int depth = 0;
  for (size_t i = 0, e = text.size(); i < e; ++i) {
    char c = text[i];
    if (c == '{' || c == '[') {
      ++depth;
      continue;
    }
    if (c == '}' || c == ']') {
      --depth;
      continue;
    }
    if (c != '"')
      continue;
    size_t start = i++;
    while (i < e && text[i] != '"')
      i += text[i] == '\\' ? 2 : 1;
    if (i >= e)
      return std::nullopt;
    size_t j = i + 1;
    while (j < e && std::isspace(static_cast<unsigned char>(text[j])))
      ++j;
    if (depth != 1 || j >= e || text[j] != ':')
      continue;
    Expected<llvm::json::Value> key =
        llvm::json::parse(text.slice(start, i + 1));
    if (!key) {
      llvm::consumeError(key.takeError());
      continue;
    }
    std::optional<StringRef> s = key->getAsString();
    if (s && !seen.insert(*s).second)
      return s->str();
  }
  return std::nullopt;
}

namespace {

Error parseMetadata(StringRef file, const llvm::json::Value &v,
                    SafetensorsHeader &out) {
  const llvm::json::Object *obj = v.getAsObject();
  if (!obj)
    return importError(file, "'__metadata__' must be an object of strings");
  for (const auto &kv : *obj) {
    std::optional<StringRef> s = kv.second.getAsString();
    if (!s)
      return importError(file, "'__metadata__' value of '" + kv.first.str() +
                                   "' must be a string");
    out.metadata.emplace_back(kv.first.str(), s->str());
  }
  llvm::sort(out.metadata);
  return Error::success();
}

/// Parses one `"name": {dtype, shape, data_offsets}` entry; offsets are
/// relative to the data section of `dataSize` bytes.
Expected<TensorInfo> parseEntry(StringRef file, StringRef name,
                                const llvm::json::Value &v, uint64_t dataSize) {
  std::string what = ("tensor '" + name + "'").str();
  const llvm::json::Object *obj = v.getAsObject();
  if (!obj)
    return importError(file, what + ": header entry must be an object");
  TensorInfo t;
  t.name = name.str();
  t.file = file.str();
  std::optional<StringRef> dtype = obj->getString("dtype");
  if (!dtype)
    return importError(file, what + ": missing string 'dtype'");
  Expected<DType> dt = parseDType(*dtype);
  if (!dt) {
    llvm::consumeError(dt.takeError());
    return importError(file, what + ": unknown dtype '" + *dtype + "'");
  }
  t.dtype = *dt;
  const llvm::json::Array *shape = obj->getArray("shape");
  if (!shape)
    return importError(file, what + ": missing array 'shape'");
  uint64_t numel = 1;
  for (const llvm::json::Value &d : *shape) {
    std::optional<int64_t> dim = d.getAsInteger();
    if (!dim || *dim < 0)
      return importError(file, what + ": shape entries must be non-negative "
                                      "integers");
    if (mulOverflow(numel, static_cast<uint64_t>(*dim), numel))
      return importError(file, what + ": shape overflows");
    t.shape.push_back(*dim);
  }
  const llvm::json::Array *offsets = obj->getArray("data_offsets");
  std::optional<uint64_t> begin, end;
  if (offsets && offsets->size() == 2) {
    begin = (*offsets)[0].getAsUINT64();
    end = (*offsets)[1].getAsUINT64();
  }
  if (!begin || !end)
    return importError(file, what + ": 'data_offsets' must be two "
                                    "non-negative integers");
  if (*begin > *end)
    return importError(file, what + ": data_offsets [" + Twine(*begin) + ", " +
                                 Twine(*end) + "] are reversed");
  if (*end > dataSize)
    return importError(file, what + ": data_offsets [" + Twine(*begin) + ", " +
                                 Twine(*end) +
                                 "] are out of range: the data section has " +
                                 Twine(dataSize) + " bytes");
  if (mulOverflow(numel, dtypeSize(t.dtype), t.nbytes) ||
      t.nbytes != *end - *begin)
    return importError(file, what + ": shape " + shapeString(t.shape) + " of " +
                                 dtypeName(t.dtype) + " needs " +
                                 Twine(numel * dtypeSize(t.dtype)) +
                                 " bytes but data_offsets span " +
                                 Twine(*end - *begin));
  t.offset = *begin;
  return t;
}

/// Checks that the spans tile the data section exactly (no overlap, no hole).
Error checkCoverage(StringRef file, std::vector<TensorInfo> tensors,
                    uint64_t dataSize) {
  llvm::sort(tensors, [](const TensorInfo &a, const TensorInfo &b) {
    return std::make_pair(a.offset, a.offset + a.nbytes) <
           std::make_pair(b.offset, b.offset + b.nbytes);
  });
  uint64_t pos = 0;
  const TensorInfo *prev = nullptr;
  for (const TensorInfo &t : tensors) {
    if (t.offset < pos)
      return importError(file, "tensors '" + prev->name + "' and '" + t.name +
                                   "' overlap in the data section");
    if (t.offset > pos)
      return importError(file, "bytes [" + Twine(pos) + ", " + Twine(t.offset) +
                                   ") of the data section belong to no "
                                   "tensor");
    pos = t.offset + t.nbytes;
    prev = &t;
  }
  if (pos != dataSize)
    return importError(file, "bytes [" + Twine(pos) + ", " + Twine(dataSize) +
                                 ") at the end of the data section belong to "
                                 "no tensor");
  return Error::success();
}

} // namespace

Expected<SafetensorsHeader> detail::parseSafetensorsHeader(StringRef file,
                                                           StringRef json,
                                                           uint64_t fileSize) {
  uint64_t dataStart = 8 + json.size();
  if (dataStart > fileSize)
    return importError(file, "safetensors header goes beyond the end of the "
                             "file");
  uint64_t dataSize = fileSize - dataStart;
  Expected<llvm::json::Value> value = llvm::json::parse(json);
  if (!value)
    return importError(file, "malformed header JSON: " +
                                 llvm::toString(value.takeError()));
  const llvm::json::Object *obj = value->getAsObject();
  if (!obj)
    return importError(file, "malformed header: the JSON header must be an "
                             "object");
  if (std::optional<std::string> dup = findDuplicateTopLevelKey(json))
    return importError(file, "duplicate tensor name '" + *dup + "' in header");
  SafetensorsHeader out;
  for (const auto &kv : *obj) {
    StringRef name = kv.first;
    if (name == "__metadata__") {
      if (Error err = parseMetadata(file, kv.second, out))
        return std::move(err);
      continue;
    }
    if (name.empty())
      return importError(file, "empty tensor name in header");
    Expected<TensorInfo> t = parseEntry(file, name, kv.second, dataSize);
    if (!t)
      return t.takeError();
    out.tensors.push_back(std::move(*t));
  }
  if (Error err = checkCoverage(file, out.tensors, dataSize))
    return std::move(err);
  for (TensorInfo &t : out.tensors)
    t.offset += dataStart;
  llvm::sort(out.tensors, [](const TensorInfo &a, const TensorInfo &b) {
    return a.name < b.name;
  });
  return out;
}

Expected<SafetensorsHeader> detail::parseSafetensorsBuffer(StringRef file,
                                                           StringRef bytes) {
  Expected<uint64_t> n = parseSafetensorsHeaderSize(file, bytes, bytes.size());
  if (!n)
    return n.takeError();
  return parseSafetensorsHeader(file, bytes.substr(8, *n), bytes.size());
}

//===----------------------------------------------------------------------===//
// Files
//===----------------------------------------------------------------------===//

/// Reads and validates the header of the safetensors file `path`.
static Expected<SafetensorsHeader> readHeader(StringRef path) {
  uint64_t size = 0;
  if (std::error_code ec = llvm::sys::fs::file_size(path, size))
    return importError(path, "cannot open: " + ec.message());
  std::string prefix;
  if (size >= 8) {
    llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> buf =
        llvm::MemoryBuffer::getFileSlice(path, 8, 0);
    if (!buf)
      return importError(path, "cannot read: " + buf.getError().message());
    prefix = (*buf)->getBuffer().str();
  }
  Expected<uint64_t> n = parseSafetensorsHeaderSize(path, prefix, size);
  if (!n)
    return n.takeError();
  llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> json =
      llvm::MemoryBuffer::getFileSlice(path, *n, 8);
  if (!json)
    return importError(path,
                       "cannot read header: " + json.getError().message());
  return parseSafetensorsHeader(path, (*json)->getBuffer(), size);
}

static std::string siblingConfig(StringRef path) {
  llvm::SmallString<256> p(llvm::sys::path::parent_path(path));
  if (p.empty())
    p = ".";
  llvm::sys::path::append(p, "config.json");
  return std::string(p);
}

namespace {

class SafetensorsCheckpoint : public Checkpoint {
public:
  SafetensorsCheckpoint(std::string path, ModelConfig config,
                        std::vector<TensorInfo> tensors, bool isModel) {
    path_ = std::move(path);
    config_ = std::move(config);
    tensors_ = std::move(tensors);
    this->isModel = isModel;
  }
  StringRef format() const override {
    return isModel ? "hf-safetensors" : "safetensors";
  }

private:
  bool isModel;
};

/// Loads config.json beside `path`, checks `tensors` against it and builds
/// the checkpoint.
Expected<std::unique_ptr<Checkpoint>> finish(StringRef path, StringRef origin,
                                             std::vector<TensorInfo> tensors) {
  std::string configPath = siblingConfig(path);
  if (!llvm::sys::fs::exists(configPath))
    return importError(path, "no config.json beside it (" + configPath +
                                 "): the model shape is unknown");
  Expected<ModelConfig> cfg = ModelConfig::fromHFConfigFile(configPath);
  if (!cfg)
    return cfg.takeError();
  if (Error err = checkTensorsAgainstConfig(origin, *cfg, tensors))
    return std::move(err);
  return std::make_unique<SafetensorsCheckpoint>(
      path.str(), std::move(*cfg), std::move(tensors), /*isModel=*/true);
}

} // namespace

Expected<std::unique_ptr<Checkpoint>>
detail::openSafetensorsFile(StringRef path) {
  Expected<SafetensorsHeader> header = readHeader(path);
  if (!header)
    return header.takeError();
  return finish(path, path, std::move(header->tensors));
}

Expected<std::unique_ptr<Checkpoint>>
Checkpoint::openTensorFile(StringRef path) {
  Expected<SafetensorsHeader> header = readHeader(path);
  if (!header)
    return header.takeError();
  return std::make_unique<SafetensorsCheckpoint>(
      path.str(), ModelConfig(), std::move(header->tensors), /*isModel=*/false);
}

//===----------------------------------------------------------------------===//
// Sharded checkpoints
//===----------------------------------------------------------------------===//

/// Parses model.safetensors.index.json into tensor name -> shard file name.
static Expected<std::map<std::string, std::string>>
parseIndex(StringRef indexPath) {
  llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> buf =
      llvm::MemoryBuffer::getFile(indexPath, /*IsText=*/true);
  if (!buf)
    return importError(indexPath, "cannot read: " + buf.getError().message());
  Expected<llvm::json::Value> json = llvm::json::parse((*buf)->getBuffer());
  if (!json)
    return importError(indexPath,
                       "malformed JSON: " + llvm::toString(json.takeError()));
  const llvm::json::Object *obj = json->getAsObject();
  const llvm::json::Object *map = obj ? obj->getObject("weight_map") : nullptr;
  if (!map)
    return importError(indexPath, "malformed index: missing object "
                                  "'weight_map'");
  std::map<std::string, std::string> out;
  for (const auto &kv : *map) {
    std::optional<StringRef> shard = kv.second.getAsString();
    if (!shard)
      return importError(indexPath, "malformed index: weight_map entry '" +
                                        kv.first.str() +
                                        "' must be a file name string");
    if (shard->empty() || shard->contains('/') || shard->contains('\\') ||
        *shard == "." || *shard == "..")
      return importError(indexPath, "malformed index: shard name '" + *shard +
                                        "' of '" + kv.first.str() +
                                        "' is not a plain file name");
    out[kv.first.str()] = shard->str();
  }
  if (out.empty())
    return importError(indexPath, "malformed index: 'weight_map' is empty");
  return out;
}

Expected<std::unique_ptr<Checkpoint>>
detail::openShardedSafetensors(StringRef indexPath) {
  Expected<std::map<std::string, std::string>> map = parseIndex(indexPath);
  if (!map)
    return map.takeError();
  StringRef dir = llvm::sys::path::parent_path(indexPath);
  std::map<std::string, std::vector<std::string>> byShard;
  for (const auto &[tensor, shard] : *map)
    byShard[shard].push_back(tensor);
  auto shardPathOf = [&](StringRef shard) {
    llvm::SmallString<256> p(dir.empty() ? StringRef(".") : dir);
    llvm::sys::path::append(p, shard);
    return std::string(p);
  };
  for (const auto &[shard, names] : byShard)
    if (!llvm::sys::fs::exists(shardPathOf(shard)))
      return importError(indexPath,
                         "shard '" + shard + "' (holding '" + names.front() +
                             "') does not exist: " + shardPathOf(shard));
  std::vector<TensorInfo> all;
  for (const auto &[shard, names] : byShard) {
    std::string shardPath = shardPathOf(shard);
    Expected<SafetensorsHeader> header = readHeader(shardPath);
    if (!header)
      return header.takeError();
    llvm::StringSet<> present;
    for (TensorInfo &t : header->tensors) {
      present.insert(t.name);
      auto it = map->find(t.name);
      if (it == map->end() || it->second != shard)
        return importError(indexPath,
                           "tensor '" + t.name + "' is stored in shard '" +
                               shard + "' but the index maps it to " +
                               (it == map->end() ? std::string("no shard")
                                                 : "'" + it->second + "'"));
      all.push_back(std::move(t));
    }
    for (const std::string &name : names)
      if (!present.contains(name))
        return importError(indexPath, "the index maps tensor '" + name +
                                          "' to shard '" + shard +
                                          "', which does not hold it");
  }
  return finish(indexPath, indexPath, std::move(all));
}
