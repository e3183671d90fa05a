//===- AdaLoRA.cpp - SVD-form adapters and their rank allocator -*- C++ -*-===//

#include "mixq/Runtime/AdaLoRA.h"

#include "llvm/Support/FormatVariadic.h"

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

using namespace llvm;

namespace mixq {
namespace runtime {

using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic,
                             Eigen::RowMajor>;
using MapC = Eigen::Map<const RowMat>;
using Map = Eigen::Map<RowMat>;

static Error adaError(const Twine &msg) {
  return createStringError(inconvertibleErrorCode(), msg);
}

//===----------------------------------------------------------------------===//
// Numerics
//===----------------------------------------------------------------------===//

void adaloraEffectiveB(const float *P, const float *lambda, int64_t out,
                       int64_t r, float *bEff) {
  for (int64_t o = 0; o < out; ++o)
    for (int64_t i = 0; i < r; ++i)
      bEff[o * r + i] = P[o * r + i] * lambda[i];
}

void adaloraMapGradient(const float *P, const float *lambda,
                        const float *dBEff, int64_t out, int64_t r, float *dP,
                        float *dLambda) {
  for (int64_t o = 0; o < out; ++o)
    for (int64_t i = 0; i < r; ++i) {
      float g = dBEff[o * r + i];
      dP[o * r + i] += g * lambda[i];
      dLambda[i] += g * P[o * r + i];
    }
}

double adaloraOrthPenalty(const float *Q, const float *P, int64_t r,
                          int64_t in, int64_t out, double weight, float *dQ,
                          float *dP) {
  MapC q(Q, r, in), p(P, out, r);
  RowMat gq = q * q.transpose(), gp = p.transpose() * p;
  gq.diagonal().array() -= 1.0f;
  gp.diagonal().array() -= 1.0f;
  double value = double(gq.squaredNorm()) + double(gp.squaredNorm());
  const float w4 = float(4.0 * weight);
  if (dQ)
    Map(dQ, r, in).noalias() += w4 * (gq * q);
  if (dP)
    Map(dP, out, r).noalias() += w4 * (p * gp);
  return value;
}

void refreshAdaLoRA(LinearLayer &lin) {
  adaloraEffectiveB(lin.B.data(), lin.E.data(), lin.out, lin.view.rank,
                    lin.bEff.data());
}

//===----------------------------------------------------------------------===//
// Building
//===----------------------------------------------------------------------===//

Error buildAdaLoRALinear(LinearLayer &lin, MemoryTracker &mem, bool training,
                         Rng &rng, AdapterFn adapters) {
  const AdapterSpec &spec = lin.spec.adapter;
  const std::string mod = peftModuleName(lin.layer, lin.role);
  auto given = [&](StringRef suffix) -> Expected<std::vector<float>> {
    return adapters(mod + "." + suffix.str());
  };
  auto gA = given("lora_A"), gB = given("lora_B"), gE = given("lora_E"),
       gN = given("ranknum");
  for (auto *g : {&gA, &gB, &gE, &gN})
    if (!*g)
      return g->takeError();
  int64_t r = spec.rank;
  double ranknum = double(spec.rank);
  const bool haveAll = !gA->empty() && !gB->empty() && !gE->empty();
  if (!haveAll && (!gA->empty() || !gB->empty() || !gE->empty()))
    return adaError("AdaLoRA adapter '" + mod +
                    "': lora_A, lora_B and lora_E must be given together");
  if (haveAll) {
    // A pruned export keeps only the surviving triplets: its rank is
    // lora_E's length; ranknum (the scale's denominator) stays the initial
    // rank.
    r = int64_t(gE->size());
    if (r <= 0 || r > spec.rank ||
        int64_t(gA->size()) != r * lin.in ||
        int64_t(gB->size()) != lin.out * r)
      return adaError(formatv("AdaLoRA adapter '{0}': lora_A has {1} values, "
                              "lora_B {2}, lora_E {3}; expected [r, {4}], "
                              "[{5}, r], [r, 1] with 0 < r <= {6}",
                              mod, gA->size(), gB->size(), gE->size(), lin.in,
                              lin.out, spec.rank));
    if (!gN->empty())
      ranknum = double((*gN)[0]);
  }
  if (r > std::min(lin.in, lin.out))
    return adaError(formatv("AdaLoRA adapter '{0}': rank {1} exceeds "
                            "min(out, in) = {2}",
                            mod, r, std::min(lin.in, lin.out)));
  lin.A = Buffer<float>(mem, MemCategory::Adapters, r * lin.in);
  lin.B = Buffer<float>(mem, MemCategory::Adapters, lin.out * r);
  lin.E = Buffer<float>(mem, MemCategory::Adapters, r);
  if (training) {
    lin.dA = Buffer<float>(mem, MemCategory::Gradients, r * lin.in);
    lin.dB = Buffer<float>(mem, MemCategory::Gradients, lin.out * r);
    lin.dE = Buffer<float>(mem, MemCategory::Gradients, r);
  }
  lin.bEff = Buffer<float>(mem, MemCategory::Workspace, lin.out * r);
  lin.rankMask = Buffer<float>(mem, MemCategory::Workspace, r);
  for (int64_t i = 0; i < r; ++i)
    lin.rankMask[i] = 1.0f;
  if (haveAll) {
    std::memcpy(lin.A.data(), gA->data(), sizeof(float) * gA->size());
    std::memcpy(lin.B.data(), gB->data(), sizeof(float) * gB->size());
    std::memcpy(lin.E.data(), gE->data(), sizeof(float) * gE->size());
  } else {
    // PEFT's AdaLoRA init: lambda = 0, P and Q ~ N(0, 0.02^2).
    for (int64_t i = 0; i < r * lin.in; ++i)
      lin.A[i] = 0.02f * rng.normal();
    for (int64_t i = 0; i < lin.out * r; ++i)
      lin.B[i] = 0.02f * rng.normal();
  }
  lin.view = kernels::AdapterView();
  lin.view.kind = AdapterKind::LoRA;
  lin.view.rank = r;
  lin.view.scale = ranknum > 0 ? float(spec.alpha / ranknum) : 0.0f;
  lin.view.A = lin.A.data();
  lin.view.B = lin.bEff.data();
  refreshAdaLoRA(lin);
  return Error::success();
}

//===----------------------------------------------------------------------===//
// Budget schedule
//===----------------------------------------------------------------------===//

AdaLoRABudget adaloraBudget(const AdaLoRASchedule &s, int64_t step) {
  AdaLoRABudget b;
  const int64_t last = s.totalSteps - s.tfinal; // the forced allocation
  if (step >= last) {
    b.budget = s.targetBudget;
    b.mask = true;
    return b;
  }
  if (step <= s.tinit) {
    b.budget = s.initBudget;
    return b;
  }
  double mul = 1.0 - double(step - s.tinit) / double(last - s.tinit);
  b.budget = int64_t(double(s.initBudget - s.targetBudget) * mul * mul * mul +
                     double(s.targetBudget));
  b.mask = step % s.deltaT == 0;
  return b;
}

//===----------------------------------------------------------------------===//
// Allocator
//===----------------------------------------------------------------------===//

Expected<std::unique_ptr<AdaLoRAAllocator>>
AdaLoRAAllocator::create(Model &model, int64_t totalSteps) {
  std::unique_ptr<AdaLoRAAllocator> a(new AdaLoRAAllocator(model));
  const AdapterSpec *first = nullptr;
  for (LinearLayer *lin : model.linears()) {
    if (!lin->isAdaLoRA())
      continue;
    const AdapterSpec &s = lin->spec.adapter;
    if (!first) {
      first = &s;
    } else if (s.tinit != first->tinit || s.tfinal != first->tfinal ||
               s.deltaT != first->deltaT || s.beta1 != first->beta1 ||
               s.beta2 != first->beta2 || s.orthReg != first->orthReg) {
      return adaError("AdaLoRA: every adalora linear must have the same "
                      "tinit, tfinal, delta_t, beta1, beta2 and orth_reg ('" +
                      lin->weightName + "' differs)");
    }
    if (lin->view.rank != s.rank)
      return adaError("AdaLoRA: '" + lin->weightName +
                      "' was loaded already pruned; it cannot be trained "
                      "again");
    Entry e;
    e.lin = lin;
    MemoryTracker &mem = model.memory();
    const int64_t sizes[3] = {lin->A.size(), lin->B.size(), lin->E.size()};
    for (int k = 0; k < 3; ++k) {
      e.ipt[k] = Buffer<float>(mem, MemCategory::Optimizer, sizes[k]);
      e.unc[k] = Buffer<float>(mem, MemCategory::Optimizer, sizes[k]);
    }
    a->sched_.initBudget += s.rank;
    a->sched_.targetBudget += s.targetRank;
    a->entries_.push_back(std::move(e));
  }
  if (!first)
    return nullptr;
  AdaLoRASchedule &sc = a->sched_;
  sc.tinit = first->tinit;
  sc.tfinal = first->tfinal;
  sc.deltaT = first->deltaT;
  sc.totalSteps = totalSteps;
  a->beta1_ = first->beta1;
  a->beta2_ = first->beta2;
  a->orthReg_ = first->orthReg;
  a->budget_ = sc.initBudget;
  if (sc.tinit + sc.tfinal >= totalSteps)
    return adaError(formatv("AdaLoRA: tinit ({0}) + tfinal ({1}) must be "
                            "below the number of optimizer steps ({2})",
                            sc.tinit, sc.tfinal, totalSteps));
  return std::move(a);
}

double AdaLoRAAllocator::addRegularizer() {
  if (orthReg_ == 0.0)
    return 0.0;
  const double w = orthReg_ / double(2 * entries_.size());
  double sum = 0.0;
  for (Entry &e : entries_) {
    LinearLayer &l = *e.lin;
    sum += adaloraOrthPenalty(l.A.data(), l.B.data(), l.view.rank, l.in,
                              l.out, w, l.dA.data(), l.dB.data());
  }
  return w * sum;
}

void AdaLoRAAllocator::updateImportance() {
  const float b1 = float(beta1_), b2 = float(beta2_);
  for (Entry &e : entries_) {
    LinearLayer &l = *e.lin;
    const Buffer<float> *ps[3] = {&l.A, &l.B, &l.E};
    const Buffer<float> *gs[3] = {&l.dA, &l.dB, &l.dE};
    for (int k = 0; k < 3; ++k)
      for (int64_t j = 0, n = ps[k]->size(); j < n; ++j) {
        float ipt = std::fabs((*ps[k])[j] * (*gs[k])[j]);
        float &avg = e.ipt[k][j];
        avg = b1 * avg + (1.0f - b1) * ipt;
        e.unc[k][j] = b2 * e.unc[k][j] + (1.0f - b2) * std::fabs(ipt - avg);
      }
  }
}

void AdaLoRAAllocator::maskToBudget(int64_t budget) {
  // Triplet scores, in a fixed (linear, index) order.
  std::vector<std::pair<double, int64_t>> scores;
  std::vector<int64_t> offset;
  for (Entry &e : entries_) {
    LinearLayer &l = *e.lin;
    const int64_t r = l.view.rank;
    offset.push_back(int64_t(scores.size()));
    for (int64_t i = 0; i < r; ++i) {
      double q = 0.0, p = 0.0;
      for (int64_t j = 0; j < l.in; ++j)
        q += double(e.ipt[0][i * l.in + j]) * double(e.unc[0][i * l.in + j]);
      for (int64_t o = 0; o < l.out; ++o)
        p += double(e.ipt[1][o * r + i]) * double(e.unc[1][o * r + i]);
      double s = double(e.ipt[2][i]) * double(e.unc[2][i]) +
                 q / double(l.in) + p / double(l.out);
      scores.push_back({s, int64_t(scores.size())});
    }
  }
  // Keep exactly `budget` triplets: the highest scores, ties to the lower
  // index (PEFT thresholds at the k-th value, which can drop more on ties).
  std::vector<std::pair<double, int64_t>> order = scores;
  std::sort(order.begin(), order.end(), [](const auto &a, const auto &b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  std::vector<uint8_t> keep(scores.size(), 0);
  for (int64_t k = 0; k < std::min<int64_t>(budget, int64_t(order.size()));
       ++k)
    keep[order[k].second] = 1;
  for (size_t n = 0; n < entries_.size(); ++n) {
    LinearLayer &l = *entries_[n].lin;
    for (int64_t i = 0; i < l.view.rank; ++i)
      l.rankMask[i] = keep[offset[n] + i] ? 1.0f : 0.0f;
  }
  applyMask();
}

void AdaLoRAAllocator::applyMask() {
  for (Entry &e : entries_)
    for (int64_t i = 0; i < e.lin->view.rank; ++i)
      if (e.lin->rankMask[i] == 0.0f)
        e.lin->E[i] = 0.0f;
}

void AdaLoRAAllocator::update(int64_t step) {
  const int64_t last = sched_.totalSteps - sched_.tfinal;
  if (step > last) {
    // Final fine-tuning: the mask fixed at T - tfinal.
    budget_ = sched_.targetBudget;
    applyMask();
    return;
  }
  if (step < last)
    updateImportance();
  AdaLoRABudget b = adaloraBudget(sched_, step);
  budget_ = b.budget;
  if (b.mask)
    maskToBudget(b.budget);
}

std::vector<StateTensor> AdaLoRAAllocator::state() {
  std::vector<StateTensor> st;
  for (size_t n = 0; n < entries_.size(); ++n) {
    Entry &e = entries_[n];
    for (int k = 0; k < 3; ++k) {
      st.push_back({formatv("adalora.{0}.ipt{1}", n, k).str(), e.ipt[k].data(),
                    e.ipt[k].size()});
      st.push_back({formatv("adalora.{0}.unc{1}", n, k).str(), e.unc[k].data(),
                    e.unc[k].size()});
    }
    st.push_back({formatv("adalora.{0}.mask", n).str(), e.lin->rankMask.data(),
                  e.lin->rankMask.size()});
  }
  return st;
}

void AdaLoRAAllocator::restored() { applyMask(); }

//===----------------------------------------------------------------------===//
// Metrics
//===----------------------------------------------------------------------===//

json::Object adaloraMetrics(Model &model) {
  json::Object ranks;
  int64_t total = 0, init = 0, target = 0;
  bool any = false;
  for (LinearLayer *lin : model.linears()) {
    if (!lin->isAdaLoRA())
      continue;
    any = true;
    int64_t kept = 0;
    for (int64_t i = 0; i < lin->rankMask.size(); ++i)
      kept += lin->rankMask[i] != 0.0f;
    std::string key =
        peftModuleName(lin->layer, lin->role).substr(strlen("base_model."
                                                            "model."));
    ranks[key] = kept;
    total += kept;
    init += lin->spec.adapter.rank;
    target += lin->spec.adapter.targetRank;
  }
  if (!any)
    return {};
  return json::Object{{"ranks", std::move(ranks)},
                      {"total_rank", total},
                      {"init_budget", init},
                      {"target_budget", target}};
}

} // namespace runtime
} // namespace mixq
