//===- PrequantizedTest.cpp - packed bases from the variant's weights -----===//
//
// A variant whose weights file holds the compiler's packed bases
// (WeightsFile.h) runs them instead of quantizing at load: its logits equal
// the quantize-at-load logits bit for bit, and a packed tensor whose format
// or shape disagrees with the config is an error naming file and tensor.
//
//===----------------------------------------------------------------------===//

#include "mixq/Kernels/Quant.h"
#include "mixq/Methods/WeightsFile.h"
#include "mixq/Runtime/Model.h"
#include "mixq/Runtime/Variant.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include "gtest/gtest.h"

#include <cstring>

using namespace mixq;
using namespace mixq::runtime;

namespace {

const std::string kData = MIXQ_DATA_DIR;
const std::string kBin = kData + "/models/stories260K/stories260K.bin";
const std::string kTok = kData + "/models/stories260K/tok512.bin";

/// NF4 with double quant everywhere, int4 tiles on one linear, bf16 on
/// another, an f32 LoRA linear (dense, never packed).
const char *kConfig = R"({"version": 1,
  "default": {"format": "nf4", "block": 64, "double_quant": true,
              "adapter": "lora", "rank": 4, "alpha": 8},
  "layers": [{"layer": 1, "role": "down_proj", "format": "int4",
              "tile": [4, 4]},
             {"layer": 2, "role": "v_proj", "format": "bf16"},
             {"layer": 3, "role": "o_proj", "format": "f32"}]})";

struct TempDir {
  llvm::SmallString<128> path;
  TempDir() {
    EXPECT_FALSE(llvm::sys::fs::createUniqueDirectory("mixq-prequant", path));
  }
  ~TempDir() { llvm::sys::fs::remove_directories(path); }
  std::string file(llvm::StringRef name) const {
    llvm::SmallString<128> p(path);
    llvm::sys::path::append(p, name);
    return std::string(p);
  }
};

void writeText(const std::string &path, llvm::StringRef text) {
  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec);
  ASSERT_FALSE(ec) << path;
  os << text;
}

/// Writes a variant directory: manifest with `configJSON`, and a weights
/// file with the packed bases of the linears `pack` selects, quantized with
/// `packSpec(name)` (the config's own spec unless a test changes it).
void writeVariant(const TempDir &dir, const char *configJSON,
                  llvm::function_ref<bool(int64_t, llvm::StringRef)> pack,
                  llvm::function_ref<QuantSpec(const QuantSpec &)> packSpec,
                  bool transposeShape = false) {
  writeText(dir.file("config.json"), configJSON);
  auto src = Variant::open(kBin, dir.file("config.json"), kTok);
  ASSERT_TRUE(bool(src)) << llvm::toString(src.takeError());
  auto w = methods::WeightsFileWriter::openOrCreate(
      dir.file("weights.safetensors"));
  ASSERT_TRUE(bool(w)) << llvm::toString(w.takeError());
  const ModelConfig &mc = (*src)->model();
  for (int64_t l = 0; l < mc.numLayers; ++l)
    for (const char *role : kProjectionRoles) {
      auto spec = (*src)->config()->resolve(l, role);
      ASSERT_TRUE(bool(spec));
      if (spec->quant.format == QuantFormat::F32 || !pack(l, role))
        continue;
      std::string name = hfWeightName(l, role);
      auto f = (*src)->readWeight(name);
      ASSERT_TRUE(bool(f));
      auto shape = mc.projectionShape(l, role); // (in, out)
      int64_t rows = shape.second, cols = shape.first;
      if (transposeShape)
        std::swap(rows, cols);
      auto q = kernels::quantize(f->data(), rows, cols,
                                 packSpec(spec->quant));
      ASSERT_TRUE(bool(q)) << llvm::toString(q.takeError());
      w->putQuantized(name, *q);
    }
  ASSERT_FALSE(bool(w->write()));
  std::string manifest = llvm::formatv(
      R"({{"version": 1, "checkpoint": "{0}", "weights": "weights.safetensors",
          "tokenizer": "{1}", "config": {2}})",
      kBin, kTok, configJSON);
  writeText(dir.file("manifest.json"), manifest);
}

/// Logits of every position of a fixed prompt.
std::vector<float> logitsOf(Model &m) {
  std::vector<int> toks = {1, 403, 407, 261, 378, 432, 65, 315, 270, 11};
  std::vector<int64_t> rows;
  for (int64_t i = 0; i < int64_t(toks.size()); ++i)
    rows.push_back(i);
  std::vector<float> out(rows.size() * m.config().vocabSize);
  KVCache c = m.makeCache(int64_t(toks.size()));
  m.forwardInfer(toks, c, rows, out.data());
  return out;
}

TEST(Prequantized, LogitsEqualQuantizeAtLoadBitForBit) {
  TempDir dir;
  writeVariant(
      dir, kConfig, [](int64_t, llvm::StringRef) { return true; },
      [](const QuantSpec &s) { return s; });
  ModelOptions mo;
  mo.training = false;
  MemoryTracker mem;
  auto pre = Variant::open(dir.path);
  ASSERT_TRUE(bool(pre)) << llvm::toString(pre.takeError());
  auto mPre = (*pre)->buildModel(mem, mo);
  ASSERT_TRUE(bool(mPre)) << llvm::toString(mPre.takeError());
  // 5 layers x 7 projections, one of them f32 (dense, not packed).
  EXPECT_EQ((*pre)->numPrequantized(), 34);
  auto load = Variant::open(kBin, dir.file("config.json"), kTok);
  ASSERT_TRUE(bool(load));
  auto mLoad = (*load)->buildModel(mem, mo);
  ASSERT_TRUE(bool(mLoad));
  EXPECT_EQ((*load)->numPrequantized(), 0);
  std::vector<float> a = logitsOf(**mPre), b = logitsOf(**mLoad);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
}

TEST(Prequantized, PartlyPackedVariantMixesBothSources) {
  TempDir dir;
  writeVariant(
      dir, kConfig, [](int64_t l, llvm::StringRef) { return l < 2; },
      [](const QuantSpec &s) { return s; });
  ModelOptions mo;
  mo.training = false;
  MemoryTracker mem;
  auto pre = Variant::open(dir.path);
  ASSERT_TRUE(bool(pre));
  auto m = (*pre)->buildModel(mem, mo);
  ASSERT_TRUE(bool(m)) << llvm::toString(m.takeError());
  EXPECT_EQ((*pre)->numPrequantized(), 14);
}

TEST(Prequantized, FormatMismatchIsAnErrorNamingFileAndTensor) {
  TempDir dir;
  // layer 0 q_proj packed with block 32 while the config says 64.
  writeVariant(
      dir, kConfig,
      [](int64_t l, llvm::StringRef r) { return l == 0 && r == "q_proj"; },
      [](const QuantSpec &s) {
        QuantSpec t = s;
        t.block = 32;
        return t;
      });
  auto pre = Variant::open(dir.path);
  ASSERT_TRUE(bool(pre));
  MemoryTracker mem;
  auto m = (*pre)->buildModel(mem, ModelOptions());
  ASSERT_FALSE(bool(m));
  std::string msg = llvm::toString(m.takeError());
  EXPECT_NE(msg.find("weights.safetensors"), std::string::npos) << msg;
  EXPECT_NE(msg.find("packed tensor 'model.layers.0.self_attn.q_proj.weight'"
                     " is nf4 block 32 double_quant but the variant's "
                     "config says nf4 block 64 double_quant"),
            std::string::npos)
      << msg;
}

TEST(Prequantized, ShapeMismatchIsAnError) {
  TempDir dir;
  // gate_proj [172, 64] packed as [64, 172].
  writeVariant(
      dir, kConfig,
      [](int64_t l, llvm::StringRef r) { return l == 0 && r == "gate_proj"; },
      [](const QuantSpec &s) { return s; }, /*transposeShape=*/true);
  auto pre = Variant::open(dir.path);
  ASSERT_TRUE(bool(pre));
  MemoryTracker mem;
  auto m = (*pre)->buildModel(mem, ModelOptions());
  ASSERT_FALSE(bool(m));
  std::string msg = llvm::toString(m.takeError());
  EXPECT_NE(msg.find("packed tensor 'model.layers.0.mlp.gate_proj.weight' is "
                     "[64, 172] but the variant's model has [172, 64]"),
            std::string::npos)
      << msg;
}

} // namespace
