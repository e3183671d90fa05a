//===- StrategyImpl.h - helpers shared by the model-based strategies -*- C++ -*-===//

#ifndef MIXQ_SEARCH_STRATEGYIMPL_H
#define MIXQ_SEARCH_STRATEGYIMPL_H

#include "mixq/Search/Strategy.h"

#include <Eigen/Core>

namespace mixq::search {

llvm::Expected<std::unique_ptr<Strategy>>
createAutoMixQStrategy(const StrategySettings &settings);
llvm::Expected<std::unique_ptr<Strategy>>
createQRAdaptorStrategy(const StrategySettings &settings);

/// Feature matrix (one row per configuration).
Eigen::MatrixXd featureMatrix(const SearchSpace &s,
                              const std::vector<Configuration> &configs);

/// Up to `count` new configurations (not known, not repeated) made by
/// `make`; gives up after 20 * count draws.
template <typename Make>
std::vector<Configuration> freshConfigs(StrategyContext &ctx, int count,
                                        Make make) {
  std::vector<Configuration> out;
  std::set<std::string> seen = ctx.knownKeys;
  for (int tries = 0; int(out.size()) < count && tries < 20 * count + 20;
       ++tries) {
    Configuration c = make();
    if (seen.insert(configKey(c)).second)
      out.push_back(std::move(c));
  }
  return out;
}

/// Converts a JSON array of integers to numbers.
std::vector<int64_t> numbersOf(const llvm::json::Object &state,
                               llvm::StringRef key);
llvm::json::Array toJSONArray(const std::vector<int64_t> &v);

} // namespace mixq::search

#endif // MIXQ_SEARCH_STRATEGYIMPL_H
