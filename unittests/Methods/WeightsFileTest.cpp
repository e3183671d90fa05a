//===- WeightsFileTest.cpp - packed quantized tensors round trip --*- C++ -*-===//

#include "TestUtils.h"

#include "mixq/Methods/WeightsFile.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

using namespace mixq;
using namespace mixq::methods;
using mixq::test::randomMatrix;
using mixq::test::unwrap;

namespace {

class WeightsFileTest : public ::testing::Test {
protected:
  void SetUp() override {
    ASSERT_FALSE(llvm::sys::fs::createUniqueDirectory("mixq-weights", dir));
    path = (dir + "/weights.safetensors").str();
  }
  void TearDown() override { llvm::sys::fs::remove_directories(dir); }

  llvm::SmallString<128> dir;
  std::string path;
};

QuantSpec spec(QuantFormat f, bool dq = false, int64_t tr = 1,
               int64_t tc = 64) {
  QuantSpec s;
  s.format = f;
  s.doubleQuant = dq;
  s.tileRows = tr;
  s.tileCols = tc;
  return s;
}

void expectSame(const kernels::QuantizedTensor &a,
                const kernels::QuantizedTensor &b) {
  EXPECT_TRUE(a.spec == b.spec);
  EXPECT_EQ(a.rows, b.rows);
  EXPECT_EQ(a.cols, b.cols);
  EXPECT_EQ(a.rowBytes, b.rowBytes);
  EXPECT_EQ(a.codes, b.codes);
  EXPECT_EQ(a.scales, b.scales);
  EXPECT_EQ(a.zeros, b.zeros);
  EXPECT_EQ(a.scaleCodes, b.scaleCodes);
  EXPECT_EQ(a.scaleAbsmax, b.scaleAbsmax);
  EXPECT_EQ(a.scaleOffset, b.scaleOffset);
}

} // namespace

/// Every format survives write + loadQuantizedTensor bit for bit, including
/// partial blocks (cols = 172) and double quantization across 256 blocks.
TEST_F(WeightsFileTest, RoundTripsEveryFormat) {
  const int64_t rows = 96, cols = 172;
  std::vector<float> w = randomMatrix(rows * cols, 1);
  std::vector<std::pair<std::string, QuantSpec>> cases = {
      {"nf4dq.weight", spec(QuantFormat::NF4, true)},
      {"nf4.weight", spec(QuantFormat::NF4)},
      {"fp4.weight", spec(QuantFormat::FP4, true)},
      {"int8.weight", spec(QuantFormat::Int8)},
      {"int4.weight", spec(QuantFormat::Int4, false, 8, 4)},
      {"int3.weight", spec(QuantFormat::Int3, false, 4, 43)},
      {"int2.weight", spec(QuantFormat::Int2, false, 1, 86)},
      {"bf16.weight", spec(QuantFormat::BF16)},
      {"f32.weight", spec(QuantFormat::F32)}};
  WeightsFileWriter writer = unwrap(WeightsFileWriter::openOrCreate(path));
  std::vector<kernels::QuantizedTensor> qs;
  for (auto &[name, s] : cases) {
    qs.push_back(unwrap(kernels::quantize(w.data(), rows, cols, s)));
    writer.putQuantized(name, qs.back());
  }
  writer.putF32("plain.weight", {2, 2}, {1, 2, 3, 4});
  ASSERT_FALSE(bool(writer.write()));

  auto reader = unwrap(QuantizedWeightsReader::open(path));
  ASSERT_TRUE(reader);
  EXPECT_EQ(reader->quantizedNames().size(), cases.size());
  EXPECT_FALSE(reader->hasQuantized("plain.weight"));
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(cases[i].first);
    expectSame(unwrap(loadQuantizedTensor(path, cases[i].first)), qs[i]);
  }
  // Plain tensors stay readable through the Checkpoint interface.
  auto plain = unwrap(reader->file().readF32("plain.weight"));
  EXPECT_EQ(plain, (std::vector<float>{1, 2, 3, 4}));
  // The packed arrays follow the documented names and dtypes.
  const TensorInfo *codes = reader->file().find("nf4dq.weight.qcodes");
  ASSERT_TRUE(codes);
  EXPECT_EQ(codes->dtype, DType::U8);
  EXPECT_EQ(codes->shape, (std::vector<int64_t>{rows, 86}));
  EXPECT_TRUE(reader->file().find("nf4dq.weight.qscale_codes"));
  EXPECT_FALSE(reader->file().find("nf4dq.weight.qscales"));
  EXPECT_TRUE(reader->file().find("int4.weight.qzeros"));
}

/// Reopening keeps the other tensors; re-quantizing a tensor in another
/// format drops the arrays the old format had.
TEST_F(WeightsFileTest, UpdatesKeepOthersAndReplaceFormats) {
  std::vector<float> w = randomMatrix(64 * 64, 2);
  {
    WeightsFileWriter writer = unwrap(WeightsFileWriter::openOrCreate(path));
    writer.putQuantized("a.weight", unwrap(kernels::quantize(
                                        w.data(), 64, 64,
                                        spec(QuantFormat::NF4, true))));
    writer.putF32("b", {1}, {7});
    ASSERT_FALSE(bool(writer.write()));
  }
  {
    WeightsFileWriter writer = unwrap(WeightsFileWriter::openOrCreate(path));
    EXPECT_TRUE(writer.contains("b"));
    writer.putQuantized("a.weight",
                        unwrap(kernels::quantize(w.data(), 64, 64,
                                                 spec(QuantFormat::Int8))));
    ASSERT_FALSE(bool(writer.write()));
  }
  auto reader = unwrap(QuantizedWeightsReader::open(path));
  EXPECT_FALSE(reader->file().find("a.weight.qscale_codes"));
  EXPECT_TRUE(reader->file().find("a.weight.qscales"));
  EXPECT_TRUE(reader->file().find("b"));
  EXPECT_EQ(unwrap(reader->load("a.weight")).spec.format, QuantFormat::Int8);
}

/// Errors name the file and the tensor.
TEST_F(WeightsFileTest, ErrorsNameFileAndTensor) {
  std::vector<float> w = randomMatrix(32 * 64, 3);
  WeightsFileWriter writer = unwrap(WeightsFileWriter::openOrCreate(path));
  writer.putQuantized("a.weight", unwrap(kernels::quantize(
                                      w.data(), 32, 64,
                                      spec(QuantFormat::NF4))));
  // A scales array of the wrong size.
  writer.putF32("a.weight.qscales", {3}, {1, 2, 3});
  ASSERT_FALSE(bool(writer.write()));

  auto missing = loadQuantizedTensor(path, "nope.weight");
  ASSERT_FALSE(bool(missing));
  std::string msg = llvm::toString(missing.takeError());
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("no quantized tensor 'nope.weight'"), std::string::npos)
      << msg;

  auto bad = loadQuantizedTensor(path, "a.weight");
  ASSERT_FALSE(bool(bad));
  msg = llvm::toString(bad.takeError());
  EXPECT_NE(msg.find("quantized tensor 'a.weight'"), std::string::npos)
      << msg;

  auto nofile = loadQuantizedTensor(path + ".absent", "a.weight");
  ASSERT_FALSE(bool(nofile));
  msg = llvm::toString(nofile.takeError());
  EXPECT_NE(msg.find(".absent"), std::string::npos) << msg;
}
