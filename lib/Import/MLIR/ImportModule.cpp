//===- ImportModule.cpp - build mixq IR from a checkpoint ---------*- C++ -*-===//

#include "mixq/Import/ImportMLIR.h"

#include "mixq/Dialect/MixQ/IR/MixQ.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/Verifier.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/FormatVariadic.h"

using namespace mlir;

namespace mixq {

namespace {

/// Emits the decoder one op at a time.
class ModelBuilder {
public:
  ModelBuilder(MLIRContext &ctx, const Checkpoint &ckpt)
      : ctx(ctx), ckpt(ckpt), cfg(ckpt.config()), b(&ctx),
        loc(FileLineColLoc::get(&ctx, ckpt.path(), 0, 0)) {}

  OwningOpRef<ModuleOp> build();

private:
  void declareTensors(CheckpointOp op);
  void declare(StringRef name, ArrayRef<int64_t> shape, Type elementType);
  SymbolRefAttr ref(StringRef name);
  RankedTensorType act(int64_t width);
  Value linear(Value x, int64_t layer, StringRef role, StringRef name,
               int64_t out);
  Value decoderLayer(Value h, int64_t l);

  MLIRContext &ctx;
  const Checkpoint &ckpt;
  const ModelConfig &cfg;
  OpBuilder b;
  Location loc;
  llvm::StringMap<bool> declared;
};

} // namespace

void ModelBuilder::declare(StringRef name, ArrayRef<int64_t> shape,
                           Type elementType) {
  if (declared.count(name))
    return;
  declared[name] = true;
  TensorOp::create(b, loc, b.getStringAttr(name),
                   TypeAttr::get(RankedTensorType::get(shape, elementType)));
}

static Type elementTypeOf(MLIRContext &ctx, DType t) {
  switch (t) {
  case DType::F16: return Float16Type::get(&ctx);
  case DType::BF16: return BFloat16Type::get(&ctx);
  case DType::I8:
  case DType::U8: return IntegerType::get(&ctx, 8);
  case DType::I32: return IntegerType::get(&ctx, 32);
  case DType::I64: return IntegerType::get(&ctx, 64);
  default: return Float32Type::get(&ctx);
  }
}

/// Declares the checkpoint's own tensors; for a config-only checkpoint the
/// tensors its config implies (f32).
void ModelBuilder::declareTensors(CheckpointOp op) {
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(&op.getBody().front());
  for (const TensorInfo &t : ckpt.tensors())
    declare(t.name, t.shape, elementTypeOf(ctx, t.dtype));
  if (ckpt.hasWeights())
    return;
  Type f32 = b.getF32Type();
  const int64_t d = cfg.hiddenSize;
  declare("model.embed_tokens.weight", {cfg.vocabSize, d}, f32);
  for (int64_t l = 0; l < cfg.numLayers; ++l) {
    std::string p = llvm::formatv("model.layers.{0}.", l).str();
    declare(p + "input_layernorm.weight", {d}, f32);
    declare(p + "post_attention_layernorm.weight", {d}, f32);
    for (StringRef role : kProjectionRoles) {
      auto [in, out] = cfg.projectionShape(l, role);
      StringRef group = role.ends_with("_proj") &&
                                (role.starts_with("gate") ||
                                 role.starts_with("up") ||
                                 role.starts_with("down"))
                            ? "mlp."
                            : "self_attn.";
      declare(p + group.str() + role.str() + ".weight", {out, in}, f32);
    }
  }
  declare("model.norm.weight", {d}, f32);
  if (!cfg.tiedEmbeddings)
    declare("lm_head.weight", {cfg.vocabSize, d}, f32);
}

SymbolRefAttr ModelBuilder::ref(StringRef name) {
  return SymbolRefAttr::get(b.getStringAttr("ckpt"),
                            {FlatSymbolRefAttr::get(b.getStringAttr(name))});
}

RankedTensorType ModelBuilder::act(int64_t width) {
  return RankedTensorType::get(
      {ShapedType::kDynamic, ShapedType::kDynamic, width}, b.getF32Type());
}

Value ModelBuilder::linear(Value x, int64_t layer, StringRef role,
                           StringRef name, int64_t out) {
  return LinearOp::create(b, loc, act(out), x, ref(name),
                          b.getI64IntegerAttr(layer), b.getStringAttr(role),
                          QuantAttr(), Attribute());
}

Value ModelBuilder::decoderLayer(Value h, int64_t l) {
  const LayerShape &ls = cfg.layers[l];
  const int64_t d = cfg.hiddenSize, hd = cfg.headDim;
  const int64_t qw = ls.numHeads * hd, kvw = ls.numKVHeads * hd;
  std::string p = llvm::formatv("model.layers.{0}.", l).str();
  auto layerAttr = b.getI64IntegerAttr(l);
  auto eps = b.getF64FloatAttr(cfg.rmsNormEps);
  auto theta = b.getF64FloatAttr(cfg.ropeTheta);

  Value n = RMSNormOp::create(b, loc, act(d), h,
                              ref(p + "input_layernorm.weight"), eps,
                              layerAttr);
  Value q = linear(n, l, "q_proj", p + "self_attn.q_proj.weight", qw);
  Value k = linear(n, l, "k_proj", p + "self_attn.k_proj.weight", kvw);
  Value v = linear(n, l, "v_proj", p + "self_attn.v_proj.weight", kvw);
  q = RoPEOp::create(b, loc, act(qw), q, b.getI64IntegerAttr(ls.numHeads),
                     b.getI64IntegerAttr(hd), theta, layerAttr);
  k = RoPEOp::create(b, loc, act(kvw), k, b.getI64IntegerAttr(ls.numKVHeads),
                     b.getI64IntegerAttr(hd), theta, layerAttr);
  Value a = AttentionOp::create(
      b, loc, act(qw), q, k, v, b.getI64IntegerAttr(ls.numHeads),
      b.getI64IntegerAttr(ls.numKVHeads), b.getI64IntegerAttr(hd),
      b.getUnitAttr(), layerAttr);
  Value o = linear(a, l, "o_proj", p + "self_attn.o_proj.weight", d);
  Value h1 = AddOp::create(b, loc, h, o, layerAttr);
  Value n2 = RMSNormOp::create(b, loc, act(d), h1,
                               ref(p + "post_attention_layernorm.weight"), eps,
                               layerAttr);
  int64_t f = ls.intermediateSize;
  Value g = linear(n2, l, "gate_proj", p + "mlp.gate_proj.weight", f);
  Value u = linear(n2, l, "up_proj", p + "mlp.up_proj.weight", f);
  Value s = SwiGLUOp::create(b, loc, g, u, layerAttr);
  Value dn = linear(s, l, "down_proj", p + "mlp.down_proj.weight", d);
  return AddOp::create(b, loc, h1, dn, layerAttr);
}

OwningOpRef<ModuleOp> ModelBuilder::build() {
  OwningOpRef<ModuleOp> module = ModuleOp::create(loc);
  module->getOperation()->setAttr("mixq.source", b.getStringAttr(ckpt.path()));
  module->getOperation()->setAttr("mixq.max_seq_len",
                                  b.getI64IntegerAttr(cfg.maxSeqLen));
  b.setInsertionPointToEnd(module->getBody());
  auto ckptOp = CheckpointOp::create(b, loc, "ckpt", ckpt.path(),
                                     ckpt.format());
  declareTensors(ckptOp);

  Type i32 = b.getI32Type();
  auto ids = RankedTensorType::get({ShapedType::kDynamic, ShapedType::kDynamic},
                                   i32);
  RankedTensorType logitsTy = act(cfg.vocabSize);
  auto lossTy = RankedTensorType::get({}, b.getF32Type());
  auto fnTy = b.getFunctionType({ids, ids}, {logitsTy, lossTy});
  auto fn = func::FuncOp::create(b, loc, "model", fnTy);
  Block *entry = fn.addEntryBlock();
  b.setInsertionPointToStart(entry);

  Value h = EmbeddingOp::create(b, loc, act(cfg.hiddenSize),
                                entry->getArgument(0),
                                ref("model.embed_tokens.weight"));
  for (int64_t l = 0; l < cfg.numLayers; ++l)
    h = decoderLayer(h, l);
  h = RMSNormOp::create(b, loc, act(cfg.hiddenSize), h,
                        ref("model.norm.weight"),
                        b.getF64FloatAttr(cfg.rmsNormEps), IntegerAttr());
  Value logits =
      cfg.tiedEmbeddings
          ? TiedLMHeadOp::create(b, loc, logitsTy, h,
                                 ref("model.embed_tokens.weight"))
                .getResult()
          : linear(h, -1, "lm_head", "lm_head.weight", cfg.vocabSize);
  Value loss = CrossEntropyOp::create(b, loc, lossTy, logits,
                                      entry->getArgument(1),
                                      b.getI64IntegerAttr(-100));
  func::ReturnOp::create(b, loc, ValueRange{logits, loss});

  if (failed(verify(*module)))
    return nullptr;
  return module;
}

OwningOpRef<ModuleOp> importCheckpoint(MLIRContext &ctx,
                                       const Checkpoint &ckpt) {
  ctx.loadDialect<MixQDialect, func::FuncDialect>();
  return ModelBuilder(ctx, ckpt).build();
}

} // namespace mixq
