//===- Generate.h - autoregressive text generation ---------------*- C++ -*-===//

#ifndef MIXQ_RUNTIME_GENERATE_H
#define MIXQ_RUNTIME_GENERATE_H

#include "mixq/Runtime/Model.h"
#include "mixq/Runtime/Random.h"

#include <vector>

namespace mixq {
namespace runtime {

struct GenerateOptions {
  int64_t maxTokens = 64;
  float temperature = 0.0f; ///< 0 = greedy (argmax)
  bool stopAtEos = true;    ///< also stops at BOS, as llama2.c does
};

/// Continues `prompt` (which should start with BOS) and returns the new
/// tokens. Uses a KV cache; sampling draws from `rng`. `firstLogits`, when
/// given, receives the logits after the prompt (vocab floats).
std::vector<int> generate(Model &model, const std::vector<int> &prompt,
                          const GenerateOptions &opts, Rng &rng,
                          std::vector<float> *firstLogits = nullptr);

} // namespace runtime
} // namespace mixq

#endif // MIXQ_RUNTIME_GENERATE_H
