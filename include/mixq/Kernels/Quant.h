//===- Quant.h - Weight quantization formats (nf4, fp4, int*, bf16) -*- C++ -*-===//
//
// Quantized storage of a frozen linear weight W [rows = out, cols = in] (the
// PyTorch nn.Linear layout) in the formats of docs/kernels.md:
//
//   nf4 / fp4  4-bit codes into the bitsandbytes NormalFloat / FP4 codebooks,
//              one absmax per 1-D block of `spec.block` consecutive values of
//              a row; optional double quantization of the absmax values
//              (minus their mean, 8-bit bitsandbytes dynamic map, block 256).
//   int8       symmetric absmax, code = round(w / absmax * 127), block 64.
//   int4/3/2   min-max asymmetric 2-D tiles tileRows x tileCols:
//              w = alpha * q + beta, q in [0, 2^N - 1], alpha = (max-min) /
//              (2^N - 1), beta = min (the format QA-BLoRA folds into).
//   bf16 / f32 unquantized (bf16: round to nearest even).
//
// Packing: every row starts on a byte boundary (`rowBytes`); inside a row the
// codes form an MSB-first bit stream (element j occupies bits j*N .. j*N+N-1
// counted from the most significant bit of byte 0). For 4-bit this is the
// bitsandbytes layout (first element in the high nibble); int8 codes are two's
// complement bytes; bf16 / f32 values are little-endian. Blocks and tiles are
// row-local: a row of `cols` values has ceil(cols / block) blocks, the last
// one possibly partial (for cols % block == 0 this equals bitsandbytes'
// flattened blocking).
//
// Plain C++ (no MLIR). Errors are llvm::Error / llvm::Expected.
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_KERNELS_QUANT_H
#define MIXQ_KERNELS_QUANT_H

#include "mixq/Config/VariantConfig.h"

#include "llvm/Support/Error.h"

#include <array>
#include <cstdint>
#include <vector>

namespace mixq {
namespace kernels {

//===----------------------------------------------------------------------===//
// Codebooks (bit-exact with bitsandbytes)
//===----------------------------------------------------------------------===//

/// The 16 NF4 values of bitsandbytes (`dDequantizeNF4`), index = code.
extern const std::array<float, 16> kNF4Codebook;
/// The 16 FP4 values of bitsandbytes (`dDequantizeFP4Tree`, absmax 1); bit 3
/// is the sign (code 8 is -0.0).
extern const std::array<float, 16> kFP4Codebook;
/// bitsandbytes' `create_dynamic_map(signed=True)` (256 sorted values in
/// [-1, 1]), the 8-bit code of the double-quantized absmax values.
const std::array<float, 256> &dynamicMap8();

/// The NF4 code of a value already divided by its block absmax, with the
/// decision thresholds of bitsandbytes' `dQuantizeNF4` (x > t goes up).
uint8_t quantizeNF4Value(float normalized);
/// The FP4 code of a normalized value, as bitsandbytes' `dQuantizeFP4`.
uint8_t quantizeFP4Value(float normalized);
/// The nearest dynamicMap8() entry of a value in [-1, 1] (ties go down).
uint8_t quantizeDynamic8Value(float normalized);

/// bf16 <-> f32 (round to nearest even; NaN stays NaN).
uint16_t floatToBF16(float f);
float bf16ToFloat(uint16_t h);

//===----------------------------------------------------------------------===//
// QuantizedTensor
//===----------------------------------------------------------------------===//

/// Constant of the double quantization: absmax values per second-level block.
constexpr int64_t kDoubleQuantBlock = 256;

/// A quantized weight W [rows, cols]. Plain data: the runtime may fill the
/// fields itself (e.g. from a safetensors file) and then call verify().
struct QuantizedTensor {
  QuantSpec spec;
  int64_t rows = 0;     ///< output features
  int64_t cols = 0;     ///< input features
  int64_t rowBytes = 0; ///< bytes of `codes` per row (see file comment)

  /// Packed codes (nf4/fp4/int*), bf16 or f32 payload: rows * rowBytes.
  std::vector<uint8_t> codes;
  /// nf4/fp4/int8 without double quant: absmax per block, [rows][blocks].
  /// int tiles: alpha per tile, [tileRowCount][tileColCount]. Else empty.
  std::vector<float> scales;
  /// int tiles: beta per tile (same shape as scales). Else empty.
  std::vector<float> zeros;

  /// Double quantization (nf4/fp4 with spec.doubleQuant): one 8-bit code into
  /// dynamicMap8() per block ([rows][blocks] flattened), one float absmax per
  /// kDoubleQuantBlock codes, and the mean subtracted before quantizing:
  /// absmax = dynamicMap8()[code] * scaleAbsmax[i / 256] + scaleOffset.
  std::vector<uint8_t> scaleCodes;
  std::vector<float> scaleAbsmax;
  float scaleOffset = 0.0f;

  /// Blocks per row (nf4/fp4/int8), tiles per row/column (int formats).
  int64_t blocksPerRow() const;
  int64_t tileRowCount() const;
  int64_t tileColCount() const;

  /// The absmax of block `block` of row `row` (nf4/fp4/int8), decoding the
  /// double quantization if present.
  float blockScale(int64_t row, int64_t block) const;
  /// The raw code of element (row, col): unsigned for nf4/fp4/int*, the
  /// signed value for int8. Not for bf16/f32.
  int32_t codeAt(int64_t row, int64_t col) const;

  /// Bytes of all arrays above (what this tensor occupies in memory).
  int64_t storageBytes() const;
  /// storageBytes() * 8 / (rows * cols).
  double bitsPerParam() const;

  /// Checks that the array sizes agree with spec, rows and cols.
  llvm::Error verify() const;
};

/// Checks a spec for a [rows, cols] weight: positive block/tile sizes, double
/// quantization only for nf4/fp4.
llvm::Error validateSpec(const QuantSpec &spec, int64_t rows, int64_t cols);

/// Quantizes w [rows, cols] (row-major, leading dimension cols). Fails with an
/// error naming the first NaN/Inf element, or on an invalid spec.
llvm::Expected<QuantizedTensor> quantize(const float *w, int64_t rows,
                                         int64_t cols, const QuantSpec &spec);

/// The whole tensor back to f32, out [rows, cols]. (Tests and merging only;
/// the kernels never materialise W.)
void dequantize(const QuantizedTensor &q, float *out);
/// Columns [colBegin, colEnd) of one row into out[0 .. colEnd-colBegin).
void dequantizeRow(const QuantizedTensor &q, int64_t row, int64_t colBegin,
                   int64_t colEnd, float *out);
/// The tile rows [row0, row0+nRows) x cols [col0, col0+nCols) into out with
/// leading dimension ldOut (scalar reference, any alignment).
void dequantizeTile(const QuantizedTensor &q, int64_t row0, int64_t nRows,
                    int64_t col0, int64_t nCols, float *out, int64_t ldOut);

/// Bytes a [rows, cols] tensor occupies in `spec` (== storageBytes() of its
/// quantization), without quantizing anything.
int64_t quantizedBytes(const QuantSpec &spec, int64_t rows, int64_t cols);
/// quantizedBytes * 8 / (rows * cols); nf4 + double quant, block 64: 4.127.
double bitsPerParam(const QuantSpec &spec, int64_t rows, int64_t cols);

/// Short lowercase name ("nf4", "int3", ...) used by the kernels' messages.
const char *formatLabel(QuantFormat f);
/// Code width in bits (4 for nf4, 16 for bf16, ...).
int formatCodeBits(QuantFormat f);

} // namespace kernels
} // namespace mixq

#endif // MIXQ_KERNELS_QUANT_H
