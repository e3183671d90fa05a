//===- Writer.cpp - safetensors and random checkpoint writers ---*- C++ -*-===//
//
// Writes safetensors files from tensors in memory, and random-weight Hugging
// Face checkpoints of any config, streamed tensor by tensor so that a
// LLaMA-2-7B-shaped checkpoint never has to fit in memory.
//
//===----------------------------------------------------------------------===//

#include "ImportInternal.h"

#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <thread>

using namespace mixq;
using namespace mixq::detail;
using llvm::Error;
using llvm::Expected;
using llvm::StringRef;
using llvm::Twine;

//===----------------------------------------------------------------------===//
// Header
//===----------------------------------------------------------------------===//

Expected<std::string> detail::buildSafetensorsHeader(
    StringRef file, llvm::ArrayRef<TensorSpec> tensors,
    const std::vector<std::pair<std::string, std::string>> &metadata) {
  llvm::json::Object header;
  llvm::StringSet<> names;
  uint64_t offset = 0;
  for (const TensorSpec &t : tensors) {
    if (t.name.empty() || t.name == "__metadata__")
      return importError(file, "invalid tensor name '" + t.name + "'");
    if (!names.insert(t.name).second)
      return importError(file, "duplicate tensor name '" + t.name + "'");
    uint64_t nbytes = dtypeSize(t.dtype);
    for (int64_t d : t.shape)
      if (d < 0 || mulOverflow(nbytes, static_cast<uint64_t>(d), nbytes))
        return importError(file, "tensor '" + t.name + "' has invalid shape " +
                                     shapeString(t.shape));
    llvm::json::Array shape;
    for (int64_t d : t.shape)
      shape.push_back(d);
    header[t.name] = llvm::json::Object{
        {"dtype", dtypeName(t.dtype)},
        {"shape", std::move(shape)},
        {"data_offsets", llvm::json::Array{offset, offset + nbytes}}};
    offset += nbytes;
  }
  if (!metadata.empty()) {
    llvm::json::Object meta;
    for (const auto &[k, v] : metadata)
      meta[k] = v;
    header["__metadata__"] = std::move(meta);
  }
  std::string json;
  llvm::raw_string_ostream os(json);
  os << llvm::json::Value(std::move(header));
  os.flush();
  json.append((8 - json.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  uint64_t n = json.size();
  for (int i = 0; i < 8; ++i)
    out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + json;
}

static Expected<std::unique_ptr<llvm::raw_fd_ostream>>
createOutput(StringRef path) {
  std::error_code ec;
  auto os =
      std::make_unique<llvm::raw_fd_ostream>(path, ec, llvm::sys::fs::OF_None);
  if (ec)
    return importError(path, "cannot create: " + ec.message());
  return std::move(os);
}

static Error closeOutput(StringRef path, llvm::raw_fd_ostream &os) {
  os.close();
  if (os.has_error()) {
    std::error_code ec = os.error();
    os.clear_error();
    return importError(path, "write failed: " + ec.message());
  }
  return Error::success();
}

Error mixq::writeSafetensors(
    StringRef path, llvm::ArrayRef<TensorData> tensors,
    const std::vector<std::pair<std::string, std::string>> &metadata) {
  std::vector<const TensorData *> sorted;
  for (const TensorData &t : tensors)
    sorted.push_back(&t);
  llvm::sort(sorted, [](const TensorData *a, const TensorData *b) {
    return a->name < b->name;
  });
  std::vector<TensorSpec> specs;
  for (const TensorData *t : sorted) {
    TensorSpec spec{t->name, t->dtype, t->shape};
    uint64_t want = dtypeSize(t->dtype);
    for (int64_t d : t->shape)
      if (d < 0 || mulOverflow(want, static_cast<uint64_t>(d), want))
        return importError(path, "tensor '" + t->name + "' has invalid shape " +
                                     shapeString(t->shape));
    if (want != t->bytes.size())
      return importError(
          path, "tensor '" + t->name + "' has " + Twine(t->bytes.size()) +
                    " bytes, its shape and dtype need " + Twine(want));
    specs.push_back(std::move(spec));
  }
  Expected<std::string> header = buildSafetensorsHeader(path, specs, metadata);
  if (!header)
    return header.takeError();
  Expected<std::unique_ptr<llvm::raw_fd_ostream>> os = createOutput(path);
  if (!os)
    return os.takeError();
  **os << *header;
  for (const TensorData *t : sorted)
    (*os)->write(reinterpret_cast<const char *>(t->bytes.data()),
                 t->bytes.size());
  return closeOutput(path, **os);
}

//===----------------------------------------------------------------------===//
// Random checkpoints
//===----------------------------------------------------------------------===//

namespace {

uint64_t splitMix64(uint64_t &state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/// xoshiro256** with Box-Muller normals: fast, and defined here rather than
/// by the standard library (std::normal_distribution's algorithm differs
/// between implementations).
class NormalGenerator {
public:
  explicit NormalGenerator(uint64_t seed) {
    for (uint64_t &s : state)
      s = splitMix64(seed);
  }
  /// Fills `out` with N(0, stddev).
  void fill(float *out, size_t n, float stddev) {
    for (size_t i = 0; i < n; i += 2) {
      double u1 = (static_cast<double>(next() >> 11) + 1.0) * 0x1.0p-53;
      double u2 = static_cast<double>(next() >> 11) * 0x1.0p-53;
      double r = std::sqrt(-2.0 * std::log(u1)) * stddev;
      out[i] = static_cast<float>(r * std::cos(2.0 * M_PI * u2));
      if (i + 1 < n)
        out[i + 1] = static_cast<float>(r * std::sin(2.0 * M_PI * u2));
    }
  }

private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t next() {
    uint64_t result = rotl(state[1] * 5, 7) * 9;
    uint64_t t = state[1] << 17;
    state[2] ^= state[0];
    state[3] ^= state[1];
    state[1] ^= state[2];
    state[0] ^= state[3];
    state[2] ^= t;
    state[3] = rotl(state[3], 45);
    return result;
  }
  uint64_t state[4];
};

uint64_t tensorSeed(uint64_t seed, StringRef name) {
  uint64_t h = 0xcbf29ce484222325ULL; // FNV-1a
  for (char c : name)
    h = (h ^ static_cast<uint8_t>(c)) * 0x100000001b3ULL;
  uint64_t s = seed ^ h;
  return splitMix64(s);
}

/// Encodes f32 values as `dtype` into `out`.
void encode(const float *in, size_t n, DType dtype, std::vector<char> &out) {
  out.resize(n * dtypeSize(dtype));
  if (dtype == DType::F32) {
    std::memcpy(out.data(), in, n * 4);
    return;
  }
  for (size_t i = 0; i < n; ++i) {
    uint16_t v =
        dtype == DType::BF16 ? floatToBFloat16(in[i]) : floatToHalf(in[i]);
    std::memcpy(out.data() + 2 * i, &v, 2);
  }
}

constexpr uint64_t kChunk = uint64_t(1) << 20;

/// Encoded bytes of chunk `chunk` (kChunk elements, fewer at the end) of
/// tensor `t`. Each chunk has its own generator, seeded from the run seed,
/// the tensor name and the chunk index, so chunks can be made in parallel and
/// the bytes depend on nothing else.
void makeChunk(const TensorSpec &t, uint64_t seed, uint64_t numel,
               uint64_t chunk, std::vector<char> &bytes) {
  size_t n = static_cast<size_t>(std::min(kChunk, numel - chunk * kChunk));
  std::vector<float> values(n);
  if (StringRef(t.name).ends_with("norm.weight")) {
    std::fill(values.begin(), values.end(), 1.0f);
  } else {
    uint64_t s = tensorSeed(seed, t.name) + chunk * 0x9e3779b97f4a7c15ULL;
    NormalGenerator(splitMix64(s)).fill(values.data(), n, 0.02f);
  }
  encode(values.data(), n, t.dtype, bytes);
}

/// Streams one tensor, a batch of chunks (one per thread) at a time: memory
/// stays at a few MB per thread whatever the tensor size.
void writeTensor(llvm::raw_ostream &os, const TensorSpec &t, uint64_t seed) {
  uint64_t numel = 1;
  for (int64_t d : t.shape)
    numel *= d;
  uint64_t numChunks = (numel + kChunk - 1) / kChunk;
  unsigned threads = std::clamp(std::thread::hardware_concurrency(), 1u, 16u);
  std::vector<std::vector<char>> bytes(threads);
  for (uint64_t first = 0; first < numChunks; first += threads) {
    unsigned n =
        static_cast<unsigned>(std::min<uint64_t>(threads, numChunks - first));
    std::vector<std::thread> pool;
    for (unsigned k = 1; k < n; ++k)
      pool.emplace_back(
          [&, k] { makeChunk(t, seed, numel, first + k, bytes[k]); });
    makeChunk(t, seed, numel, first, bytes[0]);
    for (std::thread &th : pool)
      th.join();
    for (unsigned k = 0; k < n; ++k)
      os.write(bytes[k].data(), bytes[k].size());
  }
}

StringRef torchDTypeName(DType t) {
  return t == DType::BF16  ? "bfloat16"
         : t == DType::F16 ? "float16"
                           : "float32";
}

} // namespace

Error mixq::writeRandomCheckpoint(const ModelConfig &config, StringRef dir,
                                  uint64_t seed, DType dtype) {
  if (dtype != DType::F32 && dtype != DType::BF16 && dtype != DType::F16)
    return importError(dir, "random checkpoints are F32, BF16 or F16, not " +
                                dtypeName(dtype));
  ModelConfig cfg = config;
  if (Error err = cfg.validate(dir))
    return err;
  if (std::error_code ec = llvm::sys::fs::create_directories(dir))
    return importError(dir, "cannot create directory: " + ec.message());
  llvm::SmallString<256> configPath(dir), weightsPath(dir);
  llvm::sys::path::append(configPath, "config.json");
  llvm::sys::path::append(weightsPath, "model.safetensors");

  llvm::json::Value json = cfg.toJSON();
  json.getAsObject()->try_emplace("torch_dtype", torchDTypeName(dtype));
  Expected<std::unique_ptr<llvm::raw_fd_ostream>> cos =
      createOutput(configPath);
  if (!cos)
    return cos.takeError();
  **cos << llvm::formatv("{0:2}", json) << "\n";
  if (Error err = closeOutput(configPath, **cos))
    return err;

  std::vector<TensorSpec> specs = expectedTensors(cfg);
  for (TensorSpec &t : specs)
    t.dtype = dtype;
  llvm::sort(specs, [](const TensorSpec &a, const TensorSpec &b) {
    return a.name < b.name;
  });
  Expected<std::string> header = buildSafetensorsHeader(
      weightsPath, specs,
      {{"format", "pt"}, {"mixq_seed", std::to_string(seed)}});
  if (!header)
    return header.takeError();
  Expected<std::unique_ptr<llvm::raw_fd_ostream>> os =
      createOutput(weightsPath);
  if (!os)
    return os.takeError();
  **os << *header;
  for (const TensorSpec &t : specs) {
    writeTensor(**os, t, seed);
    if ((*os)->has_error())
      break;
  }
  return closeOutput(weightsPath, **os);
}
