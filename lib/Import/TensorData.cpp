//===- TensorData.cpp - dtypes and tensor decoding --------------*- C++ -*-===//
//
// Data types, f16/bf16 conversion, decoding of raw little-endian tensor bytes
// into f32 and the llama2.c -> Hugging Face rotary row permutation.
//
//===----------------------------------------------------------------------===//

#include "ImportInternal.h"

#include "llvm/Support/raw_ostream.h"

#include <cstring>

using namespace mixq;
using namespace mixq::detail;
using llvm::Expected;
using llvm::StringRef;

//===----------------------------------------------------------------------===//
// DType
//===----------------------------------------------------------------------===//

StringRef mixq::dtypeName(DType t) {
  switch (t) {
  case DType::F32:
    return "F32";
  case DType::F16:
    return "F16";
  case DType::BF16:
    return "BF16";
  case DType::I8:
    return "I8";
  case DType::U8:
    return "U8";
  case DType::I16:
    return "I16";
  case DType::I32:
    return "I32";
  case DType::I64:
    return "I64";
  case DType::F64:
    return "F64";
  }
  return "?";
}

Expected<DType> mixq::parseDType(StringRef s) {
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::I8, DType::U8,
                  DType::I16, DType::I32, DType::I64, DType::F64})
    if (s == dtypeName(t))
      return t;
  return llvm::createStringError(std::errc::invalid_argument,
                                 "unknown dtype '%s'", s.str().c_str());
}

int64_t mixq::dtypeSize(DType t) {
  switch (t) {
  case DType::I8:
  case DType::U8:
    return 1;
  case DType::F16:
  case DType::BF16:
  case DType::I16:
    return 2;
  case DType::F32:
  case DType::I32:
    return 4;
  case DType::I64:
  case DType::F64:
    return 8;
  }
  return 0;
}

int64_t TensorInfo::numElements() const {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

llvm::Error detail::importError(StringRef file, const llvm::Twine &msg) {
  return llvm::createStringError(std::errc::invalid_argument, "%s: %s",
                                 file.str().c_str(), msg.str().c_str());
}

std::string detail::shapeString(llvm::ArrayRef<int64_t> shape) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << '[';
  llvm::interleaveComma(shape, os);
  os << ']';
  return s;
}

bool detail::mulOverflow(uint64_t a, uint64_t b, uint64_t &out) {
  return __builtin_mul_overflow(a, b, &out);
}

//===----------------------------------------------------------------------===//
// f16 / bf16
//===----------------------------------------------------------------------===//

static float bitsToFloat(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

static uint32_t floatToBits(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof(bits));
  return bits;
}

float detail::halfToFloat(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  if (exp == 0x1f) // inf / nan
    return bitsToFloat(sign | 0x7f800000 | (mant << 13));
  if (exp == 0) {
    if (mant == 0)
      return bitsToFloat(sign);
    // Subnormal: value = mant * 2^-24.
    float v = static_cast<float>(mant) * (1.0f / 16777216.0f);
    return sign ? -v : v;
  }
  return bitsToFloat(sign | ((exp + 112) << 23) | (mant << 13));
}

float detail::bfloat16ToFloat(uint16_t b) {
  return bitsToFloat(uint32_t(b) << 16);
}

uint16_t detail::floatToBFloat16(float f) {
  uint32_t bits = floatToBits(f);
  if ((bits & 0x7fffffff) > 0x7f800000) // nan: keep it a quiet nan
    return static_cast<uint16_t>((bits >> 16) | 0x40);
  // Round to nearest even.
  uint32_t rounding = 0x7fff + ((bits >> 16) & 1);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

uint16_t detail::floatToHalf(float f) {
  uint32_t bits = floatToBits(f);
  uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000);
  uint32_t absBits = bits & 0x7fffffff;
  if (absBits > 0x7f800000)
    return sign | 0x7e00;    // nan
  if (absBits >= 0x477ff000) // rounds to >= 65520: inf
    return sign | 0x7c00;
  if (absBits < 0x38800000) { // below the smallest normal half: subnormal
    float a = bitsToFloat(absBits) * 16777216.0f; // in units of 2^-24
    uint32_t q = static_cast<uint32_t>(a);
    float frac = a - static_cast<float>(q);
    if (frac > 0.5f || (frac == 0.5f && (q & 1)))
      ++q;
    return sign | static_cast<uint16_t>(q);
  }
  // Normal: rebias the exponent, round the mantissa to nearest even.
  uint32_t rounded = absBits + 0xfff + ((absBits >> 13) & 1);
  return sign | static_cast<uint16_t>((rounded - 0x38000000) >> 13);
}

//===----------------------------------------------------------------------===//
// Decoding
//===----------------------------------------------------------------------===//

template <typename T>
static void decodeAs(StringRef bytes, std::vector<float> &out) {
  for (size_t i = 0; i < out.size(); ++i) {
    T v;
    std::memcpy(&v, bytes.data() + i * sizeof(T), sizeof(T));
    out[i] = static_cast<float>(v);
  }
}

static void decode16(StringRef bytes, std::vector<float> &out,
                     float (*convert)(uint16_t)) {
  for (size_t i = 0; i < out.size(); ++i) {
    uint16_t v;
    std::memcpy(&v, bytes.data() + i * 2, 2);
    out[i] = convert(v);
  }
}

Expected<std::vector<float>> detail::decodeTensor(const TensorInfo &info,
                                                  StringRef bytes) {
  uint64_t n = 1;
  for (int64_t d : info.shape)
    if (d < 0 || mulOverflow(n, static_cast<uint64_t>(d), n))
      return importError(info.file, "tensor '" + info.name +
                                        "' has an invalid shape " +
                                        shapeString(info.shape));
  uint64_t need;
  if (mulOverflow(n, dtypeSize(info.dtype), need) || need != info.nbytes ||
      bytes.size() != need)
    return importError(info.file, "tensor '" + info.name + "' has " +
                                      llvm::Twine(bytes.size()) +
                                      " bytes of data, expected " +
                                      llvm::Twine(info.nbytes));
  std::vector<float> out(n);
  switch (info.dtype) {
  case DType::F32:
    if (n)
      std::memcpy(out.data(), bytes.data(), n * 4);
    break;
  case DType::F16:
    decode16(bytes, out, halfToFloat);
    break;
  case DType::BF16:
    decode16(bytes, out, bfloat16ToFloat);
    break;
  case DType::I8:
    decodeAs<int8_t>(bytes, out);
    break;
  case DType::U8:
    decodeAs<uint8_t>(bytes, out);
    break;
  case DType::I16:
    decodeAs<int16_t>(bytes, out);
    break;
  case DType::I32:
    decodeAs<int32_t>(bytes, out);
    break;
  case DType::I64:
    decodeAs<int64_t>(bytes, out);
    break;
  case DType::F64:
    decodeAs<double>(bytes, out);
    break;
  }
  if (info.interleavedRopeHeads != 0) {
    int64_t rows = info.shape.empty() ? 0 : info.shape[0];
    int64_t cols = info.shape.size() == 2 ? info.shape[1] : 0;
    if (!permuteInterleavedRows(out, rows, cols, info.interleavedRopeHeads))
      return importError(info.file, "tensor '" + info.name + "' of shape " +
                                        shapeString(info.shape) +
                                        " cannot be split into " +
                                        llvm::Twine(info.interleavedRopeHeads) +
                                        " rotary heads");
  }
  return out;
}

bool detail::permuteInterleavedRows(std::vector<float> &data, int64_t rows,
                                    int64_t cols, int64_t heads) {
  if (rows <= 0 || cols <= 0 || heads <= 0 || rows % heads != 0 ||
      static_cast<uint64_t>(rows) * static_cast<uint64_t>(cols) != data.size())
    return false;
  int64_t headDim = rows / heads;
  if (headDim % 2 != 0)
    return false;
  int64_t half = headDim / 2;
  std::vector<float> src(data);
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < half; ++i)
      for (int64_t j = 0; j < 2; ++j) {
        const float *from = src.data() + (h * headDim + 2 * i + j) * cols;
        float *to = data.data() + (h * headDim + j * half + i) * cols;
        std::memcpy(to, from, cols * sizeof(float));
      }
  return true;
}
