//===- MixQAttrs.td - MixQ quantization and adapter attributes -*- tablegen -*-===//

#ifndef MIXQ_DIALECT_MIXQ_IR_MIXQATTRS_TD
#define MIXQ_DIALECT_MIXQ_IR_MIXQATTRS_TD

include "mixq/Dialect/MixQ/IR/MixQBase.td"

class MixQ_Attr<string name, string attrMnemonic, list<Trait> traits = []>
    : AttrDef<MixQ_Dialect, name, traits> {
  let mnemonic = attrMnemonic;
}

/// A double, printed so that it always re-parses as a float.
class MixQ_DoubleParameter<string default>
    : AttrOrTypeParameter<"::llvm::APFloat", "a double"> {
  let defaultValue = "::llvm::APFloat(" # default # ")";
  let comparator = "$_lhs.bitwiseIsEqual($_rhs)";
  let parser = "::mixq::detail::parseDouble($_parser)";
  let printer = "::mixq::detail::printDouble($_printer, $_self)";
}

/// A list of integers in square brackets: `[8, 8]`.
class MixQ_IntListParameter<string desc>
    : ArrayRefParameter<"int64_t", desc> {
  let parser = "::mixq::detail::parseIntList($_parser)";
  let printer = "::mixq::detail::printIntList($_printer, $_self)";
}

class MixQ_OptionalIntListParameter<string desc>
    : OptionalArrayRefParameter<"int64_t", desc> {
  let parser = "::mixq::detail::parseIntList($_parser)";
  let printer = "::mixq::detail::printIntList($_printer, $_self)";
}

/// A boolean spelled `true` / `false`.
class MixQ_BoolParameter<string default>
    : DefaultValuedParameter<"bool", default> {
  let parser = "::mixq::detail::parseBool($_parser)";
  let printer = "$_printer << ($_self ? \"true\" : \"false\")";
}

def MixQ_QuantAttr : MixQ_Attr<"Quant", "quant"> {
  let summary = "storage format of a frozen base weight";
  let description = [{
    `nf4` and `fp4` (4-bit codebooks with an absmax per 1-D block, optionally
    double-quantized), `int8` (symmetric absmax per block), `int4`/`int3`/
    `int2` (min-max asymmetric `w = alpha * q + beta` per 2-D `tile` of
    [output rows, input columns]), `bf16` and `f32` (unquantized).

    ```mlir
    #mixq.quant<format = nf4, block = 64, double_quant = true>
    #mixq.quant<format = int4, tile = [8, 8]>
    ```
  }];
  let parameters = (ins
    EnumParameter<MixQ_QuantFormatKind>:$format,
    DefaultValuedParameter<"int64_t", "64">:$block,
    MixQ_BoolParameter<"false">:$double_quant,
    MixQ_OptionalIntListParameter<"2-D tile [rows, cols]">:$tile
  );
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// Bits of one stored element (32, 16, 8, 4, 3 or 2).
    int64_t getBits() const;
    bool isIntTile() const;
  }];
}

def MixQ_LoRAAttr : MixQ_Attr<"LoRA", "lora"> {
  let summary = "low-rank adapter: y += (alpha / rank) * B A x";
  let description = [{
    A [rank, in] and B [out, rank] in PEFT's layout. `init` picks Gaussian
    (A random, B zero), LoftQ (`init_iters` alternations) or PiSSA.

    ```mlir
    #mixq.lora<rank = 8, alpha = 16.0, dropout = 0.05, init = loftq, init_iters = 5>
    ```
  }];
  let parameters = (ins
    "int64_t":$rank,
    MixQ_DoubleParameter<"0.0">:$alpha,
    MixQ_DoubleParameter<"0.0">:$dropout,
    DefaultValuedParameter<"::mixq::AdapterInitKind",
                           "::mixq::AdapterInitKind::gaussian">:$init,
    DefaultValuedParameter<"int64_t", "1">:$init_iters
  );
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

def MixQ_QBLoRAAttr : MixQ_Attr<"QBLoRA", "qblora"> {
  let summary = "balanced low-rank adapter (Q-BLoRA)";
  let description = [{
    AvgPool(lambda) on the input, A [rank*lambda, in/lambda], B
    [out/lambda, rank*lambda], repeat_interleave(lambda) on the output; the
    same parameter count as LoRA of `rank`, merging losslessly into W.

    ```mlir
    #mixq.qblora<rank = 4, lambda = 2, alpha = 8.0>
    ```
  }];
  let parameters = (ins
    "int64_t":$rank,
    "int64_t":$lambda,
    MixQ_DoubleParameter<"0.0">:$alpha,
    MixQ_DoubleParameter<"0.0">:$dropout,
    DefaultValuedParameter<"::mixq::AdapterInitKind",
                           "::mixq::AdapterInitKind::gaussian">:$init
  );
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

def MixQ_QABLoRAAttr : MixQ_Attr<"QABLoRA", "qablora"> {
  let summary = "quantization-aware balanced adapter (QA-BLoRA)";
  let description = [{
    A single matrix H [out/lambda_rows, in/lambda_cols] on the input pooled by
    lambda_cols, its output repeated lambda_rows times; (lambda_rows,
    lambda_cols) must equal the int quant tile so that H folds into the
    zero-points: a pure low-bit model.

    ```mlir
    #mixq.qablora<lambda = [8, 8], alpha = 1.0>
    ```
  }];
  let parameters = (ins
    MixQ_IntListParameter<"[rows, cols]">:$lambda,
    MixQ_DoubleParameter<"0.0">:$alpha,
    MixQ_DoubleParameter<"0.0">:$dropout
  );
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

#endif // MIXQ_DIALECT_MIXQ_IR_MIXQATTRS_TD
