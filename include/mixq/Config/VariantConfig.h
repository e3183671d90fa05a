//===- VariantConfig.h - the config JSON contract (search -> compiler) -*- C++ -*-===//
//
// Per layer/projection quantization and adapter decisions, as written by the
// search and read by `--mixq-assign-config` and the runtime. Format (version 1,
// see docs/contracts.md):
//
//   {"version": 1, "model": "...", "task": "babi:qa1",
//    "default": {"format": "nf4", "block": 64, "double_quant": true,
//                "adapter": "lora", "rank": 8, "alpha": 16, "dropout": 0.05,
//                "init": "gaussian"},
//    "layers": [{"layer": 3, "role": "q_proj", "bits": 8, "rank": 4}, ...]}
//
// `bits` is shorthand for a format (2/3/4/8/16/32 -> int2/int3/nf4/int8/bf16/
// f32). Entries apply in order, later ones override earlier ones field by
// field; an entry without "layer" applies to every layer, without "role" to
// the seven projections (lm_head only when named). MLIR-free.
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_CONFIG_VARIANTCONFIG_H
#define MIXQ_CONFIG_VARIANTCONFIG_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/JSON.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mixq {

enum class QuantFormat { F32, BF16, NF4, FP4, Int8, Int4, Int3, Int2 };
llvm::StringRef quantFormatName(QuantFormat f);
std::optional<QuantFormat> parseQuantFormat(llvm::StringRef s);
/// The format `bits` stands for: 2/3 -> int2/int3, 4 -> nf4, 8 -> int8,
/// 16 -> bf16, 32 -> f32.
std::optional<QuantFormat> formatForBits(int64_t bits);
int64_t quantFormatBits(QuantFormat f);
bool isIntTileFormat(QuantFormat f); ///< int4/int3/int2 (2-D tile)

struct QuantSpec {
  QuantFormat format = QuantFormat::F32;
  int64_t block = 64;        ///< 1-D block for nf4/fp4/int8
  bool doubleQuant = false;  ///< nf4/fp4 only
  /// int4/int3/int2 tiles over W [out, in]: tileRows output features by
  /// tileCols input features share one (alpha, beta). JSON: "tile": [rows,
  /// cols] or "tile": cols (rows = 1).
  int64_t tileRows = 1;
  int64_t tileCols = 64;
  bool operator==(const QuantSpec &o) const;
};

enum class AdapterKind { None, LoRA, QBLoRA, QABLoRA, AdaLoRA };
llvm::StringRef adapterKindName(AdapterKind k);
enum class AdapterInit { Gaussian, LoftQ, PiSSA };
llvm::StringRef adapterInitName(AdapterInit i);

struct AdapterSpec {
  AdapterKind kind = AdapterKind::None;
  int64_t rank = 0;
  double alpha = 0.0;
  double dropout = 0.0;
  AdapterInit init = AdapterInit::Gaussian;
  int64_t initIters = 1;   ///< LoftQ alternations
  /// Q-BLoRA: AvgPool(lambda) on the input, rank*lambda, repeat_interleave
  /// (lambda) on the output. JSON "lambda": n.
  int64_t lambda = 1;
  /// QA-BLoRA: H is [in/lambdaCols, out/lambdaRows]; (lambdaRows, lambdaCols)
  /// = (paper's lambda2 over outputs, lambda1 over inputs) must equal the
  /// quant tile (tileRows, tileCols). JSON "lambda": [rows, cols].
  int64_t lambdaRows = 1;
  int64_t lambdaCols = 1;
  /// AdaLoRA (SVD form W + s * P diag(lambda) Q, `rank` = initial rank):
  /// the rank this linear contributes to the total target budget, and the
  /// rank allocator's schedule (PEFT's AdaLoraConfig names and defaults:
  /// target_r 8, tinit 0, tfinal 0, deltaT 1, beta1 = beta2 = 0.85,
  /// orth_reg_weight 0.5). JSON "target_rank", "tinit", "tfinal",
  /// "delta_t", "beta1", "beta2", "orth_reg".
  int64_t targetRank = 8;
  int64_t tinit = 0;
  int64_t tfinal = 0;
  int64_t deltaT = 1;
  double beta1 = 0.85;
  double beta2 = 0.85;
  double orthReg = 0.5;
  bool operator==(const AdapterSpec &o) const;
};

struct LinearSpec {
  QuantSpec quant;
  AdapterSpec adapter;
};

/// The config JSON fields that describe `spec` completely (format, block,
/// double_quant, tile, adapter, rank, alpha, dropout, init, init_iters,
/// lambda, and AdaLoRA's target_rank and schedule), for an entry that pins
/// one linear.
llvm::json::Object linearSpecToJSON(const LinearSpec &spec);

/// One "layers" entry: fields present override, absent ones inherit.
struct ConfigEntry {
  std::optional<int64_t> layer;
  std::optional<std::string> role;
  llvm::json::Object fields;
};

struct VariantConfig {
  int64_t version = 1;
  std::string model;
  std::string task;
  llvm::json::Object defaults;
  std::vector<ConfigEntry> entries;

  static llvm::Expected<VariantConfig> fromFile(llvm::StringRef path);
  static llvm::Expected<VariantConfig> fromJSON(const llvm::json::Value &v,
                                                llvm::StringRef origin);
  llvm::json::Value toJSON() const;

  /// The spec for (layer, role): defaults, then every matching entry in
  /// order. Errors on unknown keys/values, naming `origin`.
  llvm::Expected<LinearSpec> resolve(int64_t layer, llvm::StringRef role) const;
  /// True if some entry targets (layer, role) or the default applies to it.
  bool configures(int64_t layer, llvm::StringRef role) const;

  std::string origin; ///< file name used in diagnostics
};

} // namespace mixq

#endif // MIXQ_CONFIG_VARIANTCONFIG_H
