//===- MixQOps.td - MixQ operations ------------------------*- tablegen -*-===//

#ifndef MIXQ_DIALECT_MIXQ_IR_MIXQOPS_TD
#define MIXQ_DIALECT_MIXQ_IR_MIXQOPS_TD

include "mixq/Dialect/MixQ/IR/MixQBase.td"
include "mixq/Dialect/MixQ/IR/MixQAttrs.td"
include "mlir/IR/SymbolInterfaces.td"
include "mlir/IR/RegionKindInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/Interfaces/InferTypeOpInterface.td"

//===----------------------------------------------------------------------===//
// Checkpoint declarations
//===----------------------------------------------------------------------===//

def MixQ_CheckpointOp : MixQ_Op<"checkpoint", [
    Symbol, SymbolTable, IsolatedFromAbove, NoTerminator, SingleBlock,
    NoRegionArguments]> {
  let summary = "a checkpoint file and the tensors it holds";
  let description = [{
    Declares the tensors (name, shape, stored dtype) of a checkpoint. Ops name
    a weight with a nested reference `@ckpt::@"tensor.name"`; the data stays
    in the file. `format` is one of `hf-safetensors`, `llama2c`,
    `torchscript`, `config-only` (shapes only: the compiler can reason about a
    model whose weights it cannot load).

    ```mlir
    mixq.checkpoint @ckpt path "models/stories260K-hf" format "hf-safetensors" {
      mixq.tensor @"model.norm.weight" : tensor<64xf32>
    }
    ```
  }];
  let arguments = (ins SymbolNameAttr:$sym_name, StrAttr:$path,
                       StrAttr:$format);
  let regions = (region SizedRegion<1>:$body);
  let assemblyFormat = [{
    $sym_name `path` $path `format` $format attr-dict-with-keyword $body
  }];
  let hasVerifier = 1;
  let skipDefaultBuilders = 1;
  let builders = [OpBuilder<(ins "::llvm::StringRef":$name,
                                 "::llvm::StringRef":$path,
                                 "::llvm::StringRef":$format)>];
}

def MixQ_TensorOp : MixQ_Op<"tensor", [
    Symbol, HasParent<"CheckpointOp">]> {
  let summary = "a named tensor of a checkpoint";
  let description = [{
    ```mlir
    mixq.tensor @"model.layers.0.mlp.down_proj.weight" : tensor<64x172xbf16>
    ```
  }];
  let arguments = (ins SymbolNameAttr:$sym_name,
                       TypeAttrOf<AnyRankedTensor>:$type);
  let assemblyFormat = "$sym_name `:` $type attr-dict";
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    ::mlir::RankedTensorType getTensorType() {
      return ::llvm::cast<::mlir::RankedTensorType>(getType());
    }
  }];
}

//===----------------------------------------------------------------------===//
// Decoder ops
//===----------------------------------------------------------------------===//

/// An op that names checkpoint weights through symbol references.
class MixQ_WeightOp<string mnemonic, list<Trait> traits = []>
    : MixQ_Op<mnemonic, !listconcat(traits, [
        Pure, DeclareOpInterfaceMethods<SymbolUserOpInterface>])>;

def MixQ_ActivationTensor : 3DTensorOf<[F32, BF16, F16]>;

def MixQ_EmbeddingOp : MixQ_WeightOp<"embedding"> {
  let summary = "token embedding lookup";
  let description = [{
    ```mlir
    %h = mixq.embedding %ids, @ckpt::@"model.embed_tokens.weight"
           : tensor<?x?xi32> -> tensor<?x?x64xf32>
    ```
  }];
  let arguments = (ins 2DTensorOf<[I32, I64]>:$ids, SymbolRefAttr:$weight);
  let results = (outs MixQ_ActivationTensor:$result);
  let assemblyFormat = [{
    $ids `,` $weight attr-dict `:` type($ids) `->` type($result)
  }];
  let hasVerifier = 1;
}

def MixQ_RMSNormOp : MixQ_WeightOp<"rms_norm"> {
  let summary = "RMSNorm: x / sqrt(mean(x^2) + eps) * weight";
  let description = [{
    ```mlir
    %n = mixq.rms_norm %x, @ckpt::@"model.layers.0.input_layernorm.weight"
           {eps = 1.0e-05 : f64, layer = 0 : i64}
           : tensor<?x?x64xf32> -> tensor<?x?x64xf32>
    ```
  }];
  let arguments = (ins MixQ_ActivationTensor:$input, SymbolRefAttr:$weight,
                       F64Attr:$eps, OptionalAttr<I64Attr>:$layer);
  let results = (outs MixQ_ActivationTensor:$result);
  let assemblyFormat = [{
    $input `,` $weight attr-dict `:` type($input) `->` type($result)
  }];
  let hasVerifier = 1;
}

def MixQ_LinearOp : MixQ_WeightOp<"linear"> {
  let summary = "a configurable projection y = x W^T (+ adapter)";
  let description = [{
    The unit the search configures: `role` is one of q_proj, k_proj, v_proj,
    o_proj, gate_proj, up_proj, down_proj (with `layer` >= 0) or lm_head
    (`layer` = -1). The weight is [out, in]. `quant` and `adapter` are attached
    by `--mixq-assign-config`.

    ```mlir
    %y = mixq.linear %x, @ckpt::@"model.layers.3.self_attn.q_proj.weight"
           {layer = 3 : i64, role = "q_proj",
            quant = #mixq.quant<format = nf4, block = 64, double_quant = true>,
            adapter = #mixq.lora<rank = 8, alpha = 16.0>}
           : tensor<?x?x64xf32> -> tensor<?x?x64xf32>
    ```
  }];
  let arguments = (ins
    MixQ_ActivationTensor:$input, SymbolRefAttr:$weight,
    I64Attr:$layer, StrAttr:$role,
    OptionalAttr<MixQ_QuantAttr>:$quant,
    OptionalAttr<AnyAttrOf<[MixQ_LoRAAttr, MixQ_QBLoRAAttr,
                            MixQ_QABLoRAAttr]>>:$adapter);
  let results = (outs MixQ_ActivationTensor:$result);
  let assemblyFormat = [{
    $input `,` $weight attr-dict `:` type($input) `->` type($result)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    int64_t getInFeatures() {
      return ::llvm::cast<::mlir::RankedTensorType>(getInput().getType())
          .getShape().back();
    }
    int64_t getOutFeatures() {
      return ::llvm::cast<::mlir::RankedTensorType>(getResult().getType())
          .getShape().back();
    }
  }];
}

def MixQ_RoPEOp : MixQ_Op<"rope", [Pure, SameOperandsAndResultType]> {
  let summary = "rotary position embedding (rotate_half layout)";
  let description = [{
    Rotates each head's pairs (i, i + head_dim/2) by position * theta^(-2i/
    head_dim); positions are 0..T-1.

    ```mlir
    %r = mixq.rope %q {num_heads = 8 : i64, head_dim = 8 : i64,
                       theta = 1.0e+04 : f64} : tensor<?x?x64xf32>
    ```
  }];
  let arguments = (ins MixQ_ActivationTensor:$input, I64Attr:$num_heads,
                       I64Attr:$head_dim, F64Attr:$theta,
                       OptionalAttr<I64Attr>:$layer);
  let results = (outs MixQ_ActivationTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input)";
  let hasVerifier = 1;
}

def MixQ_AttentionOp : MixQ_Op<"attention", [Pure]> {
  let summary = "scaled dot-product attention with grouped KV heads";
  let description = [{
    q is [B, T, num_heads*head_dim], k and v [B, T, num_kv_heads*head_dim];
    each group of num_heads/num_kv_heads query heads shares one KV head.
    `causal` masks future positions (always set for a decoder).

    ```mlir
    %o = mixq.attention %q, %k, %v {num_heads = 8 : i64,
           num_kv_heads = 4 : i64, head_dim = 8 : i64, causal}
           : tensor<?x?x64xf32>, tensor<?x?x32xf32>, tensor<?x?x32xf32>
             -> tensor<?x?x64xf32>
    ```
  }];
  let arguments = (ins MixQ_ActivationTensor:$q, MixQ_ActivationTensor:$k,
                       MixQ_ActivationTensor:$v, I64Attr:$num_heads,
                       I64Attr:$num_kv_heads, I64Attr:$head_dim,
                       UnitAttr:$causal, OptionalAttr<I64Attr>:$layer);
  let results = (outs MixQ_ActivationTensor:$result);
  let assemblyFormat = [{
    $q `,` $k `,` $v attr-dict `:` type($q) `,` type($k) `,` type($v) `->`
    type($result)
  }];
  let hasVerifier = 1;
}

def MixQ_SwiGLUOp : MixQ_Op<"swiglu", [Pure, SameOperandsAndResultType]> {
  let summary = "silu(gate) * up";
  let description = [{
    ```mlir
    %a = mixq.swiglu %gate, %up : tensor<?x?x172xf32>
    ```
  }];
  let arguments = (ins MixQ_ActivationTensor:$gate, MixQ_ActivationTensor:$up,
                       OptionalAttr<I64Attr>:$layer);
  let results = (outs MixQ_ActivationTensor:$result);
  let assemblyFormat = "$gate `,` $up attr-dict `:` type($result)";
}

def MixQ_AddOp : MixQ_Op<"add", [Pure, SameOperandsAndResultType,
                                 Commutative]> {
  let summary = "residual add";
  let description = [{
    ```mlir
    %h1 = mixq.add %h, %o : tensor<?x?x64xf32>
    ```
  }];
  let arguments = (ins MixQ_ActivationTensor:$lhs, MixQ_ActivationTensor:$rhs,
                       OptionalAttr<I64Attr>:$layer);
  let results = (outs MixQ_ActivationTensor:$result);
  let assemblyFormat = "$lhs `,` $rhs attr-dict `:` type($result)";
}

def MixQ_TiedLMHeadOp : MixQ_WeightOp<"tied_lm_head"> {
  let summary = "LM head sharing the token embedding matrix";
  let description = [{
    logits = x E^T with E the [vocab, hidden] embedding. An untied head is a
    `mixq.linear` with role "lm_head" (and is configurable).

    ```mlir
    %logits = mixq.tied_lm_head %h, @ckpt::@"model.embed_tokens.weight"
                : tensor<?x?x64xf32> -> tensor<?x?x512xf32>
    ```
  }];
  let arguments = (ins MixQ_ActivationTensor:$input, SymbolRefAttr:$weight);
  let results = (outs MixQ_ActivationTensor:$result);
  let assemblyFormat = [{
    $input `,` $weight attr-dict `:` type($input) `->` type($result)
  }];
  let hasVerifier = 1;
}

def MixQ_CrossEntropyOp : MixQ_Op<"cross_entropy", [Pure]> {
  let summary = "mean next-token cross-entropy";
  let description = [{
    Mean over positions whose label is not `ignore_index` of
    -log softmax(logits)[label]; labels are already shifted.

    ```mlir
    %loss = mixq.cross_entropy %logits, %labels {ignore_index = -100 : i64}
              : tensor<?x?x512xf32>, tensor<?x?xi32> -> tensor<f32>
    ```
  }];
  let arguments = (ins MixQ_ActivationTensor:$logits,
                       2DTensorOf<[I32, I64]>:$labels,
                       DefaultValuedAttr<I64Attr, "-100">:$ignore_index);
  let results = (outs 0DTensorOf<[F32]>:$loss);
  let assemblyFormat = [{
    $logits `,` $labels attr-dict `:` type($logits) `,` type($labels) `->`
    type($loss)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Fused kernels (--mixq-fuse-linear-adapter, owned by the Methods library)
//===----------------------------------------------------------------------===//

def MixQ_FusedLinearOp : MixQ_WeightOp<"fused_linear"> {
  let summary = "dequant + linear + adapter in one specialised kernel";
  let description = [{
    A `mixq.linear` whose quantized base, GEMM and adapter run as one fused
    kernel (kernels/FusedLinear.h on CPU, one generated kernel per
    specialisation on CUDA). `kernel` names the specialisation and is
    determined by the other attributes: the format with its block (`_b64`,
    `_dq` for double quantization) or int tile (`_t8x8`), the adapter with
    its rank and lambda (`_lora_r8`, `_qblora_r4_l2`, `_qablora_l8x8`) and
    the weight's shape out x in. The quantized arrays are stored under the
    weight's name in the variant's weights file (docs/contracts.md).

    ```mlir
    %y = mixq.fused_linear %x, @ckpt::@"model.layers.0.mlp.down_proj.weight"
           {kernel = "nf4_b64_dq_lora_r8_64x172", layer = 0 : i64,
            role = "down_proj",
            quant = #mixq.quant<format = nf4, double_quant = true>,
            adapter = #mixq.lora<rank = 8, alpha = 16.0>}
           : tensor<?x?x172xf32> -> tensor<?x?x64xf32>
    ```
  }];
  let arguments = (ins
    MixQ_ActivationTensor:$input, SymbolRefAttr:$weight,
    I64Attr:$layer, StrAttr:$role, MixQ_QuantAttr:$quant,
    OptionalAttr<AnyAttrOf<[MixQ_LoRAAttr, MixQ_QBLoRAAttr,
                            MixQ_QABLoRAAttr]>>:$adapter,
    StrAttr:$kernel);
  let results = (outs MixQ_ActivationTensor:$result);
  let assemblyFormat = [{
    $input `,` $weight attr-dict `:` type($input) `->` type($result)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    int64_t getInFeatures() {
      return ::llvm::cast<::mlir::RankedTensorType>(getInput().getType())
          .getShape().back();
    }
    int64_t getOutFeatures() {
      return ::llvm::cast<::mlir::RankedTensorType>(getResult().getType())
          .getShape().back();
    }
    /// The kernel specialisation of a [out, in] weight in `quant` with
    /// `adapter` (null for none), e.g. "nf4_b64_dq_lora_r8_64x172".
    static std::string getKernelName(::mixq::QuantAttr quant,
                                     ::mlir::Attribute adapter, int64_t out,
                                     int64_t in);
  }];
  let extraClassDefinition = [{
    std::string $cppClass::getKernelName(::mixq::QuantAttr quant,
                                         ::mlir::Attribute adapter,
                                         int64_t out, int64_t in) {
      std::string name;
      ::llvm::raw_string_ostream os(name);
      os << stringifyQuantFormatKind(quant.getFormat());
      if (quant.isIntTile())
        os << "_t" << quant.getTile()[0] << "x" << quant.getTile()[1];
      else if (quant.getBits() < 16)
        os << "_b" << quant.getBlock();
      if (quant.getDoubleQuant())
        os << "_dq";
      if (auto lora = ::llvm::dyn_cast_or_null<LoRAAttr>(adapter))
        os << "_lora_r" << lora.getRank();
      else if (auto qb = ::llvm::dyn_cast_or_null<QBLoRAAttr>(adapter))
        os << "_qblora_r" << qb.getRank() << "_l" << qb.getLambda();
      else if (auto qa = ::llvm::dyn_cast_or_null<QABLoRAAttr>(adapter))
        os << "_qablora_l" << qa.getLambda()[0] << "x" << qa.getLambda()[1];
      os << "_" << out << "x" << in;
      return name;
    }

    ::llvm::LogicalResult $cppClass::verify() {
      if (::mlir::failed(verifySameTokens(*this, getInput(), getResult())))
        return ::mlir::failure();
      if (!isKnownRole(getRole()))
        return emitOpError("expects role to be one of q_proj, k_proj, "
                           "v_proj, o_proj, gate_proj, up_proj, down_proj, "
                           "lm_head, got '")
               << getRole() << "'";
      int64_t in = getInFeatures(), out = getOutFeatures();
      if (::mlir::ShapedType::isDynamic(in) ||
          ::mlir::ShapedType::isDynamic(out))
        return emitOpError("expects static input and output features");
      QuantAttr q = getQuantAttr();
      if (auto qa = ::llvm::dyn_cast_or_null<QABLoRAAttr>(getAdapterAttr()))
        if (!q.isIntTile() || q.getTile() != qa.getLambda())
          return emitOpError("expects the qablora lambda to equal an int "
                             "quant tile");
      if (q.isIntTile() &&
          (out % q.getTile()[0] != 0 || in % q.getTile()[1] != 0))
        return emitOpError("expects the quant tile to divide the weight [")
               << out << ", " << in << "]";
      std::string expected = getKernelName(q, getAdapterAttr(), out, in);
      if (getKernel() != expected)
        return emitOpError("expects kernel \"")
               << expected << "\", got \"" << getKernel() << "\"";
      return ::mlir::success();
    }

    ::llvm::LogicalResult
    $cppClass::verifySymbolUses(::mlir::SymbolTableCollection &tables) {
      ::mlir::FailureOr<TensorOp> w = lookupWeight(*this, getWeight(), tables);
      if (::mlir::failed(w))
        return ::mlir::failure();
      return verifyWeightShape(*this, *w,
                               {getOutFeatures(), getInFeatures()});
    }
  }];
}

#endif // MIXQ_DIALECT_MIXQ_IR_MIXQOPS_TD
