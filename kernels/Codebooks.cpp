//===- Codebooks.cpp - NF4 / FP4 / dynamic-8 codebooks and bf16 ---*- C++ -*-===//
//
// The value tables and the per-value quantizers, bit-exact with bitsandbytes
// (csrc/kernels.cu: dDequantizeNF4, dQuantizeNF4, dDequantizeFP4Tree,
// dQuantizeFP4; functional.py: create_dynamic_map).
//
//===----------------------------------------------------------------------===//

#include "mixq/Kernels/Quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace mixq {
namespace kernels {

const std::array<float, 16> kNF4Codebook = {
    -1.0f,
    -0.6961928009986877f,
    -0.5250730514526367f,
    -0.39491748809814453f,
    -0.28444138169288635f,
    -0.18477343022823334f,
    -0.09105003625154495f,
    0.0f,
    0.07958029955625534f,
    0.16093020141124725f,
    0.24611230194568634f,
    0.33791524171829224f,
    0.44070982933044434f,
    0.5626170039176941f,
    0.7229568362236023f,
    1.0f};

// dDequantizeFP4Tree with absmax 1: codes 0..7 positive, 8..15 negative.
const std::array<float, 16> kFP4Codebook = {
    0.00000000f,  5.208333333e-03f,  0.66666667f,  1.00000000f,
    0.33333333f,  0.50000000f,       0.16666667f,  0.25000000f,
    -0.00000000f, -5.208333333e-03f, -0.66666667f, -1.00000000f,
    -0.33333333f, -0.50000000f,      -0.16666667f, -0.25000000f};

uint8_t quantizeNF4Value(float x) {
  // The decision tree of dQuantizeNF4 is a binary search over these
  // thresholds with `x > t` going up; counting the exceeded thresholds gives
  // the same code for every input (NaN: 0, as in the tree).
  static const float thresholds[15] = {
      -0.8480964004993439f,  -0.6106329262256622f,  -0.4599952697753906f,
      -0.33967943489551544f, -0.23460740596055984f, -0.13791173323988914f,
      -0.045525018125772476f, 0.03979014977812767f, 0.1202552504837513f,
      0.2035212516784668f,   0.2920137718319893f,   0.3893125355243683f,
      0.5016634166240692f,   0.6427869200706482f,   0.8614784181118011f};
  uint8_t code = 0;
  for (float t : thresholds)
    code += x > t ? 1 : 0;
  return code;
}

uint8_t quantizeFP4Value(float x) {
  int sign = x < 0 ? 0b1000 : 0b0000;
  x = std::fabs(x);
  if (x > 0.29166667f) {
    if (x > 0.583333f)
      return (x > 0.8333333f ? 0b0011 : 0b0010) + sign;
    return (x > 0.4166667f ? 0b0101 : 0b0100) + sign;
  }
  if (x > 0.0859375f)
    return (x > 0.20833333f ? 0b0111 : 0b0110) + sign;
  return (x > 0.00260417f ? 0b0001 : 0b0000) + sign;
}

/// torch.linspace(start, end, steps) in float32 as ATen's CPU kernel computes
/// it (from the start for the first half, from the end for the second).
static std::vector<float> linspaceF32(float start, float end, int64_t steps) {
  std::vector<float> out(steps);
  float step = (end - start) / static_cast<float>(steps - 1);
  int64_t halfway = steps / 2;
  for (int64_t i = 0; i < steps; ++i)
    out[i] = i < halfway ? start + step * static_cast<float>(i)
                         : end - step * static_cast<float>(steps - i - 1);
  return out;
}

static std::array<float, 256> buildDynamicMap8() {
  // create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8):
  // 127 positive and 127 negative values 10^(i-6) * midpoints of
  // linspace(0.1, 1, 2^i + 1), i = 0..6, plus 0 and 1.
  std::vector<float> data;
  const int maxExponentBits = 7;
  for (int i = 0; i < maxExponentBits; ++i) {
    int64_t fractionItems = (int64_t(1) << i) + 1;
    std::vector<float> bounds = linspaceF32(0.1f, 1.0f, fractionItems);
    float magnitude =
        static_cast<float>(std::pow(10.0, -(maxExponentBits - 1) + i));
    for (int64_t j = 0; j + 1 < fractionItems; ++j) {
      float mean = (bounds[j] + bounds[j + 1]) / 2.0f;
      data.push_back(magnitude * mean);
      data.push_back(-(magnitude * mean));
    }
  }
  data.push_back(0.0f);
  data.push_back(1.0f);
  std::sort(data.begin(), data.end());
  std::array<float, 256> out{};
  std::copy(data.begin(), data.end(), out.begin());
  return out;
}

const std::array<float, 256> &dynamicMap8() {
  static const std::array<float, 256> map = buildDynamicMap8();
  return map;
}

uint8_t quantizeDynamic8Value(float x) {
  const std::array<float, 256> &map = dynamicMap8();
  // First entry >= x; compare with its lower neighbour.
  auto it = std::lower_bound(map.begin(), map.end(), x);
  if (it == map.begin())
    return 0;
  if (it == map.end())
    return 255;
  size_t hi = it - map.begin();
  float dHi = *it - x, dLo = x - map[hi - 1];
  return static_cast<uint8_t>(dLo <= dHi ? hi - 1 : hi);
}

uint16_t floatToBF16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if (std::isnan(f))
    return static_cast<uint16_t>((bits >> 16) | 0x40);
  uint32_t rounding = 0x7fff + ((bits >> 16) & 1);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

float bf16ToFloat(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

} // namespace kernels
} // namespace mixq
