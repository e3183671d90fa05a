//===- Space.h - the per-layer (bits, rank, adapter) search space -*- C++ -*-===//
//
// A search space is a number of decoder layers and, per layer, the options
// for the quantization bit-width, the LoRA rank and (when more than one is
// allowed) the adapter kind. A configuration picks one option per gene; it
// is written as the MixQ config JSON (version 1, see
// include/mixq/Config/VariantConfig.h) with one entry per layer and no
// "role", so the entry applies to the seven projections of that layer.
//
// Space JSON:
//   {"layers": 32, "bits": [4, 8], "ranks": [2, 4, 8, 16],
//    "adapters": ["lora"], "model": "...", "task": "...",
//    "default": {...extra default fields...}, "alpha_ratio": 2}
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_SEARCH_SPACE_H
#define MIXQ_SEARCH_SPACE_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/JSON.h"

#include <Eigen/Core>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace mixq::search {

/// Gene kinds within one layer, in gene order.
enum class GeneKind { Bits = 0, Rank = 1, Adapter = 2 };

struct SearchSpace {
  int64_t numLayers = 0;
  std::vector<int64_t> bits;         ///< ascending
  std::vector<int64_t> ranks;        ///< ascending
  std::vector<std::string> adapters; ///< at least one
  std::string model;
  std::string task;
  llvm::json::Object defaults; ///< extra fields of the config's "default"
  double alphaRatio = 2.0;     ///< lora_alpha = alphaRatio * rank
  std::string origin;          ///< file name for diagnostics

  /// Genes per layer: bits and rank, plus adapter if more than one.
  int genesPerLayer() const { return adapters.size() > 1 ? 3 : 2; }
  int numGenes() const { return static_cast<int>(numLayers) * genesPerLayer(); }
  GeneKind geneKind(int gene) const {
    return static_cast<GeneKind>(gene % genesPerLayer());
  }
  /// Number of options of `gene`.
  int optionCount(int gene) const;
  /// log10 of the number of configurations.
  double log10Size() const;

  static llvm::Expected<SearchSpace> fromJSON(const llvm::json::Value &v,
                                              llvm::StringRef origin);
  static llvm::Expected<SearchSpace> fromFile(llvm::StringRef path);
  /// A space for a Hugging Face model directory (its config.json's
  /// num_hidden_layers) with the given options.
  static llvm::Expected<SearchSpace>
  fromModelDir(llvm::StringRef dir, std::vector<int64_t> bits,
               std::vector<int64_t> ranks);
  llvm::json::Value toJSON() const;
};

/// One option index per gene.
struct Configuration {
  std::vector<int> genes;
  bool operator==(const Configuration &o) const { return genes == o.genes; }
  bool operator<(const Configuration &o) const { return genes < o.genes; }
};

int64_t layerBits(const SearchSpace &s, const Configuration &c, int layer);
int64_t layerRank(const SearchSpace &s, const Configuration &c, int layer);
llvm::StringRef layerAdapter(const SearchSpace &s, const Configuration &c,
                             int layer);

/// Checks that every gene is within its option range.
llvm::Error validate(const SearchSpace &s, const Configuration &c);

/// The same options for every layer.
Configuration uniformConfig(const SearchSpace &s, int bitsIdx, int rankIdx,
                            int adapterIdx = 0);
/// Every gene uniformly at random.
Configuration randomConfig(const SearchSpace &s, std::mt19937_64 &rng);

/// A compact, unique text form ("b1r3,b0r2,..."), used to deduplicate.
std::string configKey(const Configuration &c);

/// Features for surrogate models: option index / (count - 1) per gene.
Eigen::VectorXd features(const SearchSpace &s, const Configuration &c);

/// The MixQ config JSON (version 1).
llvm::json::Value toConfigJSON(const SearchSpace &s, const Configuration &c);
/// Reads a MixQ config JSON back into the space. Errors if an entry names a
/// single projection with settings that differ from the rest of its layer,
/// or a value that is not one of the space's options.
llvm::Expected<Configuration> configFromJSON(const SearchSpace &s,
                                             const llvm::json::Value &v,
                                             llvm::StringRef origin);
llvm::Expected<Configuration> configFromFile(const SearchSpace &s,
                                             llvm::StringRef path);
/// PEFT adapter_config fields: {"r", "lora_alpha", "target_modules",
/// "rank_pattern", "alpha_pattern"}, one pattern key per projection.
llvm::json::Value toPeftRankPattern(const SearchSpace &s,
                                    const Configuration &c);

/// Reads a JSON file with a clear error naming it.
llvm::Expected<llvm::json::Value> readJSONFile(llvm::StringRef path);

} // namespace mixq::search

#endif // MIXQ_SEARCH_SPACE_H
