//===- QuantTest.cpp - Quantization format tests -------------------*- C++ -*-===//

#include "mixq/Kernels/Quant.h"

#include "gtest/gtest.h"

#include <cfloat>
#include <cmath>
#include <random>

using namespace mixq;
using namespace mixq::kernels;

namespace {

QuantSpec makeSpec(QuantFormat f, int64_t block = 64, bool dq = false,
                   int64_t tr = 1, int64_t tc = 64) {
  QuantSpec s;
  s.format = f;
  s.block = block;
  s.doubleQuant = dq;
  s.tileRows = tr;
  s.tileCols = tc;
  return s;
}

std::vector<float> randomNormal(int64_t n, uint32_t seed, float sigma = 1.0f) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> d(0.0f, sigma);
  std::vector<float> v(n);
  for (float &x : v)
    x = d(gen);
  return v;
}

QuantizedTensor mustQuantize(const std::vector<float> &w, int64_t rows,
                             int64_t cols, const QuantSpec &spec) {
  llvm::Expected<QuantizedTensor> q = quantize(w.data(), rows, cols, spec);
  if (!q) {
    ADD_FAILURE() << llvm::toString(q.takeError());
    return QuantizedTensor();
  }
  if (llvm::Error e = q->verify())
    ADD_FAILURE() << llvm::toString(std::move(e));
  return std::move(*q);
}

std::string errorOf(const std::vector<float> &w, int64_t rows, int64_t cols,
                    const QuantSpec &spec) {
  llvm::Expected<QuantizedTensor> q = quantize(w.data(), rows, cols, spec);
  if (q)
    return "";
  return llvm::toString(q.takeError());
}

} // namespace

//===----------------------------------------------------------------------===//
// Codebooks
//===----------------------------------------------------------------------===//

TEST(Codebook, NF4ValuesAndThresholds) {
  EXPECT_EQ(kNF4Codebook[0], -1.0f);
  EXPECT_EQ(kNF4Codebook[7], 0.0f);
  EXPECT_EQ(kNF4Codebook[15], 1.0f);
  EXPECT_EQ(kNF4Codebook[8], 0.07958029955625534f);
  for (int i = 0; i < 16; ++i)
    EXPECT_EQ(quantizeNF4Value(kNF4Codebook[i]), i) << i;
  // bitsandbytes' thresholds are the f64 midpoints of the published f64
  // values, written as f32 literals (decimal -> f32 directly, so within one
  // ulp of the f32 midpoint), with x > t going up.
  const double published[16] = {
      -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
      -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
      0.07958029955625534, 0.16093020141124725, 0.24611230194568634,
      0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
      0.7229568362236023, 1.0};
  for (int i = 0; i < 16; ++i)
    EXPECT_EQ(kNF4Codebook[i], static_cast<float>(published[i])) << i;
  for (int i = 0; i < 15; ++i) {
    float mid = static_cast<float>((published[i] + published[i + 1]) / 2.0);
    float below = std::nextafter(std::nextafter(mid, -2.0f), -2.0f);
    float above = std::nextafter(std::nextafter(mid, 2.0f), 2.0f);
    EXPECT_EQ(quantizeNF4Value(below), i) << i;
    EXPECT_EQ(quantizeNF4Value(above), i + 1) << i;
  }
  // A value equal to a threshold stays below it (dQuantizeNF4's x > t).
  EXPECT_EQ(quantizeNF4Value(-0.8480964004993439f), 0);
  EXPECT_EQ(quantizeNF4Value(std::nextafter(-0.8480964004993439f, 0.0f)), 1);
  EXPECT_EQ(quantizeNF4Value(0.8614784181118011f), 14);
  EXPECT_EQ(quantizeNF4Value(-5.0f), 0);
  EXPECT_EQ(quantizeNF4Value(5.0f), 15);
}

TEST(Codebook, FP4ValuesAndThresholds) {
  for (int i = 0; i < 16; ++i) {
    // -0.0 has no sign in dQuantizeFP4 (x < 0 is false).
    EXPECT_EQ(quantizeFP4Value(kFP4Codebook[i]), i == 8 ? 0 : i) << i;
    if (i >= 8) {
      EXPECT_EQ(kFP4Codebook[i], -kFP4Codebook[i - 8]);
    }
  }
  // Magnitudes 0, 1/192, 1/6, 1/4, 1/3, 1/2, 2/3, 1 (e2m1 with bias 3 / 12).
  EXPECT_FLOAT_EQ(kFP4Codebook[1] * 192.0f, 1.0f);
  EXPECT_FLOAT_EQ(kFP4Codebook[2] * 12.0f, 8.0f);
  EXPECT_EQ(quantizeFP4Value(0.0026f), 0b0000);
  EXPECT_EQ(quantizeFP4Value(0.0027f), 0b0001);
  EXPECT_EQ(quantizeFP4Value(-0.9f), 0b1011);
  EXPECT_EQ(quantizeFP4Value(0.45f), 0b0101);
}

TEST(Codebook, DynamicMap8) {
  const std::array<float, 256> &map = dynamicMap8();
  for (int i = 1; i < 256; ++i)
    EXPECT_LE(map[i - 1], map[i]);
  EXPECT_EQ(map[255], 1.0f);
  EXPECT_EQ(map[127], 0.0f);
  // 127 negative and 127 positive values below 1 mirror each other.
  for (int i = 0; i < 127; ++i)
    EXPECT_EQ(map[i], -map[254 - i]) << i;
  EXPECT_FLOAT_EQ(map[254], 0.99296875f);
  EXPECT_FLOAT_EQ(map[128], 0.55e-6f);
  EXPECT_EQ(quantizeDynamic8Value(0.0f), 127);
  EXPECT_EQ(quantizeDynamic8Value(1.0f), 255);
  EXPECT_EQ(quantizeDynamic8Value(-1.0f), 0);
}

TEST(Codebook, BF16RoundsToNearestEven) {
  EXPECT_EQ(floatToBF16(1.0f), 0x3F80);
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1.0).
  EXPECT_EQ(floatToBF16(1.0f + 0x1p-8f), 0x3F80);
  EXPECT_EQ(floatToBF16(1.0f + 0x1p-8f + 0x1p-20f), 0x3F81);
  EXPECT_EQ(floatToBF16(1.0f + 3 * 0x1p-8f), 0x3F82);
  EXPECT_EQ(bf16ToFloat(0xC000), -2.0f);
}

//===----------------------------------------------------------------------===//
// Packing (golden bytes)
//===----------------------------------------------------------------------===//

TEST(Packing, NF4HighNibbleFirst) {
  std::vector<float> w = {1.0f, -1.0f, 0.0f, 0.5f};
  QuantizedTensor q = mustQuantize(w, 1, 4, makeSpec(QuantFormat::NF4));
  ASSERT_EQ(q.codes.size(), 2u);
  EXPECT_EQ(q.codes[0], 0xF0); // 15, 0
  EXPECT_EQ(q.codes[1], 0x7C); // 7 (0.0), 12 (0.4407)
  EXPECT_EQ(q.scales[0], 1.0f);
}

TEST(Packing, Int3BitStream) {
  std::vector<float> w = {0, 1, 2, 3, 4, 5, 6, 7};
  QuantizedTensor q = mustQuantize(w, 1, 8, makeSpec(QuantFormat::Int3, 64,
                                                      false, 1, 8));
  ASSERT_EQ(q.codes.size(), 3u);
  EXPECT_EQ(q.codes[0], 0x05);
  EXPECT_EQ(q.codes[1], 0x39);
  EXPECT_EQ(q.codes[2], 0x77);
  for (int c = 0; c < 8; ++c)
    EXPECT_EQ(q.codeAt(0, c), c);
}

TEST(Packing, Int2AndInt8) {
  std::vector<float> w = {0, 1, 2, 3, 3, 2, 1, 0};
  QuantizedTensor q =
      mustQuantize(w, 1, 8, makeSpec(QuantFormat::Int2, 64, false, 1, 8));
  ASSERT_EQ(q.codes.size(), 2u);
  EXPECT_EQ(q.codes[0], 0x1B); // 00 01 10 11
  EXPECT_EQ(q.codes[1], 0xE4); // 11 10 01 00
  std::vector<float> v = {-1.0f, 0.5f, 1.0f};
  QuantizedTensor q8 = mustQuantize(v, 1, 3, makeSpec(QuantFormat::Int8));
  EXPECT_EQ(q8.codeAt(0, 0), -127);
  EXPECT_EQ(q8.codeAt(0, 1), 64); // round(63.5) to even
  EXPECT_EQ(q8.codeAt(0, 2), 127);
}

//===----------------------------------------------------------------------===//
// Round trips
//===----------------------------------------------------------------------===//

namespace {

/// The 4-bit code chosen for every element is the nearest codebook entry.
void expectNearestCodes(const QuantizedTensor &q, const std::vector<float> &w,
                        const std::array<float, 16> &book) {
  for (int64_t r = 0; r < q.rows; ++r)
    for (int64_t c = 0; c < q.cols; ++c) {
      float amax = q.scales[r * q.blocksPerRow() + c / q.spec.block];
      float x = w[r * q.cols + c] * (1.0f / amax);
      float chosen = std::fabs(x - book[q.codeAt(r, c)]);
      for (float v : book)
        ASSERT_LE(chosen, std::fabs(x - v) + 1e-6f) << r << "," << c;
    }
}

} // namespace

TEST(RoundTrip, NF4AndFP4ChooseNearestCode) {
  const int64_t rows = 5, cols = 200; // partial last block
  std::vector<float> w = randomNormal(rows * cols, 1);
  QuantizedTensor nf4 = mustQuantize(w, rows, cols, makeSpec(QuantFormat::NF4));
  EXPECT_EQ(nf4.blocksPerRow(), 4);
  expectNearestCodes(nf4, w, kNF4Codebook);
  QuantizedTensor fp4 = mustQuantize(w, rows, cols, makeSpec(QuantFormat::FP4));
  expectNearestCodes(fp4, w, kFP4Codebook);
  std::vector<float> d(rows * cols);
  dequantize(nf4, d.data());
  for (int64_t i = 0; i < rows * cols; ++i) {
    int64_t r = i / cols, c = i % cols;
    float amax = nf4.scales[r * 4 + c / 64];
    EXPECT_EQ(d[i], kNF4Codebook[nf4.codeAt(r, c)] * amax);
    // Half the widest gap of the codebook (-1 .. -0.696).
    EXPECT_LE(std::fabs(d[i] - w[i]), 0.1521f * amax + 1e-6f);
  }
}

TEST(RoundTrip, Int8ErrorIsHalfAStep) {
  const int64_t rows = 3, cols = 130;
  std::vector<float> w = randomNormal(rows * cols, 2, 0.02f);
  QuantizedTensor q = mustQuantize(w, rows, cols, makeSpec(QuantFormat::Int8));
  std::vector<float> d(rows * cols);
  dequantize(q, d.data());
  for (int64_t i = 0; i < rows * cols; ++i) {
    float amax = q.scales[(i / cols) * 3 + (i % cols) / 64];
    EXPECT_LE(std::fabs(d[i] - w[i]), amax / 127.0f * 0.5f * 1.0001f) << i;
  }
}

TEST(RoundTrip, IntTilesErrorIsHalfAStep) {
  const int64_t rows = 12, cols = 100;
  std::vector<float> w = randomNormal(rows * cols, 3);
  for (QuantFormat f : {QuantFormat::Int4, QuantFormat::Int3, QuantFormat::Int2})
    for (auto tile : {std::pair<int, int>{1, 64}, {8, 8}, {4, 32}, {5, 7}}) {
      QuantSpec spec = makeSpec(f, 64, false, tile.first, tile.second);
      QuantizedTensor q = mustQuantize(w, rows, cols, spec);
      std::vector<float> d(rows * cols);
      dequantize(q, d.data());
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) {
          int64_t t = (r / tile.first) * q.tileColCount() + c / tile.second;
          float alpha = q.scales[t];
          ASSERT_LE(std::fabs(d[r * cols + c] - w[r * cols + c]),
                    alpha * 0.5f * 1.001f + 1e-6f)
              << formatLabel(f) << " " << r << "," << c;
          ASSERT_GE(d[r * cols + c], q.zeros[t] - 1e-6f);
        }
    }
}

TEST(RoundTrip, BF16AndF32) {
  std::vector<float> w = randomNormal(64, 4);
  QuantizedTensor f = mustQuantize(w, 8, 8, makeSpec(QuantFormat::F32));
  QuantizedTensor b = mustQuantize(w, 8, 8, makeSpec(QuantFormat::BF16));
  std::vector<float> df(64), db(64);
  dequantize(f, df.data());
  dequantize(b, db.data());
  for (int i = 0; i < 64; ++i) {
    EXPECT_EQ(df[i], w[i]);
    EXPECT_EQ(db[i], bf16ToFloat(floatToBF16(w[i])));
    EXPECT_LE(std::fabs(db[i] - w[i]), std::fabs(w[i]) * 0x1p-8f);
  }
}

TEST(RoundTrip, DoubleQuantization) {
  const int64_t rows = 40, cols = 512; // 320 blocks: two second-level blocks
  std::vector<float> w = randomNormal(rows * cols, 5, 0.05f);
  QuantizedTensor plain =
      mustQuantize(w, rows, cols, makeSpec(QuantFormat::NF4));
  QuantizedTensor dq =
      mustQuantize(w, rows, cols, makeSpec(QuantFormat::NF4, 64, true));
  EXPECT_TRUE(dq.scales.empty());
  EXPECT_EQ(dq.scaleCodes.size(), 320u);
  EXPECT_EQ(dq.scaleAbsmax.size(), 2u);
  double mean = 0;
  for (float a : plain.scales)
    mean += a;
  EXPECT_NEAR(dq.scaleOffset, mean / 320, 1e-6);
  // Same 4-bit codes (quantized with the exact absmax, as bitsandbytes).
  EXPECT_EQ(dq.codes, plain.codes);
  for (int64_t b = 0; b < 320; ++b) {
    float exact = plain.scales[b], decoded = dq.blockScale(b / 8, b % 8);
    // The 8-bit dynamic map has < 1% relative spacing near the top.
    EXPECT_NEAR(decoded, exact, 0.01f * dq.scaleAbsmax[b / 256] + 1e-7f) << b;
  }
}

TEST(Sizes, BitsPerParam) {
  QuantSpec nf4dq = makeSpec(QuantFormat::NF4, 64, true);
  EXPECT_NEAR(bitsPerParam(nf4dq, 4096, 4096), 4.127, 0.0005);
  EXPECT_NEAR(bitsPerParam(makeSpec(QuantFormat::NF4), 4096, 4096), 4.5, 1e-9);
  EXPECT_NEAR(bitsPerParam(makeSpec(QuantFormat::Int8), 4096, 4096), 8.5, 1e-9);
  EXPECT_NEAR(bitsPerParam(makeSpec(QuantFormat::Int4, 64, false, 8, 8), 4096,
                           4096),
              5.0, 1e-9);
  EXPECT_NEAR(bitsPerParam(makeSpec(QuantFormat::Int3, 64, false, 1, 128),
                           4096, 4096),
              3.5, 1e-9);
  EXPECT_EQ(bitsPerParam(makeSpec(QuantFormat::BF16), 10, 10), 16.0);
  EXPECT_EQ(bitsPerParam(makeSpec(QuantFormat::F32), 10, 10), 32.0);
  // The size formula agrees with what quantize() allocates.
  std::vector<float> w = randomNormal(33 * 300, 6);
  for (QuantSpec s :
       {nf4dq, makeSpec(QuantFormat::FP4), makeSpec(QuantFormat::Int8),
        makeSpec(QuantFormat::Int3, 64, false, 4, 16),
        makeSpec(QuantFormat::BF16)}) {
    QuantizedTensor q = mustQuantize(w, 33, 300, s);
    EXPECT_EQ(q.storageBytes(), quantizedBytes(s, 33, 300)) << formatLabel(s.format);
  }
}

//===----------------------------------------------------------------------===//
// Adversarial inputs
//===----------------------------------------------------------------------===//

TEST(Adversarial, AllZeroBlocksDequantizeToZero) {
  std::vector<float> w(4 * 128, 0.0f);
  for (QuantSpec s :
       {makeSpec(QuantFormat::NF4), makeSpec(QuantFormat::NF4, 64, true),
        makeSpec(QuantFormat::FP4), makeSpec(QuantFormat::Int8),
        makeSpec(QuantFormat::Int4, 64, false, 2, 16),
        makeSpec(QuantFormat::Int2)}) {
    QuantizedTensor q = mustQuantize(w, 4, 128, s);
    std::vector<float> d(w.size(), 1.0f);
    dequantize(q, d.data());
    for (float v : d)
      ASSERT_EQ(v, 0.0f) << formatLabel(s.format);
  }
}

TEST(Adversarial, NaNAndInfAreRejected) {
  std::vector<float> w(2 * 64, 0.5f);
  w[70] = NAN;
  std::string e = errorOf(w, 2, 64, makeSpec(QuantFormat::NF4));
  EXPECT_NE(e.find("non-finite"), std::string::npos) << e;
  EXPECT_NE(e.find("(1, 6)"), std::string::npos) << e;
  w[70] = -INFINITY;
  for (QuantFormat f : {QuantFormat::FP4, QuantFormat::Int8, QuantFormat::Int4,
                        QuantFormat::BF16, QuantFormat::F32})
    EXPECT_NE(errorOf(w, 2, 64, makeSpec(f)).find("non-finite"),
              std::string::npos)
        << formatLabel(f);
}

TEST(Adversarial, BadSpecsAndOverflow) {
  std::vector<float> w(64, 1.0f);
  EXPECT_NE(errorOf(w, 1, 64, makeSpec(QuantFormat::NF4, 0)), "");
  EXPECT_NE(errorOf(w, 1, 64, makeSpec(QuantFormat::Int4, 64, false, 0, 8)), "");
  EXPECT_NE(errorOf(w, 1, 64, makeSpec(QuantFormat::Int8, 64, true)), "");
  // The full f32 range: no overflow in the scale or the offsets.
  w[0] = -FLT_MAX;
  w[1] = FLT_MAX;
  w[2] = 1e38f;
  QuantizedTensor q = mustQuantize(w, 1, 64, makeSpec(QuantFormat::NF4));
  std::vector<float> d(64);
  dequantize(q, d.data());
  EXPECT_EQ(d[0], -FLT_MAX);
  EXPECT_EQ(d[1], FLT_MAX);
  QuantizedTensor t = mustQuantize(w, 1, 64, makeSpec(QuantFormat::Int4));
  dequantize(t, d.data());
  EXPECT_EQ(d[0], -FLT_MAX);
  for (int i = 1; i < 3; ++i)
    EXPECT_LE(std::fabs(double(d[i]) - w[i]), 0.5001 * t.scales[0]) << i;
}

TEST(Adversarial, DenormalsAndConstantTiles) {
  std::vector<float> w(128);
  for (int i = 0; i < 128; ++i)
    w[i] = (i % 2 ? -1.0f : 1.0f) * 1e-40f * static_cast<float>(i % 7);
  for (QuantSpec s : {makeSpec(QuantFormat::NF4), makeSpec(QuantFormat::Int8),
                      makeSpec(QuantFormat::Int4)}) {
    QuantizedTensor q = mustQuantize(w, 2, 64, s);
    std::vector<float> d(128);
    dequantize(q, d.data());
    for (int i = 0; i < 128; ++i) {
      ASSERT_TRUE(std::isfinite(d[i]));
      ASSERT_LE(std::fabs(d[i] - w[i]), 6e-40f * 0.2f) << formatLabel(s.format);
    }
  }
  std::vector<float> c(64, -3.25f);
  QuantizedTensor q = mustQuantize(c, 8, 8, makeSpec(QuantFormat::Int3, 64,
                                                      false, 8, 8));
  std::vector<float> d(64);
  dequantize(q, d.data());
  for (float v : d)
    EXPECT_EQ(v, -3.25f);
}

TEST(Verify, CatchesInconsistentArrays) {
  std::vector<float> w = randomNormal(256, 7);
  QuantizedTensor q = mustQuantize(w, 2, 128, makeSpec(QuantFormat::NF4));
  q.scales.pop_back();
  llvm::Error e = q.verify();
  ASSERT_TRUE(static_cast<bool>(e));
  EXPECT_NE(llvm::toString(std::move(e)).find("scales"), std::string::npos);
  QuantizedTensor t = mustQuantize(w, 2, 128, makeSpec(QuantFormat::Int4));
  t.codes.resize(10);
  llvm::Error e2 = t.verify();
  EXPECT_TRUE(static_cast<bool>(e2));
  llvm::consumeError(std::move(e2));
}
