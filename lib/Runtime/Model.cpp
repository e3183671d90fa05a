//===- Model.cpp - a LLaMA-family decoder with adapters, on the CPU -*- C++ -*-===//

#include "mixq/Runtime/Model.h"
#include "mixq/Config/MemoryModel.h"
#include "mixq/Runtime/AdaLoRA.h"
#include "mixq/Runtime/Device.h"
#include "mixq/Runtime/Ops.h"

#include "llvm/Support/ErrorHandling.h"
#include "llvm/Support/FormatVariadic.h"

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstring>

using namespace llvm;

namespace mixq {
namespace runtime {

using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic,
                             Eigen::RowMajor>;
using MapC = Eigen::Map<const RowMat>;
using Map = Eigen::Map<RowMat>;

/// Buffers whose contents are overwritten before being read.
static constexpr Uninitialized U{};

/// Kernel errors after build-time validation are internal bugs.
static void check(Error e, const char *what) {
  if (e)
    report_fatal_error(Twine(what) + ": " + toString(std::move(e)));
}

static Error modelError(const Twine &msg) {
  return createStringError(inconvertibleErrorCode(), msg);
}

std::string hfWeightName(int64_t layer, StringRef role) {
  if (layer < 0)
    return "lm_head.weight";
  bool attn = role == "q_proj" || role == "k_proj" || role == "v_proj" ||
              role == "o_proj";
  return formatv("model.layers.{0}.{1}.{2}.weight", layer,
                 attn ? "self_attn" : "mlp", role)
      .str();
}

std::string peftModuleName(int64_t layer, StringRef role) {
  if (layer < 0)
    return "base_model.model.lm_head";
  std::string w = hfWeightName(layer, role);
  return "base_model.model." + w.substr(0, w.size() - strlen(".weight"));
}

//===----------------------------------------------------------------------===//
// Batch
//===----------------------------------------------------------------------===//

void Batch::addSequence(ArrayRef<int> toks, ArrayRef<int> tgts) {
  tokens.insert(tokens.end(), toks.begin(), toks.end());
  targets.insert(targets.end(), tgts.begin(), tgts.end());
  seqStart.push_back(int64_t(tokens.size()));
}

int64_t Batch::numTargets() const {
  return std::count_if(targets.begin(), targets.end(),
                       [](int t) { return t >= 0; });
}

int64_t Batch::maxLength() const {
  int64_t m = 0;
  for (int64_t s = 0; s < numSequences(); ++s)
    m = std::max(m, seqStart[s + 1] - seqStart[s]);
  return m;
}

//===----------------------------------------------------------------------===//
// LinearLayer
//===----------------------------------------------------------------------===//

std::vector<std::pair<Buffer<float> *, Buffer<float> *>>
LinearLayer::parameters() {
  std::vector<std::pair<Buffer<float> *, Buffer<float> *>> ps;
  if (!A.empty() && !dA.empty())
    ps.push_back({&A, &dA});
  if (!B.empty() && !dB.empty())
    ps.push_back({&B, &dB});
  if (!H.empty() && !dH.empty())
    ps.push_back({&H, &dH});
  if (!E.empty() && !dE.empty())
    ps.push_back({&E, &dE});
  return ps;
}

std::vector<float> LinearLayer::baseWeight() const {
  std::vector<float> w(size_t(out * in));
  if (isDense())
    std::memcpy(w.data(), dense.data(), sizeof(float) * w.size());
  else
    kernels::dequantize(*quant, w.data());
  return w;
}

//===----------------------------------------------------------------------===//
// Building
//===----------------------------------------------------------------------===//

static uint64_t linearSeed(uint64_t seed, int64_t layer, StringRef role) {
  uint64_t h = seed * 0x9E3779B97F4A7C15ull + uint64_t(layer + 7) * 1315423911u;
  for (char c : role)
    h = (h ^ uint64_t(static_cast<unsigned char>(c))) * 0x100000001B3ull;
  return h;
}

Error Model::buildLinear(LinearLayer &lin, const LinearSpec &spec,
                         WeightFn weights, AdapterFn adapters) {
  lin.spec = spec;
  const AdapterKind kind = spec.adapter.kind;
  // A packed base the compiler materialised replaces quantizing the
  // checkpoint's f32 weight.
  if (opts_.prequantized && !runsDense(spec)) {
    auto pq = opts_.prequantized(lin.weightName, lin.out, lin.in, spec.quant);
    if (!pq)
      return pq.takeError();
    if (*pq) {
      lin.quant = std::move(*pq);
      lin.quantBytes = Reservation(mem_, MemCategory::Weights,
                                   lin.quant->storageBytes());
    }
  }
  if (!lin.quant) {
    auto w = weights(lin.weightName);
    if (!w)
      return w.takeError();
    if (int64_t(w->size()) != lin.in * lin.out)
      return modelError(formatv("tensor '{0}' has {1} values, expected "
                                "[{2}, {3}]",
                                lin.weightName, w->size(), lin.out, lin.in));
    if (spec.quant.format == QuantFormat::F32 &&
        (kind == AdapterKind::None || kind == AdapterKind::LoRA ||
         kind == AdapterKind::AdaLoRA)) {
      lin.dense = Buffer<float>(mem_, MemCategory::Weights, lin.in * lin.out);
      std::memcpy(lin.dense.data(), w->data(), sizeof(float) * w->size());
    } else {
      auto q = kernels::quantize(w->data(), lin.out, lin.in, spec.quant);
      if (!q)
        return modelError("quantizing '" + lin.weightName +
                          "': " + toString(q.takeError()));
      lin.quant = std::make_unique<kernels::QuantizedTensor>(std::move(*q));
      lin.quantBytes = Reservation(mem_, MemCategory::Weights,
                                   lin.quant->storageBytes());
    }
  }
  if (kind == AdapterKind::None)
    return Error::success();
  if (kind == AdapterKind::AdaLoRA) {
    Rng rng(linearSeed(opts_.seed, lin.layer, lin.role));
    return buildAdaLoRALinear(lin, mem_, opts_.training, rng, adapters);
  }

  lin.view = kernels::adapterViewFromSpec(spec.adapter);
  auto shapes = kernels::adapterShapes(lin.view, lin.in, lin.out);
  if (!shapes)
    return modelError("adapter of '" + lin.weightName +
                      "': " + toString(shapes.takeError()));
  std::string peft = peftModuleName(lin.layer, lin.role);
  Rng rng(linearSeed(opts_.seed, lin.layer, lin.role));
  auto makeParam = [&](Buffer<float> &p, Buffer<float> &g, int64_t rows,
                       int64_t cols, StringRef suffix,
                       bool gaussian) -> Error {
    if (rows * cols == 0)
      return Error::success();
    p = Buffer<float>(mem_, MemCategory::Adapters, rows * cols);
    if (opts_.training)
      g = Buffer<float>(mem_, MemCategory::Gradients, rows * cols);
    std::string name = (peft + "." + suffix + ".weight").str();
    auto given = adapters(name);
    if (!given)
      return given.takeError();
    if (!given->empty()) {
      if (int64_t(given->size()) != rows * cols)
        return modelError(formatv("adapter tensor '{0}' has {1} values, "
                                  "expected [{2}, {3}]",
                                  name, given->size(), rows, cols));
      std::memcpy(p.data(), given->data(), sizeof(float) * given->size());
      return Error::success();
    }
    if (spec.adapter.init != AdapterInit::Gaussian)
      return modelError(formatv("adapter '{0}' uses init '{1}', which needs "
                                "materialized adapters in the variant "
                                "(mixq-opt --mixq-init-adapters)",
                                peft, adapterInitName(spec.adapter.init)));
    if (gaussian) {
      // PEFT init_lora_weights="gaussian": A ~ N(0, 1/r), B = 0.
      float std = 1.0f / float(std::max<int64_t>(spec.adapter.rank, 1));
      for (int64_t i = 0; i < rows * cols; ++i)
        p[i] = std * rng.normal();
    }
    return Error::success();
  };
  if (Error e = makeParam(lin.A, lin.dA, shapes->aRows, shapes->aCols,
                          "lora_A", true))
    return e;
  if (Error e = makeParam(lin.B, lin.dB, shapes->bRows, shapes->bCols,
                          "lora_B", false))
    return e;
  if (Error e = makeParam(lin.H, lin.dH, shapes->hRows, shapes->hCols,
                          "lora_H", false))
    return e;
  lin.view.A = lin.A.empty() ? nullptr : lin.A.data();
  lin.view.B = lin.B.empty() ? nullptr : lin.B.data();
  lin.view.H = lin.H.empty() ? nullptr : lin.H.data();
  return Error::success();
}

static Error loadInto(Buffer<float> &buf, WeightFn weights, StringRef name,
                      int64_t count) {
  auto w = weights(name);
  if (!w)
    return w.takeError();
  if (int64_t(w->size()) != count)
    return modelError(formatv("tensor '{0}' has {1} values, expected {2}",
                              name, w->size(), count));
  std::memcpy(buf.data(), w->data(), sizeof(float) * count);
  return Error::success();
}

Expected<std::unique_ptr<Model>>
Model::build(const ModelConfig &config, const VariantConfig *variant,
             WeightFn weights, AdapterFn adapters, MemoryTracker &mem,
             const ModelOptions &opts) {
  std::unique_ptr<Model> m(new Model(config, mem, opts));
  ModelConfig &c = m->config_;
  if (c.layers.empty())
    if (Error e = c.validate("model"))
      return std::move(e);
  const int64_t d = c.hiddenSize, v = c.vocabSize;
  auto specFor = [&](int64_t layer, StringRef role) -> Expected<LinearSpec> {
    if (!variant)
      return LinearSpec{};
    return variant->resolve(layer, role);
  };
  m->embed_ = Buffer<float>(mem, MemCategory::Weights, v * d);
  if (Error e = loadInto(m->embed_, weights, "model.embed_tokens.weight",
                         v * d))
    return std::move(e);
  m->finalNorm_ = Buffer<float>(mem, MemCategory::Weights, d);
  if (Error e = loadInto(m->finalNorm_, weights, "model.norm.weight", d))
    return std::move(e);
  MemCategory normCat =
      opts.trainNorms ? MemCategory::Adapters : MemCategory::Weights;
  m->layers_.resize(c.numLayers);
  for (int64_t l = 0; l < c.numLayers; ++l) {
    DecoderLayer &L = m->layers_[l];
    L.shape = c.layers[l];
    L.norm1 = Buffer<float>(mem, normCat, d);
    L.norm2 = Buffer<float>(mem, normCat, d);
    std::string pre = formatv("model.layers.{0}.", l).str();
    if (Error e = loadInto(L.norm1, weights, pre + "input_layernorm.weight",
                           d))
      return std::move(e);
    if (Error e = loadInto(L.norm2, weights,
                           pre + "post_attention_layernorm.weight", d))
      return std::move(e);
    if (opts.trainNorms && opts.training) {
      L.dNorm1 = Buffer<float>(mem, MemCategory::Gradients, d);
      L.dNorm2 = Buffer<float>(mem, MemCategory::Gradients, d);
    }
    for (int r = 0; r < kNumProjectionRoles; ++r) {
      LinearLayer &lin = L.proj[r];
      lin.layer = l;
      lin.role = kProjectionRoles[r];
      lin.weightName = hfWeightName(l, lin.role);
      auto shape = c.projectionShape(l, lin.role);
      lin.in = shape.first;
      lin.out = shape.second;
      auto spec = specFor(l, lin.role);
      if (!spec)
        return spec.takeError();
      if (Error e = m->buildLinear(lin, *spec, weights, adapters))
        return std::move(e);
    }
  }
  if (!c.tiedEmbeddings) {
    m->lmHead_ = std::make_unique<LinearLayer>();
    LinearLayer &lin = *m->lmHead_;
    lin.layer = -1;
    lin.role = "lm_head";
    lin.weightName = "lm_head.weight";
    lin.in = d;
    lin.out = v;
    LinearSpec spec;
    if (variant && variant->configures(-1, "lm_head")) {
      auto s = variant->resolve(-1, "lm_head");
      if (!s)
        return s.takeError();
      spec = *s;
    }
    if (Error e = m->buildLinear(lin, spec, weights, adapters))
      return std::move(e);
  }
  return std::move(m);
}

std::vector<LinearLayer *> Model::linears() {
  std::vector<LinearLayer *> ls;
  for (DecoderLayer &L : layers_)
    for (LinearLayer &lin : L.proj)
      ls.push_back(&lin);
  if (lmHead_)
    ls.push_back(lmHead_.get());
  return ls;
}

std::vector<std::pair<Buffer<float> *, Buffer<float> *>> Model::parameters() {
  std::vector<std::pair<Buffer<float> *, Buffer<float> *>> ps;
  for (DecoderLayer &L : layers_) {
    if (!L.dNorm1.empty()) {
      ps.push_back({&L.norm1, &L.dNorm1});
      ps.push_back({&L.norm2, &L.dNorm2});
    }
    for (LinearLayer &lin : L.proj)
      for (auto &p : lin.parameters())
        ps.push_back(p);
  }
  if (lmHead_)
    for (auto &p : lmHead_->parameters())
      ps.push_back(p);
  return ps;
}

int64_t Model::numTrainable() {
  int64_t n = 0;
  for (auto &p : parameters())
    n += p.first->size();
  return n;
}

void Model::zeroGrads() {
  for (auto &p : parameters())
    p.second->zero();
}

//===----------------------------------------------------------------------===//
// Linears
//===----------------------------------------------------------------------===//

void Model::linearForward(LinearLayer &lin, const float *x, int64_t n,
                          float *y, LinearCache *cache, Rng *rng) {
  if (lin.isAdaLoRA())
    refreshAdaLoRA(lin);
  const float *xa = x;
  Buffer<float> xaBuf;
  const double p = lin.spec.adapter.dropout;
  if (lin.hasAdapter() && cache && rng && p > 0.0) {
    cache->mask =
        Buffer<uint8_t>(mem_, MemCategory::Activations, n * lin.in, U);
    xaBuf = Buffer<float>(mem_, MemCategory::Workspace, n * lin.in, U);
    const float keep = float(1.0 - p), inv = 1.0f / keep;
    for (int64_t i = 0; i < n * lin.in; ++i)
      cache->mask[i] = rng->uniform() >= float(p);
    ops::dropoutApply(x, cache->mask.data(), inv, n * lin.in, xaBuf.data());
    xa = xaBuf.data();
  }
  if (lin.isDense()) {
    ops::linearForward(x, lin.dense.data(), n, lin.in, lin.out, y);
    if (!lin.hasAdapter())
      return;
    const int64_t r = lin.view.rank;
    Buffer<float> t(mem_,
                    cache ? MemCategory::Activations : MemCategory::Workspace,
                    n * r, U);
    ops::linearForward(xa, lin.A.data(), n, lin.in, r, t.data());
    Map Y(y, n, lin.out);
    Y.noalias() += lin.view.scale * (MapC(t.data(), n, r) *
                                     MapC(lin.view.B, lin.out, r).transpose());
    if (cache)
      cache->xa = std::move(t);
    return;
  }
  check(kernels::fusedLinearForward(*lin.quant, lin.view, x, n, y,
                                    opts_.kernel, xa == x ? nullptr : xa),
        "fused linear forward");
}

void Model::linearBackward(LinearLayer &lin, const float *x, const float *dy,
                           int64_t n, float *dx, LinearCache *cache) {
  // Importance measurement: dL/dW of the frozen base = dY^T X.
  if (!lin.dW.empty() && x)
    Map(lin.dW.data(), lin.out, lin.in).noalias() +=
        MapC(dy, n, lin.out).transpose() * MapC(x, n, lin.in);
  const bool train = lin.hasAdapter() && !lin.parameters().empty();
  Buffer<float> xaBuf;
  const float *xa = x;
  const bool dropped = train && cache && !cache->mask.empty();
  const float inv = float(1.0 / (1.0 - lin.spec.adapter.dropout));
  if (dropped) {
    xaBuf = Buffer<float>(mem_, MemCategory::Workspace, n * lin.in, U);
    ops::dropoutApply(x, cache->mask.data(), inv, n * lin.in, xaBuf.data());
    xa = xaBuf.data();
  }
  // AdaLoRA: the kernels differentiate B_eff = P diag(lambda); its gradient
  // goes to a scratch buffer and is mapped to dP, dlambda at the end.
  Buffer<float> dBEff;
  float *dB = lin.dB.empty() ? nullptr : lin.dB.data();
  if (train && lin.isAdaLoRA()) {
    dBEff = Buffer<float>(mem_, MemCategory::Workspace,
                          lin.out * lin.view.rank);
    dB = dBEff.data();
  }
  auto mapAdaLoRA = [&]() {
    if (!dBEff.empty())
      adaloraMapGradient(lin.B.data(), lin.E.data(), dBEff.data(), lin.out,
                         lin.view.rank, lin.dB.data(), lin.dE.data());
  };
  if (lin.isDense()) {
    ops::linearBackwardInput(dy, lin.dense.data(), n, lin.in, lin.out, dx);
    if (!train)
      return;
    const int64_t r = lin.view.rank;
    const float s = lin.view.scale;
    Buffer<float> t(mem_, MemCategory::Workspace, n * r, U);
    // t = dY * B  [n, r]
    ops::linearBackwardInput(dy, lin.view.B, n, r, lin.out, t.data());
    MapC T(t.data(), n, r), DY(dy, n, lin.out), XA(xa, n, lin.in);
    Map(lin.dA.data(), r, lin.in).noalias() += s * (T.transpose() * XA);
    Map(dB, lin.out, r).noalias() +=
        s * (DY.transpose() * MapC(cache->xa.data(), n, r));
    mapAdaLoRA();
    MapC A(lin.A.data(), r, lin.in);
    if (!dropped) {
      Map(dx, n, lin.in).noalias() += s * (T * A);
      return;
    }
    Buffer<float> dxa(mem_, MemCategory::Workspace, n * lin.in, U);
    Map(dxa.data(), n, lin.in).noalias() = s * (T * A);
    ops::dropoutApply(dxa.data(), cache->mask.data(), inv, n * lin.in, dx,
                      /*accumulate=*/true);
    return;
  }
  if (!train) {
    check(kernels::quantMatmulTransposed(*lin.quant, dy, n, dx, false,
                                         opts_.kernel),
          "quantized linear backward");
    return;
  }
  Buffer<float> dxa;
  kernels::LinearGrads g;
  g.dX = dx;
  if (dropped) {
    dxa = Buffer<float>(mem_, MemCategory::Workspace, n * lin.in, U);
    g.dXAdapter = dxa.data();
  }
  g.dA = lin.dA.empty() ? nullptr : lin.dA.data();
  g.dB = dB;
  g.dH = lin.dH.empty() ? nullptr : lin.dH.data();
  g.accumulate = true;
  check(kernels::fusedLinearBackward(*lin.quant, lin.view, x, dy, n, g,
                                     opts_.kernel, dropped ? xa : nullptr),
        "fused linear backward");
  mapAdaLoRA();
  if (dropped)
    ops::dropoutApply(dxa.data(), cache->mask.data(), inv, n * lin.in, dx,
                      /*accumulate=*/true);
}

void Model::lmHeadForward(const float *x, int64_t n, float *logits) {
  if (lmHead_) {
    linearForward(*lmHead_, x, n, logits, nullptr, nullptr);
    return;
  }
  ops::linearForward(x, embed_.data(), n, config_.hiddenSize,
                     config_.vocabSize, logits);
}

void Model::lmHeadBackward(const float *dLogits, int64_t n, float *dx) {
  if (lmHead_) {
    // The lm_head input is not kept, so an lm_head adapter is not trained.
    linearBackward(*lmHead_, nullptr, dLogits, n, dx, nullptr);
    return;
  }
  ops::linearBackwardInput(dLogits, embed_.data(), n, config_.hiddenSize,
                           config_.vocabSize, dx);
}

//===----------------------------------------------------------------------===//
// Training forward / backward
//===----------------------------------------------------------------------===//

namespace {
/// Tensors of one decoder layer kept for the backward pass.
struct LayerActs {
  Buffer<float> x, xn, rinv1, q, k, v, probs, att, xmid, xn2, rinv2, gate, up,
      hmid;
  LinearCache cache[kNumProjectionRoles];
};
} // namespace

double Model::deviceForwardBackward(const Batch &batch, float gradScale,
                                    Rng *rng) {
  // The adapter-dropout keep masks, drawn with exactly the Rng calls of the
  // CPU path (same linears, same order), so both runs see the same masks.
  const int64_t n = batch.numTokens();
  std::vector<Buffer<uint8_t>> masks(layers_.size() * kNumProjectionRoles);
  std::vector<const uint8_t *> ptrs(masks.size(), nullptr);
  for (size_t l = 0; l < layers_.size(); ++l)
    for (int r = 0; r < kNumProjectionRoles; ++r) {
      LinearLayer &lin = layers_[l].proj[r];
      const double p = lin.spec.adapter.dropout;
      if (!lin.hasAdapter() || !rng || p <= 0.0)
        continue;
      Buffer<uint8_t> &m = masks[l * kNumProjectionRoles + r];
      m = Buffer<uint8_t>(mem_, MemCategory::Activations, n * lin.in, U);
      for (int64_t i = 0; i < n * lin.in; ++i)
        m[i] = rng->uniform() >= float(p);
      ptrs[l * kNumProjectionRoles + r] = m.data();
    }
  auto loss = device_->forwardBackward(batch, gradScale, ptrs);
  if (!loss)
    report_fatal_error(Twine("device ") + device_->deviceName() + ": " +
                       toString(loss.takeError()));
  return *loss;
}

double Model::forwardBackward(const Batch &batch, float gradScale, Rng *rng) {
  if (device_)
    return deviceForwardBackward(batch, gradScale, rng);
  const ModelConfig &c = config_;
  const int64_t n = batch.numTokens(), d = c.hiddenSize, hd = c.headDim,
                vocab = c.vocabSize, S = batch.numSequences();
  const float eps = float(c.rmsNormEps);
  const MemCategory act = MemCategory::Activations,
                    ws = MemCategory::Workspace;
  std::vector<int> pos(n);
  for (int64_t s = 0; s < S; ++s)
    for (int64_t i = batch.seqStart[s]; i < batch.seqStart[s + 1]; ++i)
      pos[i] = int(i - batch.seqStart[s]);
  if (lmHead_ && lmHead_->hasAdapter() && opts_.training)
    report_fatal_error("training an lm_head adapter is not supported");

  std::vector<LayerActs> acts(layers_.size());
  Buffer<float> x(mem_, act, n * d, U);
  ops::embeddingForward(embed_.data(), d, batch.tokens.data(), n, x.data());
  int64_t maxWidth = d;
  for (size_t l = 0; l < layers_.size(); ++l) {
    DecoderLayer &L = layers_[l];
    LayerActs &a = acts[l];
    const int64_t h = L.shape.numHeads, g = L.shape.numKVHeads,
                  f = L.shape.intermediateSize;
    maxWidth = std::max({maxWidth, f, h * hd});
    a.x = std::move(x);
    a.xn = Buffer<float>(mem_, act, n * d, U);
    a.rinv1 = Buffer<float>(mem_, act, n, U);
    ops::rmsNormForward(a.x.data(), L.norm1.data(), n, d, eps, a.xn.data(),
                        a.rinv1.data());
    a.q = Buffer<float>(mem_, act, n * h * hd, U);
    a.k = Buffer<float>(mem_, act, n * g * hd, U);
    a.v = Buffer<float>(mem_, act, n * g * hd, U);
    linearForward(L.q(), a.xn.data(), n, a.q.data(), &a.cache[0], rng);
    linearForward(L.k(), a.xn.data(), n, a.k.data(), &a.cache[1], rng);
    linearForward(L.v(), a.xn.data(), n, a.v.data(), &a.cache[2], rng);
    ops::rope(a.q.data(), n, h, hd, pos.data(), c.ropeTheta);
    ops::rope(a.k.data(), n, g, hd, pos.data(), c.ropeTheta);
    int64_t probCount = 0;
    for (int64_t s = 0; s < S; ++s) {
      int64_t len = batch.seqStart[s + 1] - batch.seqStart[s];
      probCount += h * len * len;
    }
    a.probs = Buffer<float>(mem_, act, probCount, U);
    a.att = Buffer<float>(mem_, act, n * h * hd, U);
    for (int64_t s = 0, po = 0; s < S; ++s) {
      int64_t o = batch.seqStart[s], len = batch.seqStart[s + 1] - o;
      ops::attentionForward(a.q.data() + o * h * hd, a.k.data() + o * g * hd,
                            a.v.data() + o * g * hd, g * hd, 0, len, h, g, hd,
                            a.att.data() + o * h * hd, a.probs.data() + po);
      po += h * len * len;
    }
    a.xmid = Buffer<float>(mem_, act, n * d, U);
    linearForward(L.o(), a.att.data(), n, a.xmid.data(), &a.cache[3], rng);
    for (int64_t i = 0; i < n * d; ++i)
      a.xmid[i] += a.x[i];
    a.xn2 = Buffer<float>(mem_, act, n * d, U);
    a.rinv2 = Buffer<float>(mem_, act, n, U);
    ops::rmsNormForward(a.xmid.data(), L.norm2.data(), n, d, eps,
                        a.xn2.data(), a.rinv2.data());
    a.gate = Buffer<float>(mem_, act, n * f, U);
    a.up = Buffer<float>(mem_, act, n * f, U);
    a.hmid = Buffer<float>(mem_, act, n * f, U);
    linearForward(L.gate(), a.xn2.data(), n, a.gate.data(), &a.cache[4], rng);
    linearForward(L.up(), a.xn2.data(), n, a.up.data(), &a.cache[5], rng);
    ops::swigluForward(a.gate.data(), a.up.data(), n * f, a.hmid.data());
    x = Buffer<float>(mem_, act, n * d, U);
    linearForward(L.down(), a.hmid.data(), n, x.data(), &a.cache[6], rng);
    for (int64_t i = 0; i < n * d; ++i)
      x[i] += a.xmid[i];
  }

  // Loss rows only: the final norm and lm_head run on target rows.
  std::vector<int64_t> rows;
  std::vector<int> tgt;
  for (int64_t i = 0; i < n; ++i)
    if (batch.targets[i] >= 0) {
      rows.push_back(i);
      tgt.push_back(batch.targets[i]);
    }
  const int64_t nt = int64_t(rows.size());
  Buffer<float> xfn(mem_, act, nt * d, U), rinvF(mem_, act, nt, U);
  for (int64_t i = 0; i < nt; ++i)
    ops::rmsNormForward(x.data() + rows[i] * d, finalNorm_.data(), 1, d, eps,
                        xfn.data() + i * d, rinvF.data() + i);
  // The logits become their own gradient in place.
  Buffer<float> logits(mem_, act, nt * vocab, U);
  lmHeadForward(xfn.data(), nt, logits.data());
  double lossSum = ops::crossEntropy(logits.data(), nt, vocab, tgt.data(),
                                     logits.data(), gradScale);

  // Backward.
  Buffer<float> dx(mem_, ws, n * d);
  {
    Buffer<float> dxfn(mem_, ws, nt * d, U);
    lmHeadBackward(logits.data(), nt, dxfn.data());
    logits.reset();
    for (int64_t i = 0; i < nt; ++i)
      ops::rmsNormBackward(x.data() + rows[i] * d, finalNorm_.data(),
                           rinvF.data() + i, dxfn.data() + i * d, 1, d,
                           dx.data() + rows[i] * d, false, nullptr);
  }
  xfn.reset();
  rinvF.reset();
  x.reset();
  Buffer<float> bufA(mem_, ws, n * maxWidth, U),
      bufB(mem_, ws, n * maxWidth, U), bufC(mem_, ws, n * maxWidth, U),
      bufD(mem_, ws, n * maxWidth, U);
  int64_t maxLen = batch.maxLength();
  Buffer<float> scratch(mem_, ws, maxLen * maxLen, U);
  for (size_t li = layers_.size(); li-- > 0;) {
    DecoderLayer &L = layers_[li];
    LayerActs &a = acts[li];
    const int64_t h = L.shape.numHeads, g = L.shape.numKVHeads,
                  f = L.shape.intermediateSize;
    float *A = bufA.data(), *B = bufB.data(), *C = bufC.data(),
          *D = bufD.data();
    // MLP.
    linearBackward(L.down(), a.hmid.data(), dx.data(), n, A, &a.cache[6]);
    ops::swigluBackward(a.gate.data(), a.up.data(), A, n * f, B, C);
    linearBackward(L.gate(), a.xn2.data(), B, n, D, &a.cache[4]);
    linearBackward(L.up(), a.xn2.data(), C, n, A, &a.cache[5]);
    for (int64_t i = 0; i < n * d; ++i)
      D[i] += A[i];
    ops::rmsNormBackward(a.xmid.data(), L.norm2.data(), a.rinv2.data(), D, n,
                         d, dx.data(), true,
                         L.dNorm2.empty() ? nullptr : L.dNorm2.data());
    // Attention.
    linearBackward(L.o(), a.att.data(), dx.data(), n, A, &a.cache[3]);
    for (int64_t s = 0, po = 0; s < S; ++s) {
      int64_t o = batch.seqStart[s], len = batch.seqStart[s + 1] - o;
      ops::attentionBackward(a.q.data() + o * h * hd, a.k.data() + o * g * hd,
                             a.v.data() + o * g * hd, a.probs.data() + po,
                             A + o * h * hd, len, h, g, hd, B + o * h * hd,
                             C + o * g * hd, D + o * g * hd, scratch.data());
      po += h * len * len;
    }
    ops::rope(B, n, h, hd, pos.data(), c.ropeTheta, /*inverse=*/true);
    ops::rope(C, n, g, hd, pos.data(), c.ropeTheta, /*inverse=*/true);
    linearBackward(L.q(), a.xn.data(), B, n, A, &a.cache[0]);
    linearBackward(L.k(), a.xn.data(), C, n, B, &a.cache[1]);
    for (int64_t i = 0; i < n * d; ++i)
      A[i] += B[i];
    linearBackward(L.v(), a.xn.data(), D, n, B, &a.cache[2]);
    for (int64_t i = 0; i < n * d; ++i)
      A[i] += B[i];
    ops::rmsNormBackward(a.x.data(), L.norm1.data(), a.rinv1.data(), A, n, d,
                         dx.data(), true,
                         L.dNorm1.empty() ? nullptr : L.dNorm1.data());
    a = LayerActs(); // release this layer's saved tensors
  }
  return lossSum;
}

double Model::loss(const Batch &batch) {
  if (device_) {
    auto loss = device_->loss(batch);
    if (!loss)
      report_fatal_error(Twine("device ") + device_->deviceName() + ": " +
                         toString(loss.takeError()));
    return *loss;
  }
  double total = 0.0;
  for (int64_t s = 0; s < batch.numSequences(); ++s) {
    int64_t o = batch.seqStart[s], len = batch.seqStart[s + 1] - o;
    std::vector<int64_t> rows;
    std::vector<int> tgt;
    for (int64_t i = 0; i < len; ++i)
      if (batch.targets[o + i] >= 0) {
        rows.push_back(i);
        tgt.push_back(batch.targets[o + i]);
      }
    if (rows.empty())
      continue;
    KVCache cache = makeCache(len);
    Buffer<float> logits(mem_, MemCategory::Workspace,
                         int64_t(rows.size()) * config_.vocabSize);
    forwardInfer(ArrayRef<int>(batch.tokens).slice(o, len), cache, rows,
                 logits.data());
    total += ops::crossEntropy(logits.data(), int64_t(rows.size()),
                               config_.vocabSize, tgt.data(), nullptr, 0.0f);
  }
  return total;
}

//===----------------------------------------------------------------------===//
// Inference
//===----------------------------------------------------------------------===//

KVCache Model::makeCache(int64_t capacity) {
  KVCache c;
  c.capacity = capacity;
  // The logit-lens observer reads host hidden states: with one set, the
  // cache (and so forwardInfer) stays on the CPU.
  if (device_ && !observer_) {
    auto dc = device_->makeCache(capacity);
    if (!dc)
      report_fatal_error(Twine("device ") + device_->deviceName() + ": " +
                         toString(dc.takeError()));
    c.device = std::move(*dc);
    return c;
  }
  for (DecoderLayer &L : layers_) {
    int64_t w = L.shape.numKVHeads * config_.headDim;
    c.k.emplace_back(mem_, MemCategory::Activations, capacity * w, U);
    c.v.emplace_back(mem_, MemCategory::Activations, capacity * w, U);
  }
  return c;
}

void Model::forwardInfer(ArrayRef<int> tokens, KVCache &cache,
                         ArrayRef<int64_t> logitRows, float *logits) {
  const ModelConfig &c = config_;
  const int64_t n = int64_t(tokens.size()), d = c.hiddenSize,
                hd = c.headDim, p0 = cache.length;
  if (p0 + n > cache.capacity)
    report_fatal_error("KV cache overflow");
  if (cache.device) {
    if (observer_ || !device_)
      report_fatal_error("a device KV cache used after a layer observer was "
                         "set or the device detached");
    if (Error e = device_->forwardInfer(tokens, *cache.device, p0, logitRows,
                                        logits))
      report_fatal_error(Twine("device ") + device_->deviceName() + ": " +
                         toString(std::move(e)));
    cache.length = p0 + n;
    return;
  }
  const float eps = float(c.rmsNormEps);
  const MemCategory ws = MemCategory::Workspace;
  int64_t maxW = d;
  for (DecoderLayer &L : layers_)
    maxW = std::max({maxW, L.shape.intermediateSize,
                     L.shape.numHeads * hd});
  std::vector<int> pos(n);
  for (int64_t i = 0; i < n; ++i)
    pos[i] = int(p0 + i);
  Buffer<float> x(mem_, ws, n * d, U), xn(mem_, ws, n * d, U),
      q(mem_, ws, n * maxW, U), att(mem_, ws, n * maxW, U),
      gate(mem_, ws, n * maxW, U), up(mem_, ws, n * maxW, U),
      tmp(mem_, ws, n * d, U), scores(mem_, ws, n * (p0 + n), U);
  ops::embeddingForward(embed_.data(), d, tokens.data(), n, x.data());
  if (observer_)
    observer_(0, x.data(), n);
  for (size_t l = 0; l < layers_.size(); ++l) {
    DecoderLayer &L = layers_[l];
    const int64_t h = L.shape.numHeads, g = L.shape.numKVHeads,
                  f = L.shape.intermediateSize, kw = g * hd;
    ops::rmsNormForward(x.data(), L.norm1.data(), n, d, eps, xn.data(),
                        nullptr);
    float *kNew = cache.k[l].data() + p0 * kw;
    float *vNew = cache.v[l].data() + p0 * kw;
    linearForward(L.q(), xn.data(), n, q.data(), nullptr, nullptr);
    linearForward(L.k(), xn.data(), n, kNew, nullptr, nullptr);
    linearForward(L.v(), xn.data(), n, vNew, nullptr, nullptr);
    ops::rope(q.data(), n, h, hd, pos.data(), c.ropeTheta);
    ops::rope(kNew, n, g, hd, pos.data(), c.ropeTheta);
    ops::attentionForward(q.data(), cache.k[l].data(), cache.v[l].data(), kw,
                          p0, n, h, g, hd, att.data(), nullptr,
                          scores.data());
    linearForward(L.o(), att.data(), n, tmp.data(), nullptr, nullptr);
    for (int64_t i = 0; i < n * d; ++i)
      x[i] += tmp[i];
    ops::rmsNormForward(x.data(), L.norm2.data(), n, d, eps, xn.data(),
                        nullptr);
    linearForward(L.gate(), xn.data(), n, gate.data(), nullptr, nullptr);
    linearForward(L.up(), xn.data(), n, up.data(), nullptr, nullptr);
    ops::swigluForward(gate.data(), up.data(), n * f, att.data());
    linearForward(L.down(), att.data(), n, tmp.data(), nullptr, nullptr);
    for (int64_t i = 0; i < n * d; ++i)
      x[i] += tmp[i];
    if (observer_)
      observer_(int64_t(l) + 1, x.data(), n);
  }
  cache.length = p0 + n;
  const int64_t nr = int64_t(logitRows.size());
  if (nr == 0)
    return;
  Buffer<float> xf(mem_, ws, nr * d, U);
  for (int64_t i = 0; i < nr; ++i)
    ops::rmsNormForward(x.data() + logitRows[i] * d, finalNorm_.data(), 1, d,
                        eps, xf.data() + i * d, nullptr);
  lmHeadForward(xf.data(), nr, logits);
}

void Model::decodeHidden(const float *x, int64_t n, float *logits) {
  const int64_t d = config_.hiddenSize;
  Buffer<float> xf(mem_, MemCategory::Workspace, n * d, U);
  for (int64_t i = 0; i < n; ++i)
    ops::rmsNormForward(x + i * d, finalNorm_.data(), 1, d,
                        float(config_.rmsNormEps), xf.data() + i * d, nullptr);
  lmHeadForward(xf.data(), n, logits);
}

} // namespace runtime
} // namespace mixq
