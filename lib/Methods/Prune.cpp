//===- Prune.cpp - LLM-Pruner block-wise structural pruning -------*- C++ -*-===//
//
// Removes the least important KV groups (with their query heads) and MLP
// channels of the selected layers, using the per-structure scores of
// `mixq-run importance --method taylor1|taylor2`, writes the pruned model as
// an HF checkpoint into out/pruned and rebases the module on it.
//
//===----------------------------------------------------------------------===//

#include "PassUtils.h"

#include "mixq/Methods/Passes.h"
#include "mixq/Transforms/ModelInfo.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <numeric>

using namespace mlir;

namespace mixq {
#define GEN_PASS_DEF_MIXQPRUNEPASS
#include "mixq/Methods/Passes.h.inc"
} // namespace mixq

using namespace mixq;
using namespace mixq::methods;

namespace {

/// What survives in one pruned layer (indices into the original layer).
struct LayerPlan {
  std::vector<int64_t> keptKV;       ///< KV groups kept, ascending
  std::vector<int64_t> keptHeads;    ///< query heads kept, ascending
  std::vector<int64_t> keptChannels; ///< MLP channels kept, ascending
};

/// Scores of one layer from the importance file.
struct LayerScores {
  std::vector<double> kvHeads, channels;
};

struct PrunePass : public mixq::impl::MixQPrunePassBase<PrunePass> {
  using MixQPrunePassBase::MixQPrunePassBase;
  void runOnOperation() override;
};

} // namespace

/// Parses "1-3", "2", "0,2-4" into a set of layers in [0, numLayers).
static FailureOr<std::vector<bool>> parseLayers(ModuleOp module, StringRef spec,
                                                int64_t numLayers) {
  std::vector<bool> sel(numLayers, spec.trim().empty());
  SmallVector<StringRef, 4> parts;
  spec.split(parts, ',', -1, false);
  for (StringRef p : parts) {
    auto [a, b] = p.trim().split('-');
    int64_t lo, hi;
    if (a.trim().getAsInteger(10, lo) ||
        (b.empty() ? (hi = lo, false) : b.trim().getAsInteger(10, hi)) ||
        lo < 0 || hi < lo || hi >= numLayers)
      return module.emitError("mixq-prune: bad layers '")
             << spec << "': expected ranges like 1-3 within 0-"
             << numLayers - 1;
    for (int64_t l = lo; l <= hi; ++l)
      sel[l] = true;
  }
  return sel;
}

/// Reads the per-layer kv_heads / channels scores of a taylor importance file.
static FailureOr<std::vector<LayerScores>>
readScores(ModuleOp module, StringRef path, StringRef method,
           const ModelConfig &cfg) {
  auto fail = [&](const Twine &msg) {
    return module.emitError("mixq-prune: ") << path << ": " << msg;
  };
  auto buf = llvm::MemoryBuffer::getFile(path);
  if (!buf)
    return fail("cannot read: " + buf.getError().message());
  auto v = llvm::json::parse((*buf)->getBuffer());
  if (!v)
    return fail("not JSON: " + llvm::toString(v.takeError()));
  const llvm::json::Object *o = v->getAsObject();
  if (!o)
    return fail("expected an object");
  if (o->getInteger("version") != 1)
    return fail("expected \"version\": 1");
  std::optional<StringRef> m = o->getString("method");
  if (!m || (*m != "taylor1" && *m != "taylor2"))
    return fail("pruning needs taylor1 or taylor2 scores, the file has "
                "method '" +
                (m ? *m : StringRef("?")) + "'");
  if (!method.empty() && method != *m)
    return fail("method=" + method + " was asked for but the file holds " +
                *m + " scores");
  const llvm::json::Array *layers = o->getArray("layers");
  if (!layers || int64_t(layers->size()) != cfg.numLayers)
    return fail(llvm::formatv("expected \"layers\" with {0} entries (one per "
                              "decoder layer)",
                              cfg.numLayers)
                    .str());
  std::vector<LayerScores> out(cfg.numLayers);
  auto numbers = [&](const llvm::json::Object &l, StringRef key, int64_t want,
                     std::vector<double> &dst, int64_t i) -> LogicalResult {
    const llvm::json::Array *a = l.getArray(key);
    if (!a || int64_t(a->size()) != want)
      return fail(llvm::formatv("layers[{0}].{1} must hold {2} numbers (the "
                                "model's current shape)",
                                i, key, want)
                      .str());
    for (const llvm::json::Value &x : *a) {
      std::optional<double> d = x.getAsNumber();
      if (!d || !std::isfinite(*d))
        return fail(llvm::formatv("layers[{0}].{1} holds a non-number", i, key)
                        .str());
      dst.push_back(*d);
    }
    return success();
  };
  for (int64_t i = 0; i < cfg.numLayers; ++i) {
    const llvm::json::Object *l = (*layers)[i].getAsObject();
    if (!l)
      return fail(llvm::formatv("layers[{0}] is not an object", i).str());
    const LayerShape &s = cfg.layers[i];
    if (failed(numbers(*l, "kv_heads", s.numKVHeads, out[i].kvHeads, i)) ||
        failed(numbers(*l, "channels", s.intermediateSize, out[i].channels,
                       i)))
      return failure();
  }
  return out;
}

/// Indices of the `count - remove` highest scores, ascending.
static std::vector<int64_t> keepTop(const std::vector<double> &scores,
                                    int64_t remove) {
  std::vector<int64_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return scores[a] < scores[b];
  });
  std::vector<int64_t> kept(order.begin() + remove, order.end());
  std::sort(kept.begin(), kept.end());
  return kept;
}

static int64_t toRemove(double ratio, int64_t count) {
  int64_t r = int64_t(std::llround(ratio * double(count)));
  return std::clamp<int64_t>(r, 0, count - 1);
}

/// Rows of `w` [out, in] in blocks of `block` at the kept block indices.
static std::vector<float> keepRows(const std::vector<float> &w, int64_t in,
                                   const std::vector<int64_t> &kept,
                                   int64_t block) {
  std::vector<float> r;
  r.reserve(kept.size() * block * in);
  for (int64_t k : kept)
    r.insert(r.end(), w.begin() + k * block * in,
             w.begin() + (k + 1) * block * in);
  return r;
}

/// Columns of `w` [out, in] in blocks of `block` at the kept block indices.
static std::vector<float> keepCols(const std::vector<float> &w, int64_t out,
                                   int64_t in, const std::vector<int64_t> &kept,
                                   int64_t block) {
  std::vector<float> r;
  r.reserve(out * kept.size() * block);
  for (int64_t row = 0; row < out; ++row)
    for (int64_t k : kept)
      r.insert(r.end(), w.begin() + row * in + k * block,
               w.begin() + row * in + (k + 1) * block);
  return r;
}

static RankedTensorType withLastDim(Type t, int64_t n) {
  auto r = cast<RankedTensorType>(t);
  SmallVector<int64_t> shape(r.getShape());
  shape.back() = n;
  return RankedTensorType::get(shape, r.getElementType());
}

/// Parses "model.layers.{l}.{self_attn|mlp}.{role}.weight".
static bool parseLayerTensor(StringRef name, int64_t &layer, StringRef &role) {
  if (!name.consume_front("model.layers."))
    return false;
  auto [num, rest] = name.split('.');
  if (num.getAsInteger(10, layer))
    return false;
  if (!rest.consume_front("self_attn.") && !rest.consume_front("mlp."))
    return false;
  role = rest;
  return true;
}

void PrunePass::runOnOperation() {
  ModuleOp module = getOperation();
  if (importance.empty() || out.empty()) {
    module.emitError("mixq-prune needs importance=FILE and out=DIR");
    return signalPassFailure();
  }
  if (!(ratio >= 0.0 && ratio < 1.0)) {
    module.emitError("mixq-prune: ratio must be in [0, 1), got ") << ratio;
    return signalPassFailure();
  }
  if (!method.empty() && method != "taylor1" && method != "taylor2") {
    module.emitError("mixq-prune: method must be taylor1 or taylor2, got '")
        << method << "'";
    return signalPassFailure();
  }
  FailureOr<ModelConfig> before = inferModelConfig(module);
  if (failed(before))
    return signalPassFailure();
  const int64_t hd = before->headDim;
  FailureOr<std::vector<bool>> sel = parseLayers(module, layers,
                                                 before->numLayers);
  if (failed(sel))
    return signalPassFailure();
  FailureOr<std::vector<LayerScores>> scores =
      readScores(module, importance, method, *before);
  if (failed(scores))
    return signalPassFailure();
  auto ckpt = openModuleCheckpoint(module, "mixq-prune");
  if (failed(ckpt))
    return signalPassFailure();

  // Plans.
  ModelConfig after = (*ckpt)->config();
  after.layers = before->layers;
  std::map<int64_t, LayerPlan> plans;
  for (int64_t l = 0; l < before->numLayers; ++l) {
    if (!(*sel)[l])
      continue;
    const LayerShape &s = before->layers[l];
    const LayerScores &sc = (*scores)[l];
    LayerPlan p;
    p.keptKV = keepTop(sc.kvHeads, toRemove(ratio, s.numKVHeads));
    const int64_t grp = s.numHeads / s.numKVHeads;
    for (int64_t k : p.keptKV)
      for (int64_t j = k * grp; j < (k + 1) * grp; ++j)
        p.keptHeads.push_back(j);
    p.keptChannels = keepTop(sc.channels, toRemove(ratio, s.intermediateSize));
    after.layers[l] = {int64_t(p.keptHeads.size()), int64_t(p.keptKV.size()),
                       int64_t(p.keptChannels.size())};
    plans[l] = std::move(p);
  }

  // IR: types and head counts of the pruned layers.
  MLIRContext *ctx = module.getContext();
  Builder b(ctx);
  std::map<std::string, std::vector<int64_t>> newShapes;
  WalkResult walk = module.walk([&](Operation *op) {
    if (auto lin = dyn_cast<LinearOp>(op)) {
      auto it = plans.find(lin.getLayer());
      if (it == plans.end())
        return WalkResult::advance();
      if (lin.getQuantAttr() || lin.getAdapterAttr() ||
          lin->hasAttr("mixq.materialized")) {
        lin.emitError("mixq-prune runs before --mixq-assign-config; this "
                      "linear is already configured");
        return WalkResult::interrupt();
      }
      const LayerShape &s = after.layers[lin.getLayer()];
      StringRef role = lin.getRole();
      int64_t outF = lin.getOutFeatures();
      if (role == "q_proj")
        outF = s.numHeads * hd;
      else if (role == "k_proj" || role == "v_proj")
        outF = s.numKVHeads * hd;
      else if (role == "gate_proj" || role == "up_proj")
        outF = s.intermediateSize;
      lin.getResult().setType(withLastDim(lin.getResult().getType(), outF));
      auto [in, o] = after.projectionShape(lin.getLayer(), role);
      newShapes[weightName(lin).str()] = {o, in};
    } else if (auto rope = dyn_cast<RoPEOp>(op)) {
      auto lin = rope.getInput().getDefiningOp<LinearOp>();
      if (!lin || !plans.count(lin.getLayer()))
        return WalkResult::advance();
      int64_t heads = cast<RankedTensorType>(lin.getResult().getType())
                          .getShape()
                          .back() /
                      hd;
      rope.setNumHeads(heads);
      rope.getResult().setType(lin.getResult().getType());
    } else if (auto att = dyn_cast<AttentionOp>(op)) {
      std::optional<uint64_t> layer = att.getLayer();
      auto it = layer ? plans.find(int64_t(*layer)) : plans.end();
      if (it == plans.end())
        return WalkResult::advance();
      const LayerShape &s = after.layers[it->first];
      att.setNumHeads(s.numHeads);
      att.setNumKvHeads(s.numKVHeads);
      att.getResult().setType(
          withLastDim(att.getResult().getType(), s.numHeads * hd));
      att->setAttr("mixq.kept_heads", b.getDenseI64ArrayAttr(it->second.keptHeads));
    } else if (auto sw = dyn_cast<SwiGLUOp>(op)) {
      auto lin = sw.getGate().getDefiningOp<LinearOp>();
      if (!lin || !plans.count(lin.getLayer()))
        return WalkResult::advance();
      sw.getResult().setType(lin.getResult().getType());
    }
    return WalkResult::advance();
  });
  if (walk.wasInterrupted())
    return signalPassFailure();

  // The pruned checkpoint.
  SmallString<256> dir(out);
  llvm::sys::fs::make_absolute(dir);
  llvm::sys::path::append(dir, "pruned");
  if (std::error_code ec = llvm::sys::fs::create_directories(dir)) {
    module.emitError("cannot create ") << dir << ": " << ec.message();
    return signalPassFailure();
  }
  std::vector<TensorData> tensors;
  for (const TensorInfo &info : (*ckpt)->tensors()) {
    auto w = (*ckpt)->readF32(info.name);
    if (!w) {
      (void)emitLLVMError(module, w.takeError());
      return signalPassFailure();
    }
    TensorData t;
    t.name = info.name;
    t.shape = info.shape;
    int64_t layer;
    StringRef role;
    if (parseLayerTensor(info.name, layer, role) && plans.count(layer)) {
      const LayerPlan &p = plans[layer];
      const LayerShape &s0 = before->layers[layer];
      const int64_t in = info.shape.size() == 2 ? info.shape[1] : 0;
      const int64_t outR = info.shape.empty() ? 0 : info.shape[0];
      if (role == "q_proj.weight")
        *w = keepRows(*w, in, p.keptHeads, hd);
      else if (role == "k_proj.weight" || role == "v_proj.weight")
        *w = keepRows(*w, in, p.keptKV, hd);
      else if (role == "o_proj.weight")
        *w = keepCols(*w, outR, s0.numHeads * hd, p.keptHeads, hd);
      else if (role == "gate_proj.weight" || role == "up_proj.weight")
        *w = keepRows(*w, in, p.keptChannels, 1);
      else if (role == "down_proj.weight")
        *w = keepCols(*w, outR, s0.intermediateSize, p.keptChannels, 1);
      else {
        module.emitError("mixq-prune: cannot prune tensor '")
            << info.name << "' of " << (*ckpt)->path();
        return signalPassFailure();
      }
      auto it = newShapes.find(info.name);
      if (it == newShapes.end()) {
        module.emitError("mixq-prune: no linear reads '") << info.name << "'";
        return signalPassFailure();
      }
      t.shape = it->second;
    }
    t.bytes.resize(w->size() * sizeof(float));
    std::memcpy(t.bytes.data(), w->data(), t.bytes.size());
    tensors.push_back(std::move(t));
  }
  SmallString<256> stPath(dir), cfgPath(dir);
  llvm::sys::path::append(stPath, "model.safetensors");
  llvm::sys::path::append(cfgPath, "config.json");
  if (llvm::Error e = writeSafetensors(stPath, tensors, {{"format", "pt"}})) {
    (void)emitLLVMError(module, std::move(e));
    return signalPassFailure();
  }
  {
    std::error_code ec;
    llvm::raw_fd_ostream os(cfgPath, ec);
    if (ec) {
      module.emitError("cannot write ") << cfgPath << ": " << ec.message();
      return signalPassFailure();
    }
    os << llvm::formatv("{0:2}", after.toJSON()) << "\n";
  }

  // Rebase the module's checkpoint declaration on the pruned file.
  CheckpointOp ckptOp;
  module.walk([&](CheckpointOp op) { ckptOp = op; });
  ckptOp.setPath(stPath);
  ckptOp.setFormat("hf-safetensors");
  for (Operation &op : ckptOp.getBody().front()) {
    auto t = cast<TensorOp>(op);
    RankedTensorType ty = t.getTensorType();
    auto it = newShapes.find(t.getSymName().str());
    ArrayRef<int64_t> shape =
        it == newShapes.end() ? ty.getShape() : ArrayRef<int64_t>(it->second);
    t.setType(RankedTensorType::get(shape, b.getF32Type()));
  }

  // Report.
  const int64_t p0 = before->numParameters(), p1 = after.numParameters();
  llvm::json::Array rows;
  llvm::errs() << llvm::formatv(
      "mixq-prune: {0} scores, ratio {1:F2}, parameters {2} -> {3} ({4:F1}% "
      "removed)\n",
      importance, double(ratio), p0, p1, 100.0 * double(p0 - p1) / double(p0));
  llvm::errs() << "layer  heads  kv_heads  intermediate\n";
  for (int64_t l = 0; l < before->numLayers; ++l) {
    const LayerShape &a = before->layers[l], &z = after.layers[l];
    llvm::errs() << llvm::formatv("{0,5}  {1,2} -> {2,-2}  {3,2} -> {4,-2}  "
                                  "{5,4} -> {6}\n",
                                  l, a.numHeads, z.numHeads, a.numKVHeads,
                                  z.numKVHeads, a.intermediateSize,
                                  z.intermediateSize);
    llvm::json::Object row{{"layer", l},
                           {"num_heads", z.numHeads},
                           {"num_key_value_heads", z.numKVHeads},
                           {"intermediate_size", z.intermediateSize}};
    if (plans.count(l)) {
      llvm::json::Array kh, kc;
      for (int64_t h : plans[l].keptHeads)
        kh.push_back(h);
      for (int64_t c : plans[l].keptChannels)
        kc.push_back(c);
      row["kept_heads"] = std::move(kh);
      row["kept_channels"] = std::move(kc);
    }
    rows.push_back(std::move(row));
  }
  llvm::json::Object report{{"importance", importance},
                            {"ratio", double(ratio)},
                            {"params_before", p0},
                            {"params_after", p1},
                            {"checkpoint", stPath.str()},
                            {"layers", std::move(rows)}};
  SmallString<256> repPath(out);
  llvm::sys::path::append(repPath, "prune_report.json");
  std::error_code ec;
  llvm::raw_fd_ostream os(repPath, ec);
  if (ec) {
    module.emitError("cannot write ") << repPath << ": " << ec.message();
    return signalPassFailure();
  }
  os << llvm::formatv("{0:2}", llvm::json::Value(std::move(report))) << "\n";
  module->setAttr("mixq.pruned_params",
                  b.getI64ArrayAttr({p0, p1}));
}
