//===- AdaLoRA.h - SVD-form adapters and their rank allocator ---*- C++ -*-===//
//
// AdaLoRA (Zhang et al., ICLR 2023, "Adaptive Budget Allocation for
// Parameter-Efficient Fine-Tuning"): each adapted linear computes
//
//   y = W x + s * P diag(lambda) Q x,    s = alpha / ranknum,
//
// with Q [r, in] (PEFT lora_A), lambda [r] (lora_E) and P [out, r] (lora_B),
// ranknum = the initial rank r. The runtime runs it through the LoRA paths
// with A = Q and B_eff = P diag(lambda) formed before every forward; the
// gradient of B_eff is mapped back to dP = dB_eff diag(lambda) and
// dlambda_i = sum_o dB_eff[o, i] P[o, i].
//
// Training adds the orthogonality regulariser
//   (orth_reg / N) * sum over linears (||Q Q^T - I||_F^2 + ||P^T P - I||_F^2)
// (N = 2 * number of AdaLoRA linears, as PEFT averages over its matrices) and,
// after every optimizer step t (1-based), the rank allocator:
//   - sensitivity I = |w * dw| of every entry of P, lambda, Q, smoothed
//     Ibar = b1 Ibar + (1 - b1) I and its uncertainty
//     U = b2 U + (1 - b2) |I - Ibar|; score = Ibar * U;
//   - triplet i of a linear scores score(lambda_i) + mean_j score(Q[i, j])
//     + mean_o score(P[o, i]);
//   - the budget (total rank over all AdaLoRA linears) follows a cubic
//     schedule from the initial budget b0 = sum r to the target
//     bT = sum target_rank: b0 for t <= tinit, then
//     int((b0 - bT) (1 - (t - tinit) / (T - tfinal - tinit))^3 + bT),
//     bT from t >= T - tfinal;
//   - every delta_t steps (and at t = T - tfinal) the lambda entries outside
//     the top-`budget` triplets are zeroed; after T - tfinal the mask fixed at
//     T - tfinal is reapplied every step. So the final total rank is bT.
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_RUNTIME_ADALORA_H
#define MIXQ_RUNTIME_ADALORA_H

#include "mixq/Runtime/Model.h"

#include "llvm/Support/Error.h"
#include "llvm/Support/JSON.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mixq {
namespace runtime {

/// B_eff [out, r] = P [out, r] diag(lambda [r]).
void adaloraEffectiveB(const float *P, const float *lambda, int64_t out,
                       int64_t r, float *bEff);

/// Adds the gradient of B_eff = P diag(lambda) mapped to its factors:
/// dP += dBEff diag(lambda), dLambda_i += sum_o dBEff[o, i] P[o, i].
void adaloraMapGradient(const float *P, const float *lambda,
                        const float *dBEff, int64_t out, int64_t r, float *dP,
                        float *dLambda);

/// ||Q Q^T - I||_F^2 + ||P^T P - I||_F^2 of one linear; with dQ/dP non-null
/// adds `weight` times its gradient (4 (QQ^T - I) Q and 4 P (P^T P - I)).
double adaloraOrthPenalty(const float *Q, const float *P, int64_t r,
                          int64_t in, int64_t out, double weight, float *dQ,
                          float *dP);

/// Builds the parameters of an AdaLoRA linear (lin.spec.adapter.kind ==
/// AdaLoRA): Q, P ~ N(0, 0.02^2), lambda = 0 (PEFT's init), or the tensors
/// `<module>.lora_A`, `.lora_B`, `.lora_E` (+ `.ranknum`) given by
/// `adapters`, whose rank may be below the initial rank (a pruned export).
llvm::Error buildAdaLoRALinear(LinearLayer &lin, MemoryTracker &mem,
                               bool training, Rng &rng, AdapterFn adapters);

/// Forms lin.bEff from the current P and lambda (before a forward).
void refreshAdaLoRA(LinearLayer &lin);

/// The budget schedule's value after step t (1-based).
struct AdaLoRABudget {
  int64_t budget = 0;
  bool mask = false; ///< allocate (mask lambda) at this step
};
struct AdaLoRASchedule {
  int64_t initBudget = 0, targetBudget = 0;
  int64_t tinit = 0, tfinal = 0, deltaT = 1, totalSteps = 0;
};
AdaLoRABudget adaloraBudget(const AdaLoRASchedule &s, int64_t step);

/// A tensor of trainer state to checkpoint (name, data, count).
struct StateTensor {
  std::string name;
  float *data;
  int64_t size;
};

/// The rank allocator of a training run.
class AdaLoRAAllocator {
public:
  /// Null (and no error) when the model has no AdaLoRA linears. Errors when
  /// the linears disagree on the schedule or it does not fit `totalSteps`.
  static llvm::Expected<std::unique_ptr<AdaLoRAAllocator>>
  create(Model &model, int64_t totalSteps);

  /// Adds the orthogonality regulariser's gradient to dQ/dP; returns its
  /// value (already multiplied by orth_reg / N).
  double addRegularizer();
  /// After optimizer step t (1-based), gradients still in place.
  void update(int64_t step);

  const AdaLoRASchedule &schedule() const { return sched_; }
  int64_t currentBudget() const { return budget_; }
  /// Exponential averages and the triplet mask, for checkpoints.
  std::vector<StateTensor> state();
  /// After a checkpoint's state was loaded: re-apply the mask to lambda.
  void restored();

private:
  AdaLoRAAllocator(Model &model) : model_(model) {}
  void updateImportance();
  void maskToBudget(int64_t budget);
  void applyMask();

  struct Entry {
    LinearLayer *lin;
    Buffer<float> ipt[3], unc[3]; ///< Q, P, lambda
    Buffer<float> mask;           ///< [r], 1 = kept
  };
  Model &model_;
  AdaLoRASchedule sched_;
  double orthReg_ = 0.0, beta1_ = 0.85, beta2_ = 0.85;
  int64_t budget_ = 0;
  std::vector<Entry> entries_;
};

/// The AdaLoRA part of the metrics JSON ({} when there is none): per-linear
/// final ranks (kept triplets), total_rank, init_budget, target_budget.
llvm::json::Object adaloraMetrics(Model &model);

} // namespace runtime
} // namespace mixq

#endif // MIXQ_RUNTIME_ADALORA_H
