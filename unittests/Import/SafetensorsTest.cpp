//===- SafetensorsTest.cpp - safetensors reader tests -----------*- C++ -*-===//

#include "TestUtil.h"

#include "llvm/Support/FormatVariadic.h"

using namespace mixq;
using namespace mixq::detail;
using namespace mixq::test;

namespace {

/// Deterministic values for tensor `name`.
std::vector<float> valuesFor(llvm::StringRef name, int64_t n) {
  std::vector<float> v(n);
  uint32_t h = 2166136261u;
  for (char c : name)
    h = (h ^ static_cast<uint8_t>(c)) * 16777619u;
  for (int64_t i = 0; i < n; ++i)
    v[i] = static_cast<float>(static_cast<int32_t>((h + i * 2654435761u) >> 8) %
                              1000) /
           1000.0f;
  return v;
}

/// The tensors of `cfg` filled by valuesFor, as F32.
std::vector<TensorData> modelTensors(const ModelConfig &cfg) {
  std::vector<TensorData> out;
  for (const TensorSpec &s : expectedTensors(cfg)) {
    int64_t n = 1;
    for (int64_t d : s.shape)
      n *= d;
    out.push_back(
        {s.name, DType::F32, s.shape, f32Bytes(valuesFor(s.name, n))});
  }
  return out;
}

void writeConfig(const TempDir &dir, const ModelConfig &cfg) {
  std::string text;
  llvm::raw_string_ostream os(text);
  os << cfg.toJSON();
  os.flush();
  writeFile(dir.path("config.json"), text);
}

void expectModelReadsBack(const Checkpoint &ckpt, const ModelConfig &cfg) {
  for (const TensorSpec &s : expectedTensors(cfg)) {
    llvm::Expected<std::vector<float>> got = ckpt.readF32(s.name);
    ASSERT_TRUE(bool(got)) << llvm::toString(got.takeError());
    EXPECT_EQ(*got, valuesFor(s.name, got->size())) << s.name;
  }
}

TEST(Safetensors, SingleFileModel) {
  TempDir dir;
  ModelConfig cfg = tinyConfig();
  writeConfig(dir, cfg);
  ASSERT_FALSE(bool(writeSafetensors(dir.path("model.safetensors"),
                                     modelTensors(cfg), {{"format", "pt"}})));
  for (std::string path : {dir.path(), dir.path("model.safetensors")}) {
    auto ckpt = Checkpoint::open(path);
    ASSERT_TRUE(bool(ckpt)) << llvm::toString(ckpt.takeError());
    EXPECT_EQ((*ckpt)->format(), "hf-safetensors");
    EXPECT_EQ((*ckpt)->config().numKVHeads, 2);
    ASSERT_EQ((*ckpt)->tensors().size(), expectedTensorNames(cfg).size());
    EXPECT_EQ((*ckpt)->tensors()[0].name, "model.embed_tokens.weight");
    expectModelReadsBack(**ckpt, cfg);
  }
}

TEST(Safetensors, WriterLaysOutSortedAlignedHeader) {
  TempDir dir;
  std::string path = dir.path("t.safetensors");
  std::vector<TensorData> ts = {
      {"b", DType::F16, {3}, std::vector<uint8_t>(6, 1)},
      {"a", DType::U8, {1}, {7}}};
  ASSERT_FALSE(bool(writeSafetensors(path, ts)));
  std::string bytes = readFile(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i)
    n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(bytes.size(), 8 + n + 7);
  llvm::StringRef json(bytes.data() + 8, n);
  EXPECT_LT(json.find("\"a\""), json.find("\"b\""));
  SafetensorsHeader h = llvm::cantFail(parseSafetensorsBuffer(path, bytes));
  ASSERT_EQ(h.tensors.size(), 2u);
  EXPECT_EQ(h.tensors[0].name, "a");
  EXPECT_EQ(h.tensors[0].offset, 8 + n);
  EXPECT_EQ(h.tensors[1].offset, 8 + n + 1);
  EXPECT_EQ(static_cast<uint8_t>(bytes[8 + n]), 7);
}

TEST(Safetensors, GenericDTypes) {
  TempDir dir;
  std::string path = dir.path("adapter.safetensors");
  auto raw = [](const void *p, size_t n) {
    const uint8_t *b = static_cast<const uint8_t *>(p);
    return std::vector<uint8_t>(b, b + n);
  };
  int8_t i8[] = {-128, 5};
  uint8_t u8[] = {255, 0};
  int16_t i16[] = {-300, 300};
  int32_t i32[] = {-70000, 123456};
  int64_t i64[] = {-5, 1LL << 40};
  double f64[] = {0.25, -1e10};
  uint16_t f16[] = {0x3c00, 0xc000, 0x0001, 0x7bff,
                    0x7c00}; // 1, -2, 2^-24, 65504, inf
  uint16_t bf16[] = {0x3f80, 0xc0a0, 0x0000, 0x8000,
                     0x7f80}; // 1, -5, 0, -0, inf
  std::vector<TensorData> ts = {{"i8", DType::I8, {2}, raw(i8, 2)},
                                {"u8", DType::U8, {2}, raw(u8, 2)},
                                {"i16", DType::I16, {2}, raw(i16, 4)},
                                {"i32", DType::I32, {1, 2}, raw(i32, 8)},
                                {"i64", DType::I64, {2}, raw(i64, 16)},
                                {"f64", DType::F64, {2}, raw(f64, 16)},
                                {"f16", DType::F16, {5}, raw(f16, 10)},
                                {"bf16", DType::BF16, {5}, raw(bf16, 10)},
                                {"empty", DType::F32, {0, 4}, {}}};
  ASSERT_FALSE(bool(writeSafetensors(path, ts)));
  auto ckpt = Checkpoint::openTensorFile(path);
  ASSERT_TRUE(bool(ckpt)) << llvm::toString(ckpt.takeError());
  const Checkpoint &c = **ckpt;
  EXPECT_EQ(c.format(), "safetensors");
  EXPECT_EQ(c.tensors().size(), 9u);
  auto read = [&](const char *name) { return llvm::cantFail(c.readF32(name)); };
  EXPECT_EQ(read("i8"), (std::vector<float>{-128, 5}));
  EXPECT_EQ(read("u8"), (std::vector<float>{255, 0}));
  EXPECT_EQ(read("i16"), (std::vector<float>{-300, 300}));
  EXPECT_EQ(read("i32"), (std::vector<float>{-70000, 123456}));
  EXPECT_EQ(read("i64"), (std::vector<float>{-5, 1099511627776.0f}));
  EXPECT_EQ(read("f64"), (std::vector<float>{0.25f, -1e10f}));
  float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(read("f16"),
            (std::vector<float>{1, -2, 5.9604645e-08f, 65504, inf}));
  EXPECT_EQ(read("bf16"), (std::vector<float>{1, -5, 0, -0.0f, inf}));
  EXPECT_TRUE(read("empty").empty());
  EXPECT_EQ(c.find("i32")->shape, (std::vector<int64_t>{1, 2}));
  std::string msg = errorOf(c.readF32("nope"));
  EXPECT_NE(msg.find("no tensor named 'nope'"), std::string::npos) << msg;
}

TEST(Safetensors, HalfConversionsRoundTrip) {
  for (float f : {0.0f, 1.0f, -2.5f, 0.02f, 65504.0f, 6.1035156e-05f,
                  5.9604645e-08f, -1e-3f}) {
    EXPECT_EQ(halfToFloat(floatToHalf(f)),
              halfToFloat(floatToHalf(halfToFloat(floatToHalf(f)))));
    EXPECT_NEAR(halfToFloat(floatToHalf(f)), f, std::fabs(f) * 1e-3 + 6e-8);
    EXPECT_NEAR(bfloat16ToFloat(floatToBFloat16(f)), f, std::fabs(f) * 8e-3);
  }
  EXPECT_EQ(floatToHalf(1e6f), 0x7c00);
  EXPECT_EQ(floatToHalf(-1e6f), 0xfc00);
  EXPECT_EQ(floatToBFloat16(1.0f), 0x3f80);
  // Round to nearest even: 1 + 2^-8 is halfway between two bf16 values.
  EXPECT_EQ(floatToBFloat16(1.00390625f), 0x3f80);
  EXPECT_EQ(floatToBFloat16(1.01171875f), 0x3f82);
  EXPECT_TRUE(std::isnan(halfToFloat(floatToHalf(NAN))));
  EXPECT_TRUE(std::isnan(bfloat16ToFloat(floatToBFloat16(NAN))));
}

//===----------------------------------------------------------------------===//
// Malformed files
//===----------------------------------------------------------------------===//

struct BadHeader {
  const char *name;
  std::string json;
  size_t dataBytes;
  const char *message;
};

class SafetensorsErrors : public ::testing::TestWithParam<BadHeader> {};

TEST_P(SafetensorsErrors, NamesFileAndProblem) {
  TempDir dir;
  std::string path = dir.path("bad.safetensors");
  writeFile(path, safetensorsBytes(GetParam().json, GetParam().dataBytes));
  std::string msg = errorOf(Checkpoint::openTensorFile(path));
  EXPECT_NE(msg.find(path + ": "), std::string::npos) << msg;
  EXPECT_NE(msg.find(GetParam().message), std::string::npos) << msg;
  // The in-memory parser used by the fuzzer agrees.
  std::string bytes = safetensorsBytes(GetParam().json, GetParam().dataBytes);
  std::string msg2 = errorOf(parseSafetensorsBuffer("mem", bytes));
  EXPECT_NE(msg2.find(GetParam().message), std::string::npos) << msg2;
}

std::string entry(const char *name, const char *dtype, const char *shape,
                  uint64_t b, uint64_t e) {
  return llvm::formatv(
             R"("{0}": {{"dtype": "{1}", "shape": {2}, "data_offsets": [{3}, {4}]})",
             name, dtype, shape, b, e)
      .str();
}

std::string obj(std::initializer_list<std::string> entries) {
  std::string s = "{";
  for (const std::string &e : entries)
    s += (s.size() > 1 ? ", " : "") + e;
  return s + "}";
}

INSTANTIATE_TEST_SUITE_P(
    All, SafetensorsErrors,
    ::testing::Values(
        BadHeader{"MalformedJSON", "{\"a\": {\"dtype\": ", 0,
                  "malformed header JSON"},
        BadHeader{"NotAnObject", "[1, 2, 3]", 0,
                  "the JSON header must be an object"},
        BadHeader{"UnknownDType", obj({entry("a", "F8_E4M3", "[4]", 0, 4)}), 4,
                  "tensor 'a': unknown dtype 'F8_E4M3'"},
        BadHeader{
            "SpanMismatch", obj({entry("a", "F32", "[2, 2]", 0, 12)}), 12,
            "shape [2, 2] of F32 needs 16 bytes but data_offsets span 12"},
        BadHeader{"OutOfRange", obj({entry("a", "F32", "[4]", 0, 16)}), 8,
                  "data_offsets [0, 16] are out of range: the data section "
                  "has 8 bytes"},
        BadHeader{"Reversed", obj({entry("a", "F32", "[0]", 8, 4)}), 8,
                  "are reversed"},
        BadHeader{"Overlap",
                  obj({entry("a", "F32", "[2]", 0, 8),
                       entry("b", "F32", "[2]", 4, 12)}),
                  12, "tensors 'a' and 'b' overlap"},
        BadHeader{"Hole",
                  obj({entry("a", "F32", "[1]", 0, 4),
                       entry("b", "F32", "[1]", 8, 12)}),
                  12, "bytes [4, 8) of the data section belong to no tensor"},
        BadHeader{"Trailing", obj({entry("a", "F32", "[1]", 0, 4)}), 10,
                  "bytes [4, 10) at the end of the data section belong to no "
                  "tensor"},
        BadHeader{"Duplicate",
                  obj({entry("a", "F32", "[1]", 0, 4),
                       entry("a", "F32", "[1]", 4, 8)}),
                  8, "duplicate tensor name 'a'"},
        BadHeader{"MissingDType",
                  R"({"a": {"shape": [1], "data_offsets": [0, 4]}})", 4,
                  "tensor 'a': missing string 'dtype'"},
        BadHeader{
            "BadShape",
            R"({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})",
            4, "shape entries must be non-negative integers"},
        BadHeader{"ShapeOverflow",
                  obj({entry("a", "F32", "[4294967296, 4294967296]", 0, 4)}), 4,
                  "shape overflows"},
        BadHeader{
            "BadOffsets",
            R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0]}})", 4,
            "'data_offsets' must be two non-negative integers"},
        BadHeader{"EntryNotObject", R"({"a": 3})", 0,
                  "tensor 'a': header entry must be an object"},
        BadHeader{"BadMetadata", R"({"__metadata__": {"format": 1}})", 0,
                  "'__metadata__' value of 'format' must be a string"},
        BadHeader{"EmptyName", obj({entry("", "F32", "[1]", 0, 4)}), 4,
                  "empty tensor name"}),
    [](const ::testing::TestParamInfo<BadHeader> &info) {
      return std::string(info.param.name);
    });

TEST(Safetensors, TruncatedFiles) {
  TempDir dir;
  std::string path = dir.path("t.safetensors");
  writeFile(path, llvm::StringRef("\x10\0\0", 3));
  std::string msg = errorOf(Checkpoint::openTensorFile(path));
  EXPECT_NE(msg.find(path + ": truncated safetensors file: 3 bytes"),
            std::string::npos)
      << msg;
  // Header length beyond the end of the file.
  writeFile(path, le64(1000) + "{}");
  msg = errorOf(Checkpoint::openTensorFile(path));
  EXPECT_NE(msg.find("header length 1000 goes beyond the end of the file (10 "
                     "bytes)"),
            std::string::npos)
      << msg;
  // Data cut short: the last tensor runs past the end.
  std::string full =
      safetensorsBytes(obj({entry("a", "F32", "[4]", 0, 16)}), 16);
  writeFile(path, full.substr(0, full.size() - 5));
  msg = errorOf(Checkpoint::openTensorFile(path));
  EXPECT_NE(msg.find("are out of range"), std::string::npos) << msg;
  // Huge declared header, file large enough to pass the first check.
  msg =
      errorOf(parseSafetensorsHeaderSize("mem", le64(200u << 20), 1ull << 40));
  EXPECT_NE(msg.find("exceeds the 100 MiB limit"), std::string::npos) << msg;
  msg = errorOf(Checkpoint::openTensorFile(dir.path("absent.safetensors")));
  EXPECT_NE(msg.find("absent.safetensors: cannot open"), std::string::npos)
      << msg;
}

TEST(Safetensors, FileShrinksAfterOpen) {
  TempDir dir;
  std::string path = dir.path("t.safetensors");
  ASSERT_FALSE(bool(writeSafetensors(
      path, {{"a", DType::F32, {4}, f32Bytes({1, 2, 3, 4})}})));
  auto ckpt = Checkpoint::openTensorFile(path);
  ASSERT_TRUE(bool(ckpt));
  std::string bytes = readFile(path);
  writeFile(path, bytes.substr(0, bytes.size() - 4));
  std::string msg = errorOf((*ckpt)->readF32("a"));
  EXPECT_NE(msg.find("lies beyond the end of the file"), std::string::npos)
      << msg;
}

//===----------------------------------------------------------------------===//
// Model-level checks against config.json
//===----------------------------------------------------------------------===//

TEST(Safetensors, MissingTensor) {
  TempDir dir;
  ModelConfig cfg = tinyConfig();
  writeConfig(dir, cfg);
  std::vector<TensorData> ts = modelTensors(cfg);
  ts.erase(ts.begin() + 3); // model.layers.0.self_attn.k_proj.weight
  ts.pop_back();            // model.norm.weight
  ASSERT_FALSE(bool(writeSafetensors(dir.path("model.safetensors"), ts)));
  std::string msg = errorOf(Checkpoint::open(dir.path()));
  EXPECT_NE(msg.find("model.safetensors: missing 2 tensor(s) required by "
                     "config.json: 'model.layers.0.self_attn.k_proj.weight', "
                     "'model.norm.weight'"),
            std::string::npos)
      << msg;
}

TEST(Safetensors, UntiedNeedsLMHead) {
  TempDir dir;
  ModelConfig cfg = tinyConfig(/*tied=*/false);
  writeConfig(dir, cfg);
  std::vector<TensorData> ts = modelTensors(cfg);
  ASSERT_EQ(ts.back().name, "lm_head.weight");
  ts.pop_back();
  ASSERT_FALSE(bool(writeSafetensors(dir.path("model.safetensors"), ts)));
  std::string msg = errorOf(Checkpoint::open(dir.path()));
  EXPECT_NE(msg.find("'lm_head.weight'"), std::string::npos) << msg;
}

TEST(Safetensors, ShapeMismatchWithConfig) {
  TempDir dir;
  ModelConfig cfg = tinyConfig();
  writeConfig(dir, cfg);
  std::vector<TensorData> ts = modelTensors(cfg);
  for (TensorData &t : ts)
    if (t.name == "model.layers.1.self_attn.v_proj.weight")
      t.shape = {4, 32}; // same bytes, wrong shape (config: [8, 16])
  ASSERT_FALSE(bool(writeSafetensors(dir.path("model.safetensors"), ts)));
  std::string msg = errorOf(Checkpoint::open(dir.path()));
  EXPECT_NE(msg.find("tensor 'model.layers.1.self_attn.v_proj.weight' has "
                     "shape [4, 32] but config.json implies [8, 16]"),
            std::string::npos)
      << msg;
}

TEST(Safetensors, IntegerWeightRejected) {
  TempDir dir;
  ModelConfig cfg = tinyConfig();
  writeConfig(dir, cfg);
  std::vector<TensorData> ts = modelTensors(cfg);
  ts.back().dtype = DType::I32; // model.norm.weight, same byte size
  ASSERT_FALSE(bool(writeSafetensors(dir.path("model.safetensors"), ts)));
  std::string msg = errorOf(Checkpoint::open(dir.path()));
  EXPECT_NE(msg.find("tensor 'model.norm.weight' has dtype I32"),
            std::string::npos)
      << msg;
}

TEST(Safetensors, TiedModelMayStoreLMHead) {
  TempDir dir;
  ModelConfig cfg = tinyConfig(/*tied=*/true);
  writeConfig(dir, cfg);
  std::vector<TensorData> ts = modelTensors(cfg);
  ts.push_back({"lm_head.weight",
                DType::F32,
                {32, 16},
                f32Bytes(std::vector<float>(32 * 16, 0.5f))});
  ts.push_back({"model.layers.0.self_attn.rotary_emb.inv_freq",
                DType::F32,
                {2},
                f32Bytes({1, 2})});
  ASSERT_FALSE(bool(writeSafetensors(dir.path("model.safetensors"), ts)));
  auto ckpt = Checkpoint::open(dir.path());
  ASSERT_TRUE(bool(ckpt)) << llvm::toString(ckpt.takeError());
  size_t n = expectedTensorNames(cfg).size();
  ASSERT_EQ((*ckpt)->tensors().size(), n + 2);
  EXPECT_EQ((*ckpt)->tensors()[n].name, "lm_head.weight");
  EXPECT_EQ((*ckpt)->tensors()[n + 1].name,
            "model.layers.0.self_attn.rotary_emb.inv_freq");
  // A tied lm_head of the wrong shape is still an error.
  ts[ts.size() - 2].shape = {16, 32};
  ASSERT_FALSE(bool(writeSafetensors(dir.path("model.safetensors"), ts)));
  std::string msg = errorOf(Checkpoint::open(dir.path()));
  EXPECT_NE(msg.find("'lm_head.weight' has shape [16, 32]"), std::string::npos)
      << msg;
}

TEST(Safetensors, NoConfigBeside) {
  TempDir dir;
  ASSERT_FALSE(bool(
      writeSafetensors(dir.path("w.safetensors"), modelTensors(tinyConfig()))));
  std::string msg = errorOf(Checkpoint::open(dir.path("w.safetensors")));
  EXPECT_NE(msg.find("no config.json beside it"), std::string::npos) << msg;
}

//===----------------------------------------------------------------------===//
// Sharded checkpoints
//===----------------------------------------------------------------------===//

/// Writes `cfg` as two shards plus an index; returns the index text.
std::string writeSharded(const TempDir &dir, const ModelConfig &cfg) {
  writeConfig(dir, cfg);
  std::vector<TensorData> ts = modelTensors(cfg);
  std::vector<TensorData> first(ts.begin(), ts.begin() + ts.size() / 2);
  std::vector<TensorData> second(ts.begin() + ts.size() / 2, ts.end());
  EXPECT_FALSE(bool(
      writeSafetensors(dir.path("model-00001-of-00002.safetensors"), first)));
  EXPECT_FALSE(bool(
      writeSafetensors(dir.path("model-00002-of-00002.safetensors"), second)));
  llvm::json::Object map;
  for (const TensorData &t : first)
    map[t.name] = "model-00001-of-00002.safetensors";
  for (const TensorData &t : second)
    map[t.name] = "model-00002-of-00002.safetensors";
  std::string text;
  llvm::raw_string_ostream os(text);
  os << llvm::json::Value(
      llvm::json::Object{{"metadata", llvm::json::Object{{"total_size", 1234}}},
                         {"weight_map", std::move(map)}});
  os.flush();
  writeFile(dir.path("model.safetensors.index.json"), text);
  return text;
}

TEST(Safetensors, ShardedModel) {
  TempDir dir;
  ModelConfig cfg = tinyConfig(/*tied=*/false);
  writeSharded(dir, cfg);
  for (std::string path :
       {dir.path(), dir.path("model.safetensors.index.json")}) {
    auto ckpt = Checkpoint::open(path);
    ASSERT_TRUE(bool(ckpt)) << llvm::toString(ckpt.takeError());
    EXPECT_EQ((*ckpt)->format(), "hf-safetensors");
    EXPECT_EQ((*ckpt)->tensors().size(), expectedTensorNames(cfg).size());
    EXPECT_NE((*ckpt)->find("lm_head.weight")->file.find("00002-of"),
              std::string::npos);
    expectModelReadsBack(**ckpt, cfg);
  }
}

TEST(Safetensors, ShardErrors) {
  TempDir dir;
  ModelConfig cfg = tinyConfig();
  std::string index = writeSharded(dir, cfg);
  std::string indexPath = dir.path("model.safetensors.index.json");
  auto expectError = [&](const std::string &text, const char *message) {
    writeFile(indexPath, text);
    std::string msg = errorOf(Checkpoint::open(dir.path()));
    EXPECT_NE(msg.find("model.safetensors.index.json: "), std::string::npos)
        << msg;
    EXPECT_NE(msg.find(message), std::string::npos) << msg;
  };
  auto replaced = [&](llvm::StringRef from, llvm::StringRef to) {
    std::string s = index;
    size_t pos = s.find(from.str());
    EXPECT_NE(pos, std::string::npos);
    s.replace(pos, from.size(), to.str());
    return s;
  };
  expectError("{\"weight_map\": ", "malformed JSON");
  expectError("{\"metadata\": {}}", "missing object 'weight_map'");
  expectError("{\"weight_map\": {}}", "'weight_map' is empty");
  expectError(R"({"weight_map": {"a": 1}})", "must be a file name string");
  expectError(R"({"weight_map": {"a": "../x.safetensors"}})",
              "is not a plain file name");
  expectError(replaced("model-00002-of-00002", "model-00003-of-00003"),
              "shard 'model-00003-of-00003.safetensors'");
  // A tensor stored in shard 1 but mapped to shard 2.
  expectError(replaced("\"model.embed_tokens.weight\":\"model-00001",
                       "\"model.embed_tokens.weight\":\"model-00002"),
              "tensor 'model.embed_tokens.weight' is stored in shard "
              "'model-00001-of-00002.safetensors' but the index maps it to "
              "'model-00002-of-00002.safetensors'");
  // A tensor the index does not know.
  expectError(replaced("\"model.embed_tokens.weight\":\"model-00001-of-00002."
                       "safetensors\",",
                       ""),
              "the index maps it to no shard");
  // The index names a tensor its shard does not hold.
  expectError(
      replaced("\"model.norm.weight\"",
               "\"model.extra.weight\":"
               "\"model-00002-of-00002.safetensors\",\"model.norm.weight\""),
      "the index maps tensor 'model.extra.weight' to shard "
      "'model-00002-of-00002.safetensors', which does not hold it");
}

TEST(Safetensors, DuplicateKeyScanner) {
  EXPECT_EQ(findDuplicateTopLevelKey(R"({"a": {"a": 1}, "b": [{"b": 2}]})"),
            std::nullopt);
  EXPECT_EQ(findDuplicateTopLevelKey(R"({"a\"b": 1, "c": "a\"b", "a\"b": 2})"),
            std::optional<std::string>("a\"b"));
  EXPECT_EQ(findDuplicateTopLevelKey(R"({"\u0061": 1, "a": 2})"),
            std::optional<std::string>("a"));
}

} // namespace
