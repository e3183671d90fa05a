//===- Generate.cpp - autoregressive text generation -------------*- C++ -*-===//

#include "mixq/Runtime/Generate.h"

#include <algorithm>
#include <cmath>

namespace mixq {
namespace runtime {

static int sample(const std::vector<float> &logits, float temperature,
                  Rng &rng) {
  if (temperature <= 0.0f)
    return int(std::max_element(logits.begin(), logits.end()) -
               logits.begin());
  float mx = *std::max_element(logits.begin(), logits.end());
  std::vector<double> p(logits.size());
  double sum = 0.0;
  for (size_t i = 0; i < p.size(); ++i)
    sum += p[i] = std::exp(double(logits[i] - mx) / temperature);
  double r = double(rng.uniform()) * sum, acc = 0.0;
  for (size_t i = 0; i < p.size(); ++i) {
    acc += p[i];
    if (r < acc)
      return int(i);
  }
  return int(p.size()) - 1;
}

std::vector<int> generate(Model &model, const std::vector<int> &prompt,
                          const GenerateOptions &opts, Rng &rng,
                          std::vector<float> *firstLogits) {
  const int64_t maxLen = model.config().maxSeqLen;
  int64_t budget = std::min<int64_t>(opts.maxTokens,
                                     std::max<int64_t>(0, maxLen -
                                                       int64_t(prompt.size())));
  KVCache cache = model.makeCache(int64_t(prompt.size()) + budget);
  std::vector<float> logits(model.config().vocabSize);
  std::vector<int> out;
  if (prompt.empty() || budget == 0)
    return out;
  int64_t last = int64_t(prompt.size()) - 1;
  model.forwardInfer(prompt, cache, {last}, logits.data());
  if (firstLogits)
    *firstLogits = logits;
  for (int64_t step = 0; step < budget; ++step) {
    int next = sample(logits, opts.temperature, rng);
    if (opts.stopAtEos && (next == 1 || next == 2))
      break;
    out.push_back(next);
    if (step + 1 == budget)
      break;
    model.forwardInfer({next}, cache, {0}, logits.data());
  }
  return out;
}

} // namespace runtime
} // namespace mixq
