//===- MixQBase.td - MixQ dialect definition ---------------*- tablegen -*-===//
//
// The mixq dialect: a LLaMA-family decoder whose linears carry per-layer
// quantization and adapter decisions, with weights referenced by name into a
// checkpoint.
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_DIALECT_MIXQ_IR_MIXQBASE_TD
#define MIXQ_DIALECT_MIXQ_IR_MIXQBASE_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"

def MixQ_Dialect : Dialect {
  let name = "mixq";
  let cppNamespace = "::mixq";
  let summary = "Mixed-precision quantized fine-tuning of LLaMA-family models";
  let description = [{
    The `mixq` dialect describes a LLaMA-family decoder (token embedding,
    RMSNorm, rotary attention with grouped KV heads, SwiGLU MLP, residual adds,
    LM head, cross-entropy loss) at the level where MixQ makes its decisions:
    every `mixq.linear` is one configurable unit (q/k/v/o/gate/up/down per
    layer, and the LM head) and carries, once a configuration is assigned, a
    quantization format (`#mixq.quant`) and an adapter (`#mixq.lora`,
    `#mixq.qblora`, `#mixq.qablora`).

    Weights are never inlined. A `mixq.checkpoint` op declares the tensors of a
    checkpoint file (name, shape, stored dtype) and ops refer to them with a
    nested symbol reference, so a 7B model's IR is a few hundred lines:

    ```mlir
    mixq.checkpoint @ckpt path "stories260K-hf" format "hf-safetensors" {
      mixq.tensor @"model.layers.0.self_attn.q_proj.weight" : tensor<64x64xf32>
    }
    func.func @model(%ids: tensor<?x?xi32>, ...) {
      ...
      %q = mixq.linear %x, @ckpt::@"model.layers.0.self_attn.q_proj.weight"
             {layer = 0 : i64, role = "q_proj",
              quant = #mixq.quant<format = nf4, block = 64, double_quant = true>,
              adapter = #mixq.lora<rank = 8, alpha = 16.0>}
             : tensor<?x?x64xf32> -> tensor<?x?x64xf32>
    }
    ```

    Shapes may differ from layer to layer (structurally pruned models have
    per-layer head counts and MLP widths); every op verifies its operand and
    weight shapes against its attributes.
  }];
  let dependentDialects = ["::mlir::func::FuncDialect",
                           "::mlir::tensor::TensorDialect",
                           "::mlir::arith::ArithDialect"];
  let useDefaultAttributePrinterParser = 1;
}

//===----------------------------------------------------------------------===//
// Enums
//===----------------------------------------------------------------------===//

def MixQ_QuantFormatKind : I32EnumAttr<"QuantFormatKind",
    "storage format of a frozen base weight", [
      I32EnumAttrCase<"f32", 0>, I32EnumAttrCase<"bf16", 1>,
      I32EnumAttrCase<"nf4", 2>, I32EnumAttrCase<"fp4", 3>,
      I32EnumAttrCase<"int8", 4>, I32EnumAttrCase<"int4", 5>,
      I32EnumAttrCase<"int3", 6>, I32EnumAttrCase<"int2", 7>]> {
  let cppNamespace = "::mixq";
  let genSpecializedAttr = 0;
}

def MixQ_AdapterInitKind : I32EnumAttr<"AdapterInitKind",
    "initialisation of an adapter", [
      I32EnumAttrCase<"gaussian", 0>, I32EnumAttrCase<"loftq", 1>,
      I32EnumAttrCase<"pissa", 2>]> {
  let cppNamespace = "::mixq";
  let genSpecializedAttr = 0;
}

class MixQ_Op<string mnemonic, list<Trait> traits = []>
    : Op<MixQ_Dialect, mnemonic, traits>;

#endif // MIXQ_DIALECT_MIXQ_IR_MIXQBASE_TD
