//===- MixQOps.cpp - MixQ operation verifiers ---------------------*- C++ -*-===//

#include "mixq/Dialect/MixQ/IR/MixQ.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"
#include "llvm/ADT/StringSwitch.h"

using namespace mlir;
using namespace mixq;

static int64_t lastDim(Value v) {
  return cast<RankedTensorType>(v.getType()).getShape().back();
}

/// True when two extents can be equal (either dynamic, or both the same).
static bool compatible(int64_t a, int64_t b) {
  return ShapedType::isDynamic(a) || ShapedType::isDynamic(b) || a == b;
}

/// Checks that the batch and sequence extents of two activations agree.
static LogicalResult verifySameTokens(Operation *op, Value a, Value b) {
  ArrayRef<int64_t> sa = cast<RankedTensorType>(a.getType()).getShape();
  ArrayRef<int64_t> sb = cast<RankedTensorType>(b.getType()).getShape();
  for (int i = 0; i < 2; ++i)
    if (!compatible(sa[i], sb[i]))
      return op->emitOpError("expects matching batch and sequence extents, "
                             "got ")
             << a.getType() << " and " << b.getType();
  return success();
}

/// Resolves a weight reference to its `mixq.tensor` declaration.
static FailureOr<TensorOp> lookupWeight(Operation *op, SymbolRefAttr ref,
                                        SymbolTableCollection &tables) {
  auto tensor = tables.lookupNearestSymbolFrom<TensorOp>(op, ref);
  if (!tensor)
    return op->emitOpError("references unknown checkpoint tensor ") << ref;
  return tensor;
}

/// Checks a weight's declared shape against `expected` (dynamic = any).
static LogicalResult verifyWeightShape(Operation *op, TensorOp tensor,
                                       ArrayRef<int64_t> expected) {
  ArrayRef<int64_t> shape = tensor.getTensorType().getShape();
  bool ok = shape.size() == expected.size();
  for (size_t i = 0; ok && i < shape.size(); ++i)
    ok = compatible(shape[i], expected[i]);
  if (ok)
    return success();
  InFlightDiagnostic diag = op->emitOpError("expects weight ")
                            << tensor.getSymNameAttr() << " of shape [";
  llvm::interleaveComma(expected, diag, [&](int64_t d) {
    if (ShapedType::isDynamic(d))
      diag << "?";
    else
      diag << d;
  });
  diag << "], got " << tensor.getTensorType();
  return diag;
}

//===----------------------------------------------------------------------===//
// CheckpointOp / TensorOp
//===----------------------------------------------------------------------===//

void CheckpointOp::build(OpBuilder &b, OperationState &state, StringRef name,
                         StringRef path, StringRef format) {
  state.addAttribute(mlir::SymbolTable::getSymbolAttrName(), b.getStringAttr(name));
  state.addAttribute(getPathAttrName(state.name), b.getStringAttr(path));
  state.addAttribute(getFormatAttrName(state.name), b.getStringAttr(format));
  Region *body = state.addRegion();
  body->push_back(new Block());
}

LogicalResult CheckpointOp::verify() {
  StringRef f = getFormat();
  if (f != "hf-safetensors" && f != "llama2c" && f != "torchscript" &&
      f != "config-only")
    return emitOpError("expects format to be one of hf-safetensors, llama2c, "
                       "torchscript, config-only, got '")
           << f << "'";
  for (Operation &op : getBody().front())
    if (!isa<TensorOp>(op))
      return op.emitOpError("is not allowed inside a mixq.checkpoint");
  return success();
}

LogicalResult TensorOp::verify() {
  RankedTensorType t = getTensorType();
  if (!t.hasStaticShape())
    return emitOpError("expects a static shape, got ") << t;
  Type e = t.getElementType();
  if (!e.isF32() && !e.isF16() && !e.isBF16() && !e.isInteger(8) &&
      !e.isInteger(32) && !e.isInteger(64))
    return emitOpError("expects element type f32, f16, bf16, i8, i32 or i64, "
                       "got ")
           << e;
  return success();
}

//===----------------------------------------------------------------------===//
// EmbeddingOp / RMSNormOp / TiedLMHeadOp
//===----------------------------------------------------------------------===//

LogicalResult EmbeddingOp::verify() {
  ArrayRef<int64_t> ids = getIds().getType().getShape();
  ArrayRef<int64_t> out = getResult().getType().getShape();
  if (!compatible(ids[0], out[0]) || !compatible(ids[1], out[1]))
    return emitOpError("expects result extents [B, T] to match the ids");
  if (ShapedType::isDynamic(out[2]))
    return emitOpError("expects a static hidden size");
  return success();
}

LogicalResult
EmbeddingOp::verifySymbolUses(SymbolTableCollection &tables) {
  FailureOr<TensorOp> w = lookupWeight(*this, getWeight(), tables);
  if (failed(w))
    return failure();
  return verifyWeightShape(*this, *w,
                           {ShapedType::kDynamic, lastDim(getResult())});
}

LogicalResult RMSNormOp::verify() {
  if (getInput().getType() != getResult().getType())
    return emitOpError("expects the result type to equal the input type");
  if (getEps().convertToDouble() <= 0.0)
    return emitOpError("expects a positive eps");
  return success();
}

LogicalResult RMSNormOp::verifySymbolUses(SymbolTableCollection &tables) {
  FailureOr<TensorOp> w = lookupWeight(*this, getWeight(), tables);
  if (failed(w))
    return failure();
  return verifyWeightShape(*this, *w, {lastDim(getInput())});
}

LogicalResult TiedLMHeadOp::verify() {
  return verifySameTokens(*this, getInput(), getResult());
}

LogicalResult TiedLMHeadOp::verifySymbolUses(SymbolTableCollection &tables) {
  FailureOr<TensorOp> w = lookupWeight(*this, getWeight(), tables);
  if (failed(w))
    return failure();
  return verifyWeightShape(*this, *w,
                           {lastDim(getResult()), lastDim(getInput())});
}

//===----------------------------------------------------------------------===//
// LinearOp
//===----------------------------------------------------------------------===//

static bool isKnownRole(StringRef role) {
  return llvm::StringSwitch<bool>(role)
      .Cases({"q_proj", "k_proj", "v_proj", "o_proj"}, true)
      .Cases({"gate_proj", "up_proj", "down_proj", "lm_head"}, true)
      .Default(false);
}

/// Checks the quantization format against the [out, in] weight. Blocks of
/// nf4/fp4/int8 are row-local and the last one of a row may be partial (as
/// the kernels store them), so any input width takes any block; int tiles
/// must divide the weight (QA-BLoRA folds one adapter value per tile).
static LogicalResult verifyQuantShape(LinearOp op, QuantAttr q, int64_t out,
                                      int64_t in) {
  if (!q.isIntTile())
    return success();
  ArrayRef<int64_t> tile = q.getTile();
  if (out % tile[0] != 0 || in % tile[1] != 0)
    return op.emitOpError("expects the quant tile [")
           << tile[0] << ", " << tile[1] << "] to divide the weight [" << out
           << ", " << in << "]";
  return success();
}

/// Checks the adapter against the [out, in] weight and the quant format.
static LogicalResult verifyAdapterShape(LinearOp op, Attribute adapter,
                                        QuantAttr q, int64_t out, int64_t in) {
  int64_t maxRank = std::min(out, in);
  if (auto lora = dyn_cast<LoRAAttr>(adapter)) {
    if (lora.getRank() > maxRank)
      return op.emitOpError("expects rank <= min(out, in) = ")
             << maxRank << ", got " << lora.getRank();
    return success();
  }
  if (auto qb = dyn_cast<QBLoRAAttr>(adapter)) {
    int64_t l = qb.getLambda();
    if (out % l != 0 || in % l != 0)
      return op.emitOpError("expects lambda ")
             << l << " to divide the weight [" << out << ", " << in << "]";
    if (qb.getRank() * l > std::min(out, in) / l)
      return op.emitOpError("expects rank * lambda <= min(out, in) / lambda "
                            "= ")
             << std::min(out, in) / l << ", got " << qb.getRank() * l;
    return success();
  }
  auto qa = cast<QABLoRAAttr>(adapter);
  ArrayRef<int64_t> lambda = qa.getLambda();
  if (!q || !q.isIntTile())
    return op.emitOpError("expects qablora on an int4/int3/int2 weight, got ")
           << (q ? stringifyQuantFormatKind(q.getFormat()) : "no quant");
  if (q.getTile() != lambda)
    return op.emitOpError("expects the qablora lambda [")
           << lambda[0] << ", " << lambda[1] << "] to equal the quant tile ["
           << q.getTile()[0] << ", " << q.getTile()[1] << "]";
  return success();
}

LogicalResult LinearOp::verify() {
  if (failed(verifySameTokens(*this, getInput(), getResult())))
    return failure();
  StringRef role = getRole();
  if (!isKnownRole(role))
    return emitOpError("expects role to be one of q_proj, k_proj, v_proj, "
                       "o_proj, gate_proj, up_proj, down_proj, lm_head, got '")
           << role << "'";
  int64_t layer = getLayer();
  if (role == "lm_head" ? layer != -1 : layer < 0)
    return emitOpError("expects layer ")
           << (role == "lm_head" ? "-1 for lm_head" : ">= 0 for a projection")
           << ", got " << layer;
  int64_t in = getInFeatures(), out = getOutFeatures();
  if (ShapedType::isDynamic(in) || ShapedType::isDynamic(out))
    return emitOpError("expects static input and output features");
  QuantAttr q = getQuantAttr();
  if (q && failed(verifyQuantShape(*this, q, out, in)))
    return failure();
  if (Attribute a = getAdapterAttr())
    return verifyAdapterShape(*this, a, q, out, in);
  return success();
}

LogicalResult LinearOp::verifySymbolUses(SymbolTableCollection &tables) {
  FailureOr<TensorOp> w = lookupWeight(*this, getWeight(), tables);
  if (failed(w))
    return failure();
  return verifyWeightShape(*this, *w, {getOutFeatures(), getInFeatures()});
}

//===----------------------------------------------------------------------===//
// RoPEOp / AttentionOp / CrossEntropyOp
//===----------------------------------------------------------------------===//

LogicalResult RoPEOp::verify() {
  int64_t heads = getNumHeads(), hd = getHeadDim();
  if (heads <= 0 || hd <= 0 || hd % 2 != 0)
    return emitOpError("expects positive num_heads and an even head_dim, got "
                       "num_heads = ")
           << heads << ", head_dim = " << hd;
  if (!compatible(lastDim(getInput()), heads * hd))
    return emitOpError("expects the last extent to be num_heads * head_dim = ")
           << heads * hd << ", got " << lastDim(getInput());
  if (getTheta().convertToDouble() <= 0.0)
    return emitOpError("expects a positive theta");
  return success();
}

LogicalResult AttentionOp::verify() {
  int64_t h = getNumHeads(), g = getNumKvHeads(), hd = getHeadDim();
  if (h <= 0 || g <= 0 || hd <= 0)
    return emitOpError("expects positive num_heads, num_kv_heads, head_dim");
  if (h % g != 0)
    return emitOpError("expects num_heads to be a multiple of num_kv_heads, "
                       "got ")
           << h << " and " << g;
  if (!compatible(lastDim(getQ()), h * hd) ||
      !compatible(lastDim(getResult()), h * hd))
    return emitOpError("expects q and result last extent num_heads * "
                       "head_dim = ")
           << h * hd;
  if (!compatible(lastDim(getK()), g * hd) ||
      !compatible(lastDim(getV()), g * hd))
    return emitOpError("expects k and v last extent num_kv_heads * head_dim "
                       "= ")
           << g * hd;
  if (failed(verifySameTokens(*this, getQ(), getK())) ||
      failed(verifySameTokens(*this, getQ(), getV())))
    return failure();
  return verifySameTokens(*this, getQ(), getResult());
}

LogicalResult CrossEntropyOp::verify() {
  ArrayRef<int64_t> logits = getLogits().getType().getShape();
  ArrayRef<int64_t> labels = getLabels().getType().getShape();
  if (!compatible(logits[0], labels[0]) || !compatible(logits[1], labels[1]))
    return emitOpError("expects labels [B, T] to match the logits");
  return success();
}

#define GET_OP_CLASSES
#include "mixq/Dialect/MixQ/IR/MixQOps.cpp.inc"
