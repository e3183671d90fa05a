//===- CudaSource.cpp - CUDA C++ text of the fused linear kernels -------===//
//
// A generated file is: a banner naming the key, the specialisation constants,
// the format's decoder (codebook tables copied from MixQKernels, so CPU and
// GPU decode the same values), the key-independent kernels of
// CudaKernelBody.inc, and the extern "C" launchers.
//
//===----------------------------------------------------------------------===//

#include "CudaSource.h"

#include "mixq/Kernels/Quant.h"

#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"

#include <algorithm>

using namespace mixq;
using namespace mixq::codegen;
using llvm::raw_ostream;

//===----------------------------------------------------------------------===//
// KernelKey
//===----------------------------------------------------------------------===//

static bool isBlockFormat(QuantFormat f) {
  return f == QuantFormat::NF4 || f == QuantFormat::FP4 ||
         f == QuantFormat::Int8;
}

static bool isCodebookFormat(QuantFormat f) {
  return f == QuantFormat::NF4 || f == QuantFormat::FP4;
}

static int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

static llvm::Error keyError(const llvm::Twine &msg) {
  return llvm::createStringError("cuda kernel: " + msg);
}

llvm::Expected<KernelKey> KernelKey::fromSpec(const LinearSpec &spec,
                                              int64_t out, int64_t in) {
  constexpr int64_t kMaxDim = int64_t(1) << 30;
  if (out <= 0 || in <= 0 || out > kMaxDim || in > kMaxDim)
    return keyError(llvm::formatv("weight [{0}, {1}] outside 1..2^30", out, in)
                        .str());
  KernelKey k;
  k.format = spec.quant.format;
  k.out = out;
  k.in = in;
  if (isBlockFormat(k.format)) {
    k.block = spec.quant.block;
    if (k.block <= 0)
      return keyError(llvm::formatv("block must be positive, got {0}", k.block)
                          .str());
    k.doubleQuant = isCodebookFormat(k.format) && spec.quant.doubleQuant;
  } else if (isIntTileFormat(k.format)) {
    k.tileRows = spec.quant.tileRows;
    k.tileCols = spec.quant.tileCols;
    if (k.tileRows <= 0 || k.tileCols <= 0)
      return keyError(llvm::formatv("tile must be positive, got {0}x{1}",
                                    k.tileRows, k.tileCols)
                          .str());
  }
  const AdapterSpec &a = spec.adapter;
  k.adapter = a.kind;
  switch (a.kind) {
  case AdapterKind::None:
    break;
  case AdapterKind::LoRA:
  case AdapterKind::QBLoRA:
    k.rank = a.rank;
    k.lambda = a.kind == AdapterKind::QBLoRA ? a.lambda : 0;
    if (k.rank <= 0 || (a.kind == AdapterKind::QBLoRA && k.lambda <= 0))
      return keyError(llvm::formatv("rank and lambda must be positive, got "
                                    "{0} and {1}",
                                    a.rank, a.lambda)
                          .str());
    break;
  case AdapterKind::AdaLoRA:
    return keyError("adalora has no generated kernel: AdaLoRA lives in the "
                    "runtime only (its rank changes while training)");
  case AdapterKind::QABLoRA:
    k.lambdaRows = a.lambdaRows;
    k.lambdaCols = a.lambdaCols;
    if (k.lambdaRows <= 0 || k.lambdaCols <= 0)
      return keyError(llvm::formatv("lambda must be positive, got [{0}, {1}]",
                                    a.lambdaRows, a.lambdaCols)
                          .str());
    break;
  }
  if (in % k.poolIn() || out % k.repeatOut())
    return keyError(llvm::formatv("weight [{0}, {1}] is not divisible by the "
                                  "adapter's pooling {2} x {3}",
                                  out, in, k.repeatOut(), k.poolIn())
                        .str());
  if (k.storedRank() > kMaxDim)
    return keyError(llvm::formatv("rank {0} too large", k.storedRank()).str());
  return k;
}

int64_t KernelKey::storedRank() const {
  if (adapter == AdapterKind::QBLoRA)
    return lambda * rank;
  return adapter == AdapterKind::LoRA ? rank : 0;
}

int64_t KernelKey::poolIn() const {
  if (adapter == AdapterKind::QBLoRA)
    return lambda;
  return adapter == AdapterKind::QABLoRA ? lambdaCols : 1;
}

int64_t KernelKey::repeatOut() const {
  if (adapter == AdapterKind::QBLoRA)
    return lambda;
  return adapter == AdapterKind::QABLoRA ? lambdaRows : 1;
}

std::string KernelKey::name() const {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << kernels::formatLabel(format);
  if (isBlockFormat(format))
    os << "_b" << block << (doubleQuant ? "_dq" : "");
  else if (isIntTileFormat(format))
    os << "_t" << tileRows << "x" << tileCols;
  switch (adapter) {
  case AdapterKind::None:
    break;
  case AdapterKind::LoRA:
    os << "_lora_r" << rank;
    break;
  case AdapterKind::AdaLoRA:
    llvm_unreachable("no kernel key is made for adalora");
  case AdapterKind::QBLoRA:
    os << "_qblora_r" << rank << "_l" << lambda;
    break;
  case AdapterKind::QABLoRA:
    os << "_qablora_l" << lambdaRows << "x" << lambdaCols;
    break;
  }
  os << "_" << out << "x" << in;
  return s;
}

llvm::json::Object KernelKey::toJSON() const {
  llvm::json::Object o{{"format", kernels::formatLabel(format)},
                       {"out", out},
                       {"in", in},
                       {"adapter", adapterKindName(adapter)}};
  if (isBlockFormat(format)) {
    o["block"] = block;
    o["double_quant"] = doubleQuant;
  }
  if (isIntTileFormat(format))
    o["tile"] = llvm::json::Array{tileRows, tileCols};
  if (adapter == AdapterKind::LoRA || adapter == AdapterKind::QBLoRA)
    o["rank"] = rank;
  if (adapter == AdapterKind::QBLoRA)
    o["lambda"] = lambda;
  if (adapter == AdapterKind::QABLoRA)
    o["lambda"] = llvm::json::Array{lambdaRows, lambdaCols};
  return o;
}

//===----------------------------------------------------------------------===//
// Format section
//===----------------------------------------------------------------------===//

/// An exact C++ float literal (hexadecimal), e.g. "-0x1.6473bp-1f".
static std::string floatLiteral(float v) {
  std::string s;
  llvm::raw_string_ostream(s) << llvm::format("%a", static_cast<double>(v));
  return s + "f";
}

static void writeTable(raw_ostream &os, const char *qualifiers,
                       const std::string &name, const float *values,
                       int count) {
  os << qualifiers << "const float " << name << "[" << count << "] = {";
  for (int i = 0; i < count; ++i)
    os << (i % 4 == 0 ? "\n    " : " ") << floatLiteral(values[i])
       << (i + 1 < count ? "," : "");
  os << "};\n";
}

/// Tables, loadTables() and blockScale() of nf4/fp4/int8.
static void writeBlockTables(const KernelKey &k, raw_ostream &os) {
  const bool codebook = isCodebookFormat(k.format);
  // The same values twice: for the device and for the host build of the
  // decoder (initTablesHost).
  for (const char *side : {"", "Host"}) {
    const char *qualifiers = *side ? "" : "__device__ ";
    if (codebook)
      writeTable(os, qualifiers, std::string("kCodebook") + side,
                 k.format == QuantFormat::NF4 ? kernels::kNF4Codebook.data()
                                              : kernels::kFP4Codebook.data(),
                 16);
    if (k.doubleQuant)
      writeTable(os, qualifiers, std::string("kDynamicMap") + side,
                 kernels::dynamicMap8().data(), 256);
  }
  os << "\n/// Lookup tables, copied to shared memory by every block.\n"
     << "struct Tables {\n";
  if (codebook)
    os << "  float codebook[16];\n";
  if (k.doubleQuant)
    os << "  float dynamicMap[256];\n";
  if (!codebook && !k.doubleQuant)
    os << "  float unused;\n";
  os << "};\n\n__device__ __forceinline__ void loadTables(Tables &";
  if (!codebook && !k.doubleQuant) {
    os << ") {}\n\ninline void initTablesHost(Tables &) {}\n";
  } else {
    os << "t) {\n";
    if (codebook)
      os << "  for (int i = threadIdx.x; i < 16; i += blockDim.x)\n"
         << "    t.codebook[i] = kCodebook[i];\n";
    if (k.doubleQuant)
      os << "  for (int i = threadIdx.x; i < 256; i += blockDim.x)\n"
         << "    t.dynamicMap[i] = kDynamicMap[i];\n";
    os << "}\n\ninline void initTablesHost(Tables &t) {\n";
    if (codebook)
      os << "  for (int i = 0; i < 16; ++i)\n"
         << "    t.codebook[i] = kCodebookHost[i];\n";
    if (k.doubleQuant)
      os << "  for (int i = 0; i < 256; ++i)\n"
         << "    t.dynamicMap[i] = kDynamicMapHost[i];\n";
    os << "}\n";
  }
  os << "\n/// The absmax of block b of row o (QuantizedTensor::blockScale).\n"
     << "__host__ __device__ __forceinline__ float\n"
     << "blockScale(const MixQCudaWeight &w, const Tables &"
     << (k.doubleQuant ? "t" : "") << ", int o, int b) {\n"
     << "  const size_t idx = static_cast<size_t>(o) * kBlocksPerRow + b;\n";
  if (k.doubleQuant)
    os << "  return fmaRn(t.dynamicMap[w.scaleCodes[idx]],\n"
       << "               w.scaleAbsmax[idx / kDoubleQuantBlock], "
          "w.scaleOffset);\n";
  else
    os << "  return w.scales[idx];\n";
  os << "}\n";
}

static void writeBlockFormat(const KernelKey &k, raw_ostream &os) {
  const int bits = kernels::formatCodeBits(k.format);
  os << "constexpr int kBlock = " << k.block << ";\n"
     << "constexpr int kBlocksPerRow = " << ceilDiv(k.in, k.block) << ";\n"
     << "constexpr int kRowBytes = " << ceilDiv(k.in * bits, 8) << ";\n";
  if (k.doubleQuant)
    os << "constexpr int kDoubleQuantBlock = " << kernels::kDoubleQuantBlock
       << ";\n";
  os << "\n";
  writeBlockTables(k, os);
  os << "\n/// W[o][c] (dequantizeRow in kernels/Quant.cpp).\n"
     << "__host__ __device__ __forceinline__ float\n"
     << "dequantAt(const MixQCudaWeight &w, const Tables &t, int o, int c) {\n"
     << "  const uint8_t *row = w.codes + static_cast<size_t>(o) * "
        "kRowBytes;\n";
  if (k.format == QuantFormat::Int8)
    os << "  const float step = divRn(blockScale(w, t, o, c / kBlock), "
          "127.0f);\n"
       << "  return mulRn(static_cast<float>(static_cast<int8_t>(row[c])), "
          "step);\n";
  else
    os << "  const int byte = row[c >> 1];\n"
       << "  const int code = (c & 1) ? (byte & 0xF) : (byte >> 4);\n"
       << "  return mulRn(t.codebook[code], blockScale(w, t, o, c / "
          "kBlock));\n";
  os << "}\n";
}

static void writeTileFormat(const KernelKey &k, raw_ostream &os) {
  const int bits = kernels::formatCodeBits(k.format);
  os << "constexpr int kBits = " << bits << ";\n"
     << "constexpr int kRowBytes = " << ceilDiv(k.in * bits, 8) << ";\n"
     << "constexpr int kTileRows = " << k.tileRows << ";\n"
     << "constexpr int kTileCols = " << k.tileCols << ";\n"
     << "constexpr int kTileColCount = " << ceilDiv(k.in, k.tileCols)
     << ";\n\n"
     << "struct Tables {\n  float unused;\n};\n\n"
     << "__device__ __forceinline__ void loadTables(Tables &) {}\n\n"
     << "inline void initTablesHost(Tables &) {}\n\n"
     << "/// The kBits-bit code of element c of a row (MSB-first bit "
        "stream).\n"
     << "__host__ __device__ __forceinline__ int readCode(const uint8_t *row,\n"
     << "                                                  int c) "
        "{\n";
  if (bits == 4)
    os << "  static_assert(kBits == 4, \"two codes per byte\");\n"
       << "  const int byte = row[c >> 1];\n"
       << "  return (c & 1) ? (byte & 0xF) : (byte >> 4);\n";
  else if (bits == 2)
    os << "  static_assert(kBits == 2, \"four codes per byte\");\n"
       << "  return (row[c >> 2] >> (6 - 2 * (c & 3))) & 3;\n";
  else
    os << "  const int64_t bit = static_cast<int64_t>(c) * kBits;\n"
       << "  const int64_t byte = bit >> 3;\n"
       << "  const int shift = static_cast<int>(bit & 7);\n"
       << "  // A code spans two bytes when shift + kBits > 8.\n"
       << "  const unsigned word = (static_cast<unsigned>(row[byte]) << 8) |\n"
       << "                        (shift + kBits > 8 ? row[byte + 1] : 0u);\n"
       << "  return static_cast<int>((word >> (16 - shift - kBits)) &\n"
       << "                          ((1u << kBits) - 1));\n";
  os << "}\n\n"
     << "/// W[o][c] = alpha * code + beta of its tile (dequantizeRow in\n"
     << "/// kernels/Quant.cpp).\n"
     << "__host__ __device__ __forceinline__ float\n"
     << "dequantAt(const MixQCudaWeight &w, const Tables &, int o, int c) {\n"
     << "  const uint8_t *row = w.codes + static_cast<size_t>(o) * "
        "kRowBytes;\n"
     << "  const size_t tile =\n"
     << "      static_cast<size_t>(o / kTileRows) * kTileColCount + c / "
        "kTileCols;\n"
     << "  return fmaRn(w.scales[tile], "
        "static_cast<float>(readCode(row, c)),\n"
     << "               w.zeros[tile]);\n"
     << "}\n";
}

static void writePlainFormat(const KernelKey &k, raw_ostream &os) {
  const bool bf16 = k.format == QuantFormat::BF16;
  os << "constexpr int kRowBytes = " << k.in * (bf16 ? 2 : 4) << ";\n\n"
     << "struct Tables {\n  float unused;\n};\n\n"
     << "__device__ __forceinline__ void loadTables(Tables &) {}\n\n"
     << "inline void initTablesHost(Tables &) {}\n\n"
     << "/// W[o][c]; rows of `codes` are " << (bf16 ? 2 : 4)
     << "-byte aligned when `codes` is.\n"
     << "__host__ __device__ __forceinline__ float\n"
     << "dequantAt(const MixQCudaWeight &w, const Tables &, int o, int c) {\n"
     << "  const uint8_t *row = w.codes + static_cast<size_t>(o) * "
        "kRowBytes;\n";
  if (bf16)
    os << "  const unsigned h = reinterpret_cast<const uint16_t *>(row)[c];\n"
       << "  return bitsToFloat(h << 16);\n";
  else
    os << "  return reinterpret_cast<const float *>(row)[c];\n";
  os << "}\n";
}

static const char *formatDescription(QuantFormat f) {
  switch (f) {
  case QuantFormat::F32:
    return "f32 (unquantized)";
  case QuantFormat::BF16:
    return "bf16 (unquantized)";
  case QuantFormat::NF4:
    return "NF4 codes, absmax per row-local block";
  case QuantFormat::FP4:
    return "FP4 codes, absmax per row-local block";
  case QuantFormat::Int8:
    return "int8 symmetric absmax per row-local block";
  case QuantFormat::Int4:
  case QuantFormat::Int3:
  case QuantFormat::Int2:
    return "min-max asymmetric codes, (alpha, beta) per 2-D tile";
  }
  return "?";
}

static int adapterCode(AdapterKind k) {
  switch (k) {
  case AdapterKind::None:
    return 0;
  case AdapterKind::LoRA:
    return 1;
  case AdapterKind::AdaLoRA:
    llvm_unreachable("no kernel key is made for adalora");
  case AdapterKind::QBLoRA:
    return 2;
  case AdapterKind::QABLoRA:
    return 3;
  }
  return 0;
}

static int formatCode(QuantFormat f) { return static_cast<int>(f); }

//===----------------------------------------------------------------------===//
// Writers
//===----------------------------------------------------------------------===//

/// Correctly rounded operations for the decoders: intrinsics on the device
/// (so that nvcc cannot contract them into different FMAs), plain IEEE
/// operations on the host, where the same decoder is compiled for
/// mixq_NAME_dequantize_host.
static const char kRoundingHelpers[] = R"cuda(
__host__ __device__ __forceinline__ float mulRn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

__host__ __device__ __forceinline__ float divRn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}

__host__ __device__ __forceinline__ float fmaRn(float a, float b, float c) {
#ifdef __CUDA_ARCH__
  return __fmaf_rn(a, b, c);
#else
  return fmaf(a, b, c);
#endif
}

__host__ __device__ __forceinline__ float bitsToFloat(unsigned bits) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(bits);
#else
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
#endif
}

)cuda";

/// The generated files are self-contained (a variant directory is copied
/// around without this repository), so the headers they share with the
/// runtime are written into mixq_kernels.h: the kernels' C ABI
/// (include/mixq/Cuda/KernelABI.h) and the one launch spelling for nvcc and
/// the CPU emulator (include/mixq/Cuda/Launch.h), embedded at build time
/// (lib/CodeGen/CMakeLists.txt).
static const char kKernelABI[] =
#include "KernelABI.h.inc"
    ;
static const char kLaunchTemplate[] =
#include "Launch.h.inc"
    ;

static const char kKernelBody[] =
#include "CudaKernelBody.inc"
    ;

/// The namespace that holds a kernel's constants, kernels and helpers.
static std::string implNamespace(const KernelKey &k) {
  return "mixq_" + k.name() + "_impl";
}

/// The launcher prototypes of one kernel (no trailing newline).
static void writePrototypes(const KernelKey &k, raw_ostream &os,
                            bool definition) {
  std::string n = "mixq_" + k.name();
  const char *end = definition ? " {\n" : ";\n";
  os << "size_t " << n << "_workspace_bytes(int64_t m)" << end;
  if (definition)
    os << "  return " << implNamespace(k) << "::workspaceBytes(m);\n}\n\n";
  os << "void " << n
     << "_dequantize_host(const MixQCudaWeight *w, float *out)" << end;
  if (definition)
    os << "  " << implNamespace(k) << "::dequantizeHost(*w, out);\n}\n\n";
  os << "cudaError_t " << n << "_forward(const MixQCudaWeight *w,\n"
     << "    const MixQCudaAdapter *adapter, const float *x, const float *xa,\n"
     << "    int64_t m, float *y, void *workspace, cudaStream_t stream)"
     << end;
  if (definition)
    os << "  return " << implNamespace(k)
       << "::runForward(w, adapter, x, xa, m, y, workspace,\n"
       << "                                    stream);\n"
       << "}\n\n";
  os << "cudaError_t " << n << "_backward(const MixQCudaWeight *w,\n"
     << "    const MixQCudaAdapter *adapter, const float *x, const float *xa,\n"
     << "    const float *dy, int64_t m, const MixQCudaGrads *grads,\n"
     << "    void *workspace, cudaStream_t stream)" << end;
  if (definition)
    os << "  return " << implNamespace(k)
       << "::runBackward(w, adapter, x, xa, dy, m, grads,\n"
       << "                                     workspace, stream);\n}\n";
}

void mixq::codegen::writeKernelSource(const KernelKey &k, raw_ostream &os) {
  const std::string name = k.name();
  os << "//===- " << name
     << ".cu - generated by mixq-opt --mixq-emit-kernels ---===//\n"
     << "//\n"
     << "// Fused dequant + GEMM + adapter for W [out, in] = [" << k.out
     << ", " << k.in << "],\n"
     << "// stored as " << kernels::formatLabel(k.format) << ": "
     << formatDescription(k.format) << ";\n"
     << "// adapter " << adapterKindName(k.adapter) << ".\n"
     << "// Forward y = x W^T + s * adapter(xa); backward dX and the adapter\n"
     << "// gradients, as include/mixq/Kernels/FusedLinear.h. Do not edit:\n"
     << "// regenerate with mixq-opt --mixq-emit-kernels.\n"
     << "//\n"
     << "//===------------------------------------------------------------"
        "----------===//\n\n"
     << "#include \"mixq_kernels.h\"\n\n"
     << "#include <cuda_bf16.h>\n#include <mma.h>\n\n"
     << "#include <cmath>\n#include <cstdint>\n#include <cstring>\n\n"
     << "/// Everything of this kernel; a named namespace so that several\n"
     << "/// kernels can share one translation unit (all.cu).\n"
     << "namespace " << implNamespace(k) << " {\n\n"
     << "//===------------------------------------------------------------"
        "----------===//\n"
     << "// Specialisation\n"
     << "//===------------------------------------------------------------"
        "----------===//\n\n"
     << "constexpr int kOut = " << k.out << ";\n"
     << "constexpr int kIn = " << k.in << ";\n"
     << "/// 0 none, 1 LoRA, 2 Q-BLoRA, 3 QA-BLoRA.\n"
     << "constexpr int kAdapterKind = " << adapterCode(k.adapter) << ";\n"
     << "/// Inner dimension of A [kRank, kIn / kPool] and B [kOut / kRepeat, "
        "kRank].\n"
     << "constexpr int kRank = " << k.storedRank() << ";\n"
     << "constexpr int kPool = " << k.poolIn() << ";\n"
     << "constexpr int kRepeat = " << k.repeatOut() << ";\n";
  os << kRoundingHelpers;
  if (isBlockFormat(k.format))
    writeBlockFormat(k, os);
  else if (isIntTileFormat(k.format))
    writeTileFormat(k, os);
  else
    writePlainFormat(k, os);
  os << kKernelBody << "\n} // namespace " << implNamespace(k) << "\n\n";
  os << "//===------------------------------------------------------------"
        "----------===//\n"
     << "// Launchers (declared in mixq_kernels.h)\n"
     << "//===------------------------------------------------------------"
        "----------===//\n\n"
     << "extern \"C\" {\n\n";
  writePrototypes(k, os, /*definition=*/true);
  os << "\n} // extern \"C\"\n";
}

void mixq::codegen::writeKernelHeader(llvm::ArrayRef<KernelKey> keys,
                                      raw_ostream &os) {
  os << R"h(//===- mixq_kernels.h - launchers of the generated MixQ CUDA kernels ===//
//
// Generated by mixq-opt --mixq-emit-kernels; see docs/cuda.md. All pointers
// are device pointers, matrices are row-major f32, and every launcher only
// enqueues work on `stream` (cudaErrorInvalidValue for bad arguments, else
// the launch status).
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_KERNELS_H
#define MIXQ_KERNELS_H

#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

)h" << kKernelABI << R"h(
#ifdef __cplusplus
extern "C" {
#endif


/// The kernels of this variant (registry.cu), followed by an entry whose
/// name is NULL.
extern const MixQCudaKernel mixq_cuda_kernels[];
extern const int mixq_cuda_kernel_count;
/// The kernel called `name`, or NULL.
const MixQCudaKernel *mixq_cuda_find_kernel(const char *name);

)h";
  for (const KernelKey &k : keys) {
    os << "/* " << k.name() << " */\n";
    writePrototypes(k, os, /*definition=*/false);
    os << "\n";
  }
  os << "#ifdef __cplusplus\n} /* extern \"C\" */\n#endif\n\n"
     << kLaunchTemplate << "\n#endif /* MIXQ_KERNELS_H */\n";
}

void mixq::codegen::writeKernelRegistry(llvm::ArrayRef<KernelKey> keys,
                                        raw_ostream &os) {
  os << "//===- registry.cu - the kernels of this variant (generated) "
        "-----------===//\n\n"
     << "#include \"mixq_kernels.h\"\n\n#include <string.h>\n\n"
     << "extern \"C\" {\n\n"
     << "const MixQCudaKernel mixq_cuda_kernels[] = {\n";
  for (const KernelKey &k : keys) {
    std::string n = "mixq_" + k.name();
    os << llvm::formatv("    {{\"{0}\", {1}, {2}, {3}, {4}, {5}, {6}, {7}, "
                        "{8}, {9}, {10}, {11}, {12},\n",
                        k.name(), formatCode(k.format), k.block,
                        k.doubleQuant ? 1 : 0, k.tileRows, k.tileCols, k.out,
                        k.in, adapterCode(k.adapter), k.rank, k.storedRank(),
                        k.poolIn(), k.repeatOut())
       << "     &" << n << "_workspace_bytes, &" << n << "_forward, &" << n
       << "_backward, &" << n << "_dequantize_host},\n";
  }
  os << "    {NULL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, NULL, NULL, NULL, "
        "NULL}};\n\n"
     << "const int mixq_cuda_kernel_count = " << keys.size() << ";\n\n"
     << "const MixQCudaKernel *mixq_cuda_find_kernel(const char *name) {\n"
     << "  for (const MixQCudaKernel *k = mixq_cuda_kernels; k->name; ++k)\n"
     << "    if (strcmp(k->name, name) == 0)\n"
     << "      return k;\n"
     << "  return NULL;\n}\n\n} // extern \"C\"\n";
}

void mixq::codegen::writeKernelUnity(llvm::ArrayRef<KernelKey> keys,
                                     raw_ostream &os) {
  os << "//===- all.cu - every kernel of this variant in one translation unit "
        "-===//\n"
     << "//\n"
     << "// Generated. `nvcc -c all.cu` builds the whole variant (the headers "
        "are\n"
     << "// parsed once); each NAME.cu also compiles on its own.\n"
     << "//\n"
     << "//===------------------------------------------------------------"
        "----------===//\n\n";
  for (const KernelKey &k : keys)
    os << "#include \"" << k.name() << ".cu\"\n";
  os << "#include \"registry.cu\"\n";
}
