//===- Quant.cpp - Quantize / dequantize (scalar reference) -------*- C++ -*-===//
//
// The reference implementation of every format of Quant.h. The SIMD panel
// dequantizers (DequantAVX512.cpp) produce bit-identical floats: they use the
// same formulas (lut[q] * absmax, q * (absmax / 127), fma(alpha, q, beta)).
//
//===----------------------------------------------------------------------===//

#include "mixq/Kernels/Quant.h"

#include "llvm/Support/FormatVariadic.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace mixq {
namespace kernels {

const char *formatLabel(QuantFormat f) {
  switch (f) {
  case QuantFormat::F32:
    return "f32";
  case QuantFormat::BF16:
    return "bf16";
  case QuantFormat::NF4:
    return "nf4";
  case QuantFormat::FP4:
    return "fp4";
  case QuantFormat::Int8:
    return "int8";
  case QuantFormat::Int4:
    return "int4";
  case QuantFormat::Int3:
    return "int3";
  case QuantFormat::Int2:
    return "int2";
  }
  return "?";
}

int formatCodeBits(QuantFormat f) {
  switch (f) {
  case QuantFormat::F32:
    return 32;
  case QuantFormat::BF16:
    return 16;
  case QuantFormat::Int8:
    return 8;
  case QuantFormat::NF4:
  case QuantFormat::FP4:
  case QuantFormat::Int4:
    return 4;
  case QuantFormat::Int3:
    return 3;
  case QuantFormat::Int2:
    return 2;
  }
  return 32;
}

static bool isBlockFormat(QuantFormat f) {
  return f == QuantFormat::NF4 || f == QuantFormat::FP4 ||
         f == QuantFormat::Int8;
}

static bool isTileFormat(QuantFormat f) {
  return f == QuantFormat::Int4 || f == QuantFormat::Int3 ||
         f == QuantFormat::Int2;
}

static int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

static int64_t rowBytesFor(QuantFormat f, int64_t cols) {
  return ceilDiv(cols * formatCodeBits(f), 8);
}

//===----------------------------------------------------------------------===//
// Bit stream packing
//===----------------------------------------------------------------------===//

/// Reads the N-bit code of element j of a row (MSB-first bit stream).
static inline uint32_t readCode(const uint8_t *row, int64_t j, int bits) {
  if (bits == 8)
    return row[j];
  if (bits == 4)
    return (j & 1) ? (row[j >> 1] & 0xF) : (row[j >> 1] >> 4);
  int64_t bit = j * bits;
  int64_t byte = bit >> 3;
  int shift = static_cast<int>(bit & 7);
  // At most 3 bits spanning two bytes.
  uint32_t word = (static_cast<uint32_t>(row[byte]) << 8) |
                  (shift + bits > 8 ? row[byte + 1] : 0);
  return (word >> (16 - shift - bits)) & ((1u << bits) - 1);
}

static inline void writeCode(uint8_t *row, int64_t j, int bits,
                             uint32_t code) {
  int64_t bit = j * bits;
  for (int b = 0; b < bits; ++b, ++bit) {
    uint8_t mask = static_cast<uint8_t>(0x80 >> (bit & 7));
    if ((code >> (bits - 1 - b)) & 1)
      row[bit >> 3] |= mask;
  }
}

//===----------------------------------------------------------------------===//
// QuantizedTensor
//===----------------------------------------------------------------------===//

int64_t QuantizedTensor::blocksPerRow() const {
  return isBlockFormat(spec.format) ? ceilDiv(cols, spec.block) : 0;
}
int64_t QuantizedTensor::tileRowCount() const {
  return isTileFormat(spec.format) ? ceilDiv(rows, spec.tileRows) : 0;
}
int64_t QuantizedTensor::tileColCount() const {
  return isTileFormat(spec.format) ? ceilDiv(cols, spec.tileCols) : 0;
}

float QuantizedTensor::blockScale(int64_t row, int64_t block) const {
  int64_t idx = row * blocksPerRow() + block;
  if (scaleCodes.empty())
    return scales[idx];
  // An explicit fma: the SIMD decoder (KernelsAVX512.cpp) computes the same.
  return std::fma(dynamicMap8()[scaleCodes[idx]],
                  scaleAbsmax[idx / kDoubleQuantBlock], scaleOffset);
}

int32_t QuantizedTensor::codeAt(int64_t row, int64_t col) const {
  uint32_t c =
      readCode(codes.data() + row * rowBytes, col, formatCodeBits(spec.format));
  if (spec.format == QuantFormat::Int8)
    return static_cast<int8_t>(c);
  return static_cast<int32_t>(c);
}

int64_t QuantizedTensor::storageBytes() const {
  return static_cast<int64_t>(codes.size() + scaleCodes.size() +
                              4 * (scales.size() + zeros.size() +
                                   scaleAbsmax.size())) +
         (spec.doubleQuant ? 4 : 0);
}

double QuantizedTensor::bitsPerParam() const {
  if (rows * cols == 0)
    return 0.0;
  return 8.0 * static_cast<double>(storageBytes()) /
         static_cast<double>(rows * cols);
}

static llvm::Error sizeError(const char *what, size_t got, int64_t want) {
  return llvm::createStringError(
      llvm::formatv("quantized tensor: {0} has {1} entries, expected {2}", what,
                    got, want)
          .str());
}

llvm::Error QuantizedTensor::verify() const {
  if (llvm::Error e = validateSpec(spec, rows, cols))
    return e;
  if (rowBytes != rowBytesFor(spec.format, cols))
    return llvm::createStringError(
        llvm::formatv("quantized tensor: rowBytes {0}, expected {1}", rowBytes,
                      rowBytesFor(spec.format, cols))
            .str());
  if (static_cast<int64_t>(codes.size()) != rows * rowBytes)
    return sizeError("codes", codes.size(), rows * rowBytes);
  int64_t nScales = 0, nZeros = 0, nCodes = 0, nAbs = 0;
  if (isBlockFormat(spec.format)) {
    int64_t blocks = rows * blocksPerRow();
    if (spec.doubleQuant) {
      nCodes = blocks;
      nAbs = ceilDiv(blocks, kDoubleQuantBlock);
    } else {
      nScales = blocks;
    }
  } else if (isTileFormat(spec.format)) {
    nScales = nZeros = tileRowCount() * tileColCount();
  }
  if (static_cast<int64_t>(scales.size()) != nScales)
    return sizeError("scales", scales.size(), nScales);
  if (static_cast<int64_t>(zeros.size()) != nZeros)
    return sizeError("zeros", zeros.size(), nZeros);
  if (static_cast<int64_t>(scaleCodes.size()) != nCodes)
    return sizeError("scaleCodes", scaleCodes.size(), nCodes);
  if (static_cast<int64_t>(scaleAbsmax.size()) != nAbs)
    return sizeError("scaleAbsmax", scaleAbsmax.size(), nAbs);
  return llvm::Error::success();
}

llvm::Error validateSpec(const QuantSpec &spec, int64_t rows, int64_t cols) {
  auto fail = [&](const llvm::Twine &msg) {
    return llvm::createStringError(llvm::Twine("quantize ") +
                                   formatLabel(spec.format) + ": " + msg);
  };
  if (rows < 0 || cols < 0)
    return fail(llvm::formatv("negative shape [{0}, {1}]", rows, cols).str());
  if (isBlockFormat(spec.format) && spec.block <= 0)
    return fail(llvm::formatv("block must be positive, got {0}", spec.block)
                    .str());
  if (isTileFormat(spec.format) && (spec.tileRows <= 0 || spec.tileCols <= 0))
    return fail(llvm::formatv("tile must be positive, got {0}x{1}",
                              spec.tileRows, spec.tileCols)
                    .str());
  if (spec.doubleQuant && spec.format != QuantFormat::NF4 &&
      spec.format != QuantFormat::FP4)
    return fail("double quantization applies to nf4/fp4 only");
  return llvm::Error::success();
}

//===----------------------------------------------------------------------===//
// Sizes
//===----------------------------------------------------------------------===//

int64_t quantizedBytes(const QuantSpec &spec, int64_t rows, int64_t cols) {
  int64_t bytes = rows * rowBytesFor(spec.format, cols);
  if (isBlockFormat(spec.format)) {
    int64_t blocks = rows * ceilDiv(cols, std::max<int64_t>(spec.block, 1));
    if (spec.doubleQuant)
      bytes += blocks + 4 * ceilDiv(blocks, kDoubleQuantBlock) + 4;
    else
      bytes += 4 * blocks;
  } else if (isTileFormat(spec.format)) {
    int64_t tiles = ceilDiv(rows, std::max<int64_t>(spec.tileRows, 1)) *
                    ceilDiv(cols, std::max<int64_t>(spec.tileCols, 1));
    bytes += 8 * tiles;
  }
  return bytes;
}

double bitsPerParam(const QuantSpec &spec, int64_t rows, int64_t cols) {
  if (rows * cols == 0)
    return 0.0;
  return 8.0 * static_cast<double>(quantizedBytes(spec, rows, cols)) /
         static_cast<double>(rows * cols);
}

//===----------------------------------------------------------------------===//
// Quantize
//===----------------------------------------------------------------------===//

static llvm::Error checkFinite(const float *w, int64_t rows, int64_t cols,
                               QuantFormat f) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      if (!std::isfinite(w[r * cols + c]))
        return llvm::createStringError(
            llvm::formatv("quantize {0}: non-finite value {1} at ({2}, {3})",
                          formatLabel(f), w[r * cols + c], r, c)
                .str());
  return llvm::Error::success();
}

/// Second-level quantization of the absmax values (bitsandbytes nested
/// quantization): subtract the mean, dynamic 8-bit codes per 256 values.
static void doubleQuantize(QuantizedTensor &q) {
  const std::vector<float> &absmax = q.scales;
  double sum = 0.0;
  for (float a : absmax)
    sum += a;
  q.scaleOffset =
      absmax.empty() ? 0.0f : static_cast<float>(sum / absmax.size());
  int64_t n = static_cast<int64_t>(absmax.size());
  q.scaleCodes.assign(n, 0);
  q.scaleAbsmax.assign(ceilDiv(n, kDoubleQuantBlock), 0.0f);
  for (int64_t b0 = 0; b0 < n; b0 += kDoubleQuantBlock) {
    int64_t b1 = std::min(n, b0 + kDoubleQuantBlock);
    float amax = 0.0f;
    for (int64_t i = b0; i < b1; ++i)
      amax = std::max(amax, std::fabs(absmax[i] - q.scaleOffset));
    q.scaleAbsmax[b0 / kDoubleQuantBlock] = amax;
    float inv = amax > 0.0f ? 1.0f / amax : 0.0f;
    const bool divide = std::isinf(inv);
    for (int64_t i = b0; i < b1; ++i) {
      float d = absmax[i] - q.scaleOffset;
      q.scaleCodes[i] = quantizeDynamic8Value(divide ? d / amax : d * inv);
    }
  }
  q.scales.clear();
}

static void quantizeBlocks(const float *w, QuantizedTensor &q) {
  const int bits = formatCodeBits(q.spec.format);
  const int64_t blocks = q.blocksPerRow();
  q.scales.assign(q.rows * blocks, 0.0f);
  for (int64_t r = 0; r < q.rows; ++r) {
    uint8_t *row = q.codes.data() + r * q.rowBytes;
    for (int64_t b = 0; b < blocks; ++b) {
      int64_t c0 = b * q.spec.block, c1 = std::min(q.cols, c0 + q.spec.block);
      float amax = 0.0f;
      for (int64_t c = c0; c < c1; ++c)
        amax = std::max(amax, std::fabs(w[r * q.cols + c]));
      q.scales[r * blocks + b] = amax;
      // bitsandbytes multiplies by the reciprocal; an all-zero block maps
      // every value to the exact zero code.
      // (Division when the reciprocal of a tiny absmax overflows.)
      float inv = amax > 0.0f ? 1.0f / amax : 0.0f;
      const bool divide = std::isinf(inv);
      for (int64_t c = c0; c < c1; ++c) {
        float x = divide ? w[r * q.cols + c] / amax : w[r * q.cols + c] * inv;
        uint32_t code;
        if (q.spec.format == QuantFormat::NF4)
          code = quantizeNF4Value(x);
        else if (q.spec.format == QuantFormat::FP4)
          code = quantizeFP4Value(x);
        else
          code = static_cast<uint8_t>(static_cast<int8_t>(
              std::clamp(std::nearbyint(x * 127.0f), -127.0f, 127.0f)));
        writeCode(row, c, bits, code);
      }
    }
  }
  if (q.spec.doubleQuant)
    doubleQuantize(q);
}

static void quantizeTiles(const float *w, QuantizedTensor &q) {
  const int bits = formatCodeBits(q.spec.format);
  const float levels = static_cast<float>((1 << bits) - 1);
  const int64_t tr = q.spec.tileRows, tc = q.spec.tileCols;
  const int64_t nCols = q.tileColCount();
  q.scales.assign(q.tileRowCount() * nCols, 0.0f);
  q.zeros.assign(q.scales.size(), 0.0f);
  for (int64_t ti = 0; ti < q.tileRowCount(); ++ti) {
    for (int64_t tj = 0; tj < nCols; ++tj) {
      int64_t r0 = ti * tr, r1 = std::min(q.rows, r0 + tr);
      int64_t c0 = tj * tc, c1 = std::min(q.cols, c0 + tc);
      float lo = w[r0 * q.cols + c0], hi = lo;
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t c = c0; c < c1; ++c) {
          lo = std::min(lo, w[r * q.cols + c]);
          hi = std::max(hi, w[r * q.cols + c]);
        }
      // (hi - lo) / levels < FLT_MAX for finite inputs; the offsets are
      // computed in f64 so that w - lo cannot overflow.
      float alpha = static_cast<float>(
          (static_cast<double>(hi) - static_cast<double>(lo)) / levels);
      q.scales[ti * nCols + tj] = alpha;
      q.zeros[ti * nCols + tj] = lo;
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t c = c0; c < c1; ++c) {
          double v = alpha > 0.0f ? (static_cast<double>(w[r * q.cols + c]) -
                                     static_cast<double>(lo)) /
                                        static_cast<double>(alpha)
                                  : 0.0;
          double code = std::clamp(std::nearbyint(v), 0.0, double(levels));
          writeCode(q.codes.data() + r * q.rowBytes, c, bits,
                    static_cast<uint32_t>(code));
        }
    }
  }
}

llvm::Expected<QuantizedTensor> quantize(const float *w, int64_t rows,
                                         int64_t cols, const QuantSpec &spec) {
  if (llvm::Error e = validateSpec(spec, rows, cols))
    return e;
  if (llvm::Error e = checkFinite(w, rows, cols, spec.format))
    return e;
  QuantizedTensor q;
  q.spec = spec;
  q.rows = rows;
  q.cols = cols;
  q.rowBytes = rowBytesFor(spec.format, cols);
  q.codes.assign(rows * q.rowBytes, 0);
  if (spec.format == QuantFormat::F32) {
    if (rows * cols > 0)
      std::memcpy(q.codes.data(), w, 4 * rows * cols);
  } else if (spec.format == QuantFormat::BF16) {
    for (int64_t i = 0; i < rows * cols; ++i) {
      uint16_t h = floatToBF16(w[i]);
      std::memcpy(q.codes.data() + 2 * i, &h, 2);
    }
  } else if (isBlockFormat(spec.format)) {
    quantizeBlocks(w, q);
  } else {
    quantizeTiles(w, q);
  }
  return q;
}

//===----------------------------------------------------------------------===//
// Dequantize
//===----------------------------------------------------------------------===//

void dequantizeRow(const QuantizedTensor &q, int64_t r, int64_t c0,
                   int64_t c1, float *out) {
  const uint8_t *row = q.codes.data() + r * q.rowBytes;
  const QuantFormat f = q.spec.format;
  const int bits = formatCodeBits(f);
  if (f == QuantFormat::F32) {
    std::memcpy(out, row + 4 * c0, 4 * (c1 - c0));
    return;
  }
  if (f == QuantFormat::BF16) {
    for (int64_t c = c0; c < c1; ++c) {
      uint16_t h;
      std::memcpy(&h, row + 2 * c, 2);
      out[c - c0] = bf16ToFloat(h);
    }
    return;
  }
  if (isBlockFormat(f)) {
    const float *lut = f == QuantFormat::NF4 ? kNF4Codebook.data()
                                             : kFP4Codebook.data();
    for (int64_t c = c0; c < c1;) {
      int64_t b = c / q.spec.block;
      int64_t end = std::min(c1, (b + 1) * q.spec.block);
      float s = q.blockScale(r, b);
      if (f == QuantFormat::Int8) {
        float step = s / 127.0f;
        for (; c < end; ++c)
          out[c - c0] = static_cast<float>(static_cast<int8_t>(row[c])) * step;
      } else {
        for (; c < end; ++c)
          out[c - c0] = lut[readCode(row, c, 4)] * s;
      }
    }
    return;
  }
  const int64_t ti = r / q.spec.tileRows, nCols = q.tileColCount();
  for (int64_t c = c0; c < c1;) {
    int64_t tj = c / q.spec.tileCols;
    int64_t end = std::min(c1, (tj + 1) * q.spec.tileCols);
    float alpha = q.scales[ti * nCols + tj], beta = q.zeros[ti * nCols + tj];
    for (; c < end; ++c)
      out[c - c0] =
          std::fma(alpha, static_cast<float>(readCode(row, c, bits)), beta);
  }
}

void dequantizeTile(const QuantizedTensor &q, int64_t row0, int64_t nRows,
                    int64_t col0, int64_t nCols, float *out, int64_t ldOut) {
  for (int64_t r = 0; r < nRows; ++r)
    dequantizeRow(q, row0 + r, col0, col0 + nCols, out + r * ldOut);
}

void dequantize(const QuantizedTensor &q, float *out) {
  dequantizeTile(q, 0, q.rows, 0, q.cols, out, q.cols);
}

} // namespace kernels
} // namespace mixq
