//===- Passes.td - MixQ passes -----------------------------*- tablegen -*-===//

#ifndef MIXQ_TRANSFORMS_PASSES_TD
#define MIXQ_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def MixQAssignConfigPass : Pass<"mixq-assign-config", "mlir::ModuleOp"> {
  let summary = "attach per-layer quantization and adapter attributes";
  let description = [{
    Reads a MixQ config JSON (docs/contracts.md: a default plus per
    layer/projection entries) and sets `quant` and `adapter` on every
    `mixq.linear` it configures. Errors, naming the config file: entries for
    layers the model does not have, an lm_head entry on a tied head, formats
    the weight's shape cannot hold (an int tile that does not divide it),
    ranks larger than the matrix, a QA-BLoRA lambda that differs from the
    quant tile.

    ```
    mixq-opt --mixq-assign-config=config=cfg.json model.mlir
    ```
  }];
  let options = [
    Option<"config", "config", "std::string", /*default=*/"\"\"",
           "path of the config JSON">,
  ];
  let dependentDialects = ["::mixq::MixQDialect"];
}

def MixQEstimateMemoryPass : Pass<"mixq-estimate-memory", "mlir::ModuleOp"> {
  let summary = "static estimate of the fine-tuning peak memory";
  let description = [{
    Computes, from the IR alone, the peak memory of one fine-tuning step at
    `batch` x `seq-len` tokens (or of the packed micro-batch `seq-lens` with
    `loss-tokens` loss rows) by category (quantized weights with their
    scales and double-quant metadata, unquantized weights, adapters, AdamW
    state, gradients, activations saved for backward, workspace), annotates
    the module with `mixq.memory_estimate` and each linear with
    `mixq.weight_bytes`, and prints a table (to stderr, or to `report`).
    The model is documented in docs/memory-model.md; the runtime measures the
    real peak against it.
  }];
  let options = [
    Option<"batch", "batch", "int64_t", /*default=*/"4", "batch size">,
    Option<"seqLen", "seq-len", "int64_t", /*default=*/"256",
           "tokens per sequence">,
    ListOption<"seqLens", "seq-lens", "int64_t",
               "the real micro-batch: the lengths of its packed sequences "
               "(replaces batch x seq-len)">,
    Option<"lossTokens", "loss-tokens", "int64_t", /*default=*/"-1",
           "tokens that carry a loss (-1: all)">,
    Option<"trainNorms", "train-norms", "bool", /*default=*/"false",
           "RMSNorm weights are trained too">,
    Option<"print", "print", "bool", /*default=*/"true",
           "print the breakdown table">,
    Option<"report", "report", "std::string", /*default=*/"\"\"",
           "write the breakdown as JSON to this file">,
    Option<"perLinear", "per-linear", "bool", /*default=*/"false",
           "also print each linear's decision (format, bits/param, bytes, "
           "adapter)">,
  ];
}

def MixQEmitVariantPass : Pass<"mixq-emit-variant", "mlir::ModuleOp"> {
  let summary = "write the variant directory the runtime runs";
  let description = [{
    Writes `out`/manifest.json (docs/contracts.md: the source checkpoint, the
    model's shape as an HF config with per-layer `mixq_layers`, and a config
    JSON with one entry per linear pinning exactly the decisions in the IR)
    and `out`/variant.mlir (this module). `mixq-run finetune|eval OUT` then
    runs what the compiler decided. Existing files in `out` are replaced
    atomically (written to a temporary name, then renamed).

    ```
    mixq-opt --mixq-assign-config=config=cfg.json \
             --mixq-emit-variant=out=variants/v1 model.mlir
    ```
  }];
  let options = [
    Option<"out", "out", "std::string", /*default=*/"\"\"",
           "the variant directory">,
  ];
}

#endif // MIXQ_TRANSFORMS_PASSES_TD
