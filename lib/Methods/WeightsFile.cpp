//===- WeightsFile.cpp - the variant's weights.safetensors --------*- C++ -*-===//
//
// Packs kernels::QuantizedTensor arrays into safetensors tensors and back
// (naming convention in include/mixq/Methods/WeightsFile.h).
//
//===----------------------------------------------------------------------===//

#include "mixq/Methods/WeightsFile.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"

#include <cstring>

using namespace mixq;
using namespace mixq::methods;
using llvm::Error;
using llvm::Expected;
using llvm::StringRef;
using llvm::Twine;

const char *const methods::kPackedSuffixes[6] = {
    ".qcodes",       ".qscales",        ".qzeros",
    ".qscale_codes", ".qscale_absmax", ".qscale_offset"};

static Error weightsError(StringRef file, const Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 (file + ": " + msg).str());
}

//===----------------------------------------------------------------------===//
// Spec <-> JSON
//===----------------------------------------------------------------------===//

std::string methods::quantizedSpecJSON(const kernels::QuantizedTensor &q) {
  llvm::json::Object o{{"format", quantFormatName(q.spec.format)},
                       {"block", q.spec.block},
                       {"double_quant", q.spec.doubleQuant},
                       {"tile", llvm::json::Array{q.spec.tileRows,
                                                  q.spec.tileCols}},
                       {"rows", q.rows},
                       {"cols", q.cols},
                       {"row_bytes", q.rowBytes}};
  std::string s;
  llvm::raw_string_ostream os(s);
  os << llvm::json::Value(std::move(o));
  return s;
}

/// Parses the metadata JSON of quantized tensor `name` into `q`'s spec and
/// shape.
static Error parseSpec(StringRef file, StringRef name, StringRef text,
                       kernels::QuantizedTensor &q) {
  auto fail = [&](const Twine &msg) {
    return weightsError(file, "quantized tensor '" + name + "': " + msg);
  };
  Expected<llvm::json::Value> v = llvm::json::parse(text);
  if (!v)
    return fail("malformed spec JSON: " + llvm::toString(v.takeError()));
  const llvm::json::Object *o = v->getAsObject();
  if (!o)
    return fail("spec must be a JSON object");
  std::optional<StringRef> format = o->getString("format");
  std::optional<QuantFormat> f =
      format ? parseQuantFormat(*format) : std::nullopt;
  if (!f)
    return fail("missing or unknown 'format'");
  q.spec.format = *f;
  const llvm::json::Array *tile = o->getArray("tile");
  std::optional<int64_t> block = o->getInteger("block"),
                         rows = o->getInteger("rows"),
                         cols = o->getInteger("cols"),
                         rowBytes = o->getInteger("row_bytes");
  std::optional<bool> dq = o->getBoolean("double_quant");
  if (!block || !rows || !cols || !rowBytes || !dq || !tile ||
      tile->size() != 2 || !(*tile)[0].getAsInteger() ||
      !(*tile)[1].getAsInteger())
    return fail("spec needs integer 'block', 'rows', 'cols', 'row_bytes', "
                "boolean 'double_quant' and 'tile' [rows, cols]");
  q.spec.block = *block;
  q.spec.doubleQuant = *dq;
  q.spec.tileRows = *(*tile)[0].getAsInteger();
  q.spec.tileCols = *(*tile)[1].getAsInteger();
  q.rows = *rows;
  q.cols = *cols;
  q.rowBytes = *rowBytes;
  if (Error e = kernels::validateSpec(q.spec, q.rows, q.cols))
    return fail(llvm::toString(std::move(e)));
  return Error::success();
}

//===----------------------------------------------------------------------===//
// Reader
//===----------------------------------------------------------------------===//

/// The `__metadata__` object of safetensors file `path` (empty if none). The
/// header itself is validated by Checkpoint::openTensorFile.
static Expected<std::map<std::string, std::string>>
readMetadata(StringRef path) {
  auto buf = llvm::MemoryBuffer::getFileSlice(path, 8, 0);
  if (!buf)
    return weightsError(path, "cannot read: " + buf.getError().message());
  uint64_t n = 0;
  const unsigned char *p =
      reinterpret_cast<const unsigned char *>((*buf)->getBufferStart());
  for (int i = 0; i < 8; ++i)
    n |= uint64_t(p[i]) << (8 * i);
  auto json = llvm::MemoryBuffer::getFileSlice(path, n, 8);
  if (!json)
    return weightsError(path, "cannot read header: " +
                                  json.getError().message());
  Expected<llvm::json::Value> v = llvm::json::parse((*json)->getBuffer());
  if (!v)
    return weightsError(path, "malformed header JSON: " +
                                  llvm::toString(v.takeError()));
  std::map<std::string, std::string> out;
  const llvm::json::Object *root = v->getAsObject();
  const llvm::json::Object *meta = root ? root->getObject("__metadata__")
                                        : nullptr;
  if (!meta)
    return out;
  for (const auto &kv : *meta)
    if (std::optional<StringRef> s = kv.second.getAsString())
      out[kv.first.str()] = s->str();
  return out;
}

Expected<std::unique_ptr<QuantizedWeightsReader>>
QuantizedWeightsReader::open(StringRef path) {
  auto file = Checkpoint::openTensorFile(path);
  if (!file)
    return file.takeError();
  auto meta = readMetadata(path);
  if (!meta)
    return meta.takeError();
  auto r = std::unique_ptr<QuantizedWeightsReader>(new QuantizedWeightsReader);
  r->file_ = std::move(*file);
  for (const auto &[k, v] : *meta)
    if (r->file_->find(k + ".qcodes"))
      r->specs_[k] = v;
  return r;
}

std::vector<std::string> QuantizedWeightsReader::quantizedNames() const {
  std::vector<std::string> names;
  for (const auto &kv : specs_)
    names.push_back(kv.getKey().str());
  llvm::sort(names);
  return names;
}

/// Reads the raw bytes of `name` into `out`, checking dtype and byte count.
static Error readArray(const Checkpoint &file, StringRef name, DType dtype,
                       uint64_t nbytes, void *out) {
  const TensorInfo *info = file.find(name);
  if (!info)
    return weightsError(file.path(), "missing tensor '" + name + "'");
  if (info->dtype != dtype || info->nbytes != nbytes)
    return weightsError(file.path(),
                        llvm::formatv("tensor '{0}' must be {1} with {2} "
                                      "bytes, got {3} with {4} bytes",
                                      name, dtypeName(dtype), nbytes,
                                      dtypeName(info->dtype), info->nbytes));
  if (nbytes == 0)
    return Error::success();
  auto buf = llvm::MemoryBuffer::getFileSlice(info->file, nbytes, info->offset);
  if (!buf || (*buf)->getBufferSize() != nbytes)
    return weightsError(info->file, "cannot read tensor '" + name + "'");
  std::memcpy(out, (*buf)->getBufferStart(), nbytes);
  return Error::success();
}

template <typename T>
static Error readOptionalArray(const Checkpoint &file, StringRef name,
                               DType dtype, std::vector<T> &out) {
  const TensorInfo *info = file.find(name);
  if (!info)
    return Error::success();
  if (info->nbytes % sizeof(T) != 0)
    return weightsError(file.path(), "tensor '" + name +
                                         "' has a partial element");
  out.resize(info->nbytes / sizeof(T));
  return readArray(file, name, dtype, info->nbytes, out.data());
}

Expected<kernels::QuantizedTensor>
QuantizedWeightsReader::load(StringRef name) const {
  auto it = specs_.find(name);
  if (it == specs_.end())
    return weightsError(file_->path(),
                        "no quantized tensor '" + name + "'");
  kernels::QuantizedTensor q;
  if (Error e = parseSpec(file_->path(), name, it->second, q))
    return std::move(e);
  std::string n = name.str();
  q.codes.resize(q.rows * q.rowBytes);
  if (Error e = readArray(*file_, n + ".qcodes", DType::U8, q.codes.size(),
                          q.codes.data()))
    return std::move(e);
  std::vector<float> offset;
  if (Error e = readOptionalArray(*file_, n + ".qscales", DType::F32,
                                  q.scales))
    return std::move(e);
  if (Error e = readOptionalArray(*file_, n + ".qzeros", DType::F32, q.zeros))
    return std::move(e);
  if (Error e = readOptionalArray(*file_, n + ".qscale_codes", DType::U8,
                                  q.scaleCodes))
    return std::move(e);
  if (Error e = readOptionalArray(*file_, n + ".qscale_absmax", DType::F32,
                                  q.scaleAbsmax))
    return std::move(e);
  if (Error e = readOptionalArray(*file_, n + ".qscale_offset", DType::F32,
                                  offset))
    return std::move(e);
  if (offset.size() > 1)
    return weightsError(file_->path(),
                        "tensor '" + n + ".qscale_offset' must hold 1 value");
  q.scaleOffset = offset.empty() ? 0.0f : offset[0];
  if (Error e = q.verify())
    return weightsError(file_->path(), "quantized tensor '" + name +
                                           "': " + llvm::toString(std::move(e)));
  return q;
}

Expected<kernels::QuantizedTensor>
methods::loadQuantizedTensor(StringRef path, StringRef name) {
  auto r = QuantizedWeightsReader::open(path);
  if (!r)
    return r.takeError();
  return (*r)->load(name);
}

//===----------------------------------------------------------------------===//
// Writer
//===----------------------------------------------------------------------===//

template <typename T>
static TensorData makeTensor(StringRef name, DType dtype,
                             std::vector<int64_t> shape, const T *data,
                             size_t count) {
  TensorData t;
  t.name = name.str();
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.bytes.resize(count * sizeof(T));
  if (count)
    std::memcpy(t.bytes.data(), data, t.bytes.size());
  return t;
}

Expected<WeightsFileWriter> WeightsFileWriter::openOrCreate(StringRef path) {
  WeightsFileWriter w;
  w.path_ = path.str();
  w.metadata_["format"] = "mixq-weights";
  w.metadata_["version"] = "1";
  if (!llvm::sys::fs::exists(path))
    return w;
  auto file = Checkpoint::openTensorFile(path);
  if (!file)
    return file.takeError();
  auto meta = readMetadata(path);
  if (!meta)
    return meta.takeError();
  for (const auto &[k, v] : *meta)
    w.metadata_[k] = v;
  for (const TensorInfo &info : (*file)->tensors()) {
    TensorData t;
    t.name = info.name;
    t.dtype = info.dtype;
    t.shape = info.shape;
    t.bytes.resize(info.nbytes);
    if (Error e = readArray(**file, info.name, info.dtype, info.nbytes,
                            t.bytes.data()))
      return std::move(e);
    w.tensors_[info.name] = std::move(t);
  }
  return w;
}

void WeightsFileWriter::putF32(StringRef name, std::vector<int64_t> shape,
                               const std::vector<float> &values) {
  tensors_[name.str()] = makeTensor(name, DType::F32, std::move(shape),
                                    values.data(), values.size());
}

void WeightsFileWriter::remove(StringRef name) {
  tensors_.erase(name.str());
  if (metadata_.erase(name.str()))
    for (const char *suffix : kPackedSuffixes)
      tensors_.erase((name + suffix).str());
}

void WeightsFileWriter::putQuantized(StringRef name,
                                     const kernels::QuantizedTensor &q) {
  for (const char *suffix : kPackedSuffixes)
    tensors_.erase((name + suffix).str());
  auto put = [&](TensorData t) { tensors_[t.name] = std::move(t); };
  std::string n = name.str();
  put(makeTensor(n + ".qcodes", DType::U8, {q.rows, q.rowBytes},
                 q.codes.data(), q.codes.size()));
  bool tiles = isIntTileFormat(q.spec.format);
  std::vector<int64_t> scaleShape =
      tiles ? std::vector<int64_t>{q.tileRowCount(), q.tileColCount()}
            : std::vector<int64_t>{q.rows, q.blocksPerRow()};
  if (!q.scales.empty())
    put(makeTensor(n + ".qscales", DType::F32, scaleShape, q.scales.data(),
                   q.scales.size()));
  if (!q.zeros.empty())
    put(makeTensor(n + ".qzeros", DType::F32, scaleShape, q.zeros.data(),
                   q.zeros.size()));
  if (!q.scaleCodes.empty()) {
    put(makeTensor(n + ".qscale_codes", DType::U8,
                   {int64_t(q.scaleCodes.size())}, q.scaleCodes.data(),
                   q.scaleCodes.size()));
    put(makeTensor(n + ".qscale_absmax", DType::F32,
                   {int64_t(q.scaleAbsmax.size())}, q.scaleAbsmax.data(),
                   q.scaleAbsmax.size()));
    put(makeTensor(n + ".qscale_offset", DType::F32, {1}, &q.scaleOffset, 1));
  }
  metadata_[n] = quantizedSpecJSON(q);
}

Error WeightsFileWriter::write() const {
  std::vector<TensorData> tensors;
  tensors.reserve(tensors_.size());
  for (const auto &kv : tensors_)
    tensors.push_back(kv.second);
  std::vector<std::pair<std::string, std::string>> meta(metadata_.begin(),
                                                        metadata_.end());
  std::string tmp = path_ + ".tmp";
  if (Error e = writeSafetensors(tmp, tensors, meta))
    return e;
  if (std::error_code ec = llvm::sys::fs::rename(tmp, path_))
    return weightsError(path_, "cannot rename " + tmp + ": " + ec.message());
  return Error::success();
}
