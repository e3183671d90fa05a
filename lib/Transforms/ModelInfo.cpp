//===- ModelInfo.cpp - read a model's shape back from mixq IR -----*- C++ -*-===//

#include "mixq/Transforms/ModelInfo.h"

#include <map>

using namespace mlir;

namespace mixq {

FailureOr<ModelConfig> inferModelConfig(ModuleOp module) {
  ModelConfig cfg;
  std::map<int64_t, LayerShape> layers;
  bool haveEmbedding = false;
  module.walk([&](Operation *op) {
    if (auto emb = dyn_cast<EmbeddingOp>(op)) {
      auto w = SymbolTable::lookupNearestSymbolFrom<TensorOp>(
          emb, emb.getWeight());
      if (!w)
        return;
      cfg.vocabSize = w.getTensorType().getShape()[0];
      cfg.hiddenSize = w.getTensorType().getShape()[1];
      haveEmbedding = true;
    } else if (auto att = dyn_cast<AttentionOp>(op)) {
      int64_t l = att.getLayer().value_or(0);
      layers[l].numHeads = att.getNumHeads();
      layers[l].numKVHeads = att.getNumKvHeads();
      cfg.headDim = att.getHeadDim();
    } else if (auto lin = dyn_cast<LinearOp>(op)) {
      if (lin.getRole() == "gate_proj")
        layers[lin.getLayer()].intermediateSize = lin.getOutFeatures();
    } else if (isa<TiedLMHeadOp>(op)) {
      cfg.tiedEmbeddings = true;
    } else if (auto norm = dyn_cast<RMSNormOp>(op)) {
      cfg.rmsNormEps = norm.getEps().convertToDouble();
    } else if (auto rope = dyn_cast<RoPEOp>(op)) {
      cfg.ropeTheta = rope.getTheta().convertToDouble();
    }
  });
  if (!haveEmbedding)
    return module.emitError("expects a mixq.embedding with a declared weight");
  if (layers.empty())
    return module.emitError("expects at least one decoder layer");
  cfg.numLayers = layers.rbegin()->first + 1;
  for (int64_t l = 0; l < cfg.numLayers; ++l) {
    auto it = layers.find(l);
    if (it == layers.end() || it->second.numHeads == 0 ||
        it->second.intermediateSize == 0)
      return module.emitError("layer ")
             << l << " lacks an attention op or a gate_proj linear";
    cfg.layers.push_back(it->second);
  }
  cfg.numHeads = cfg.layers[0].numHeads;
  cfg.numKVHeads = cfg.layers[0].numKVHeads;
  cfg.intermediateSize = cfg.layers[0].intermediateSize;
  return cfg;
}

static QuantFormat toFormat(QuantFormatKind k) {
  switch (k) {
  case QuantFormatKind::f32: return QuantFormat::F32;
  case QuantFormatKind::bf16: return QuantFormat::BF16;
  case QuantFormatKind::nf4: return QuantFormat::NF4;
  case QuantFormatKind::fp4: return QuantFormat::FP4;
  case QuantFormatKind::int8: return QuantFormat::Int8;
  case QuantFormatKind::int4: return QuantFormat::Int4;
  case QuantFormatKind::int3: return QuantFormat::Int3;
  case QuantFormatKind::int2: return QuantFormat::Int2;
  }
  return QuantFormat::F32;
}

static QuantFormatKind toKind(QuantFormat f) {
  return *symbolizeQuantFormatKind(quantFormatName(f));
}

static AdapterInit toInit(AdapterInitKind k) {
  switch (k) {
  case AdapterInitKind::gaussian: return AdapterInit::Gaussian;
  case AdapterInitKind::loftq: return AdapterInit::LoftQ;
  case AdapterInitKind::pissa: return AdapterInit::PiSSA;
  }
  return AdapterInit::Gaussian;
}

LinearSpec linearSpecOf(LinearOp op) {
  LinearSpec s;
  if (QuantAttr q = op.getQuantAttr()) {
    s.quant.format = toFormat(q.getFormat());
    s.quant.block = q.getBlock();
    s.quant.doubleQuant = q.getDoubleQuant();
    if (q.isIntTile()) {
      s.quant.tileRows = q.getTile()[0];
      s.quant.tileCols = q.getTile()[1];
    }
  }
  Attribute a = op.getAdapterAttr();
  AdapterSpec &ad = s.adapter;
  if (auto lora = dyn_cast_or_null<LoRAAttr>(a)) {
    ad.kind = AdapterKind::LoRA;
    ad.rank = lora.getRank();
    ad.alpha = lora.getAlpha().convertToDouble();
    ad.dropout = lora.getDropout().convertToDouble();
    ad.init = toInit(lora.getInit());
    ad.initIters = lora.getInitIters();
  } else if (auto qb = dyn_cast_or_null<QBLoRAAttr>(a)) {
    ad.kind = AdapterKind::QBLoRA;
    ad.rank = qb.getRank();
    ad.lambda = ad.lambdaRows = ad.lambdaCols = qb.getLambda();
    ad.alpha = qb.getAlpha().convertToDouble();
    ad.dropout = qb.getDropout().convertToDouble();
    ad.init = toInit(qb.getInit());
  } else if (auto qa = dyn_cast_or_null<QABLoRAAttr>(a)) {
    ad.kind = AdapterKind::QABLoRA;
    ad.lambdaRows = qa.getLambda()[0];
    ad.lambdaCols = ad.lambda = qa.getLambda()[1];
    ad.alpha = qa.getAlpha().convertToDouble();
    ad.dropout = qa.getDropout().convertToDouble();
  }
  return s;
}

QuantAttr toQuantAttr(MLIRContext *ctx, const QuantSpec &q) {
  SmallVector<int64_t> tile;
  if (isIntTileFormat(q.format))
    tile = {q.tileRows, q.tileCols};
  bool blockwise = q.format == QuantFormat::NF4 ||
                   q.format == QuantFormat::FP4 ||
                   q.format == QuantFormat::Int8;
  return QuantAttr::get(ctx, toKind(q.format), blockwise ? q.block : 64,
                        q.doubleQuant, tile);
}

static AdapterInitKind toInitKind(AdapterInit i) {
  return *symbolizeAdapterInitKind(adapterInitName(i));
}

Attribute toAdapterAttr(MLIRContext *ctx, const AdapterSpec &a) {
  APFloat alpha(a.alpha), dropout(a.dropout);
  switch (a.kind) {
  case AdapterKind::None:
    return {};
  case AdapterKind::LoRA:
    return LoRAAttr::get(ctx, a.rank, alpha, dropout, toInitKind(a.init),
                         a.init == AdapterInit::LoftQ ? a.initIters : 1);
  case AdapterKind::QBLoRA:
    return QBLoRAAttr::get(ctx, a.rank, a.lambda, alpha, dropout,
                           toInitKind(a.init));
  case AdapterKind::QABLoRA:
    return QABLoRAAttr::get(ctx, {a.lambdaRows, a.lambdaCols}, alpha,
                            dropout);
  case AdapterKind::AdaLoRA:
    // Runtime only: --mixq-assign-config rejects it before any attribute
    // is made.
    llvm_unreachable("adalora has no IR attribute");
  }
  return {};
}

} // namespace mixq
