//===- Passes.td - MixQ method passes ----------------------*- tablegen -*-===//
//
// The passes that turn a configured module into a runnable variant and that
// implement the baselines' initialisations and merges (docs/methods.md).
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_METHODS_PASSES_TD
#define MIXQ_METHODS_PASSES_TD

include "mlir/Pass/PassBase.td"

def MixQMaterializeQuantPass
    : Pass<"mixq-materialize-quant", "mlir::ModuleOp"> {
  let summary = "quantize every configured weight into the variant's weights";
  let description = [{
    Reads the weight of every `mixq.linear` that has a `quant` attribute from
    the module's checkpoint, quantizes it with the kernels library into its
    format and writes the packed arrays into `out`/weights.safetensors
    (names `<weight>.qcodes`, `.qscales`, `.qzeros`, `.qscale_codes`,
    `.qscale_absmax`, `.qscale_offset`, the spec in the header's
    `__metadata__`; docs/contracts.md). Tensors already in that file are kept
    unless replaced. Marks each linear with `mixq.materialized` and the module
    with `mixq.weights` (the file's path), which `--mixq-emit-variant` writes
    into manifest.json.

    ```
    mixq-opt --mixq-assign-config=config=cfg.json \
             --mixq-materialize-quant=out=variants/v1 model.mlir
    ```
  }];
  let options = [
    Option<"out", "out", "std::string", /*default=*/"\"\"",
           "the variant directory">,
  ];
  let dependentDialects = ["::mixq::MixQDialect"];
}

def MixQInitAdaptersPass : Pass<"mixq-init-adapters", "mlir::ModuleOp"> {
  let summary = "initialise adapters (gaussian, LoftQ, PiSSA)";
  let description = [{
    For every `mixq.linear` with an adapter, computes its initial parameters
    from the checkpoint weight W and the linear's quant format:
    `gaussian` (A ~ N(0, 1/r) as PEFT's init_lora_weights="gaussian", or
    Kaiming-uniform with `gaussian=kaiming`; B = 0; QA-BLoRA H = 0),
    `loftq` (init_iters alternations Q = quant(W - s*AB), s*AB = the best
    rank-r approximation of W - Q; the base becomes the LoftQ Q) and `pissa`
    (the top-r singular triplets as the adapter, A = sqrt(S/s) V^T,
    B = U sqrt(S/s); the residual is quantized). Q-BLoRA adapters use the
    same constructions on the lambda x lambda block sums.

    Writes the adapters under PEFT names
    (`base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight`
    [r, in], `lora_B.weight` [out, r], `lora_H.weight`) into
    `out`/weights.safetensors, and for LoftQ/PiSSA the new f32 base (under
    the weight's own name, overriding the checkpoint) and its packed
    quantization. Annotates each linear with `mixq.init_error`
    (||W - Q - s*AB||_F) and `mixq.qlora_error` (||W - quant(W)||_F) and
    writes the same per layer to `out`/init_report.json.
  }];
  let options = [
    Option<"out", "out", "std::string", /*default=*/"\"\"",
           "the variant directory">,
    Option<"seed", "seed", "uint64_t", /*default=*/"0",
           "seed of the random initialisation">,
    Option<"gaussian", "gaussian", "std::string", /*default=*/"\"normal\"",
           "random A for init = gaussian: normal (N(0, 1/r)) or kaiming "
           "(PEFT's default Kaiming-uniform)">,
  ];
  let dependentDialects = ["::mixq::MixQDialect"];
}

def MixQMergeAdaptersPass : Pass<"mixq-merge-adapters", "mlir::ModuleOp"> {
  let summary = "merge trained adapters into the base weights";
  let description = [{
    Reads trained adapters (PEFT names, `lora_A`/`lora_B`/`lora_H`) from
    `adapters` (a safetensors file or a directory holding
    adapter_model.safetensors) and merges each linear's adapter into its
    base: LoRA and Q-BLoRA (Delta W expanded by repeat_interleave / lambda)
    into an f32 W = dequant(Q) + s * Delta W (lossless; the linear becomes
    `f32`), QA-BLoRA's H folded into the zero points beta of its int tiles
    (the linear stays int4/3/2: a pure low-bit model). The adapter attribute
    is removed; the merged weights go into `out`/weights.safetensors.
  }];
  let options = [
    Option<"adapters", "adapters", "std::string", /*default=*/"\"\"",
           "trained adapters (safetensors file or directory)">,
    Option<"out", "out", "std::string", /*default=*/"\"\"",
           "the variant directory">,
  ];
  let dependentDialects = ["::mixq::MixQDialect"];
}

def MixQFuseLinearAdapterPass
    : Pass<"mixq-fuse-linear-adapter", "mlir::ModuleOp"> {
  let summary = "dequant + linear + adapter into one mixq.fused_linear";
  let description = [{
    Replaces every `mixq.linear` that has a `quant` attribute by a
    `mixq.fused_linear` naming its kernel specialisation (format, block or
    tile, adapter, rank, lambda, shape), e.g. `nf4_b64_dq_lora_r8_64x172`.
    With `out`, the fused module is also written to `out`/variant.mlir
    (the `--mixq-compile` pipeline fuses after `--mixq-emit-variant`, whose
    manifest reads the decisions from `mixq.linear` ops).
  }];
  let options = [
    Option<"out", "out", "std::string", /*default=*/"\"\"",
           "also write the fused module to out/variant.mlir">,
  ];
  let dependentDialects = ["::mixq::MixQDialect"];
}

def MixQCompilePass : Pass<"mixq-compile", "mlir::ModuleOp"> {
  let summary = "the whole pipeline from an imported module to a variant";
  let description = [{
    Runs the pipeline of `buildMixQCompilePipeline`
    (include/mixq/Methods/Pipelines.h) on the module:
    mixq-assign-config, mixq-materialize-quant, mixq-init-adapters,
    mixq-estimate-memory (report in `out`/memory.json), mixq-emit-variant,
    mixq-fuse-linear-adapter. `out` then holds manifest.json (with
    `"weights": "weights.safetensors"`), weights.safetensors,
    init_report.json, memory.json and variant.mlir.

    ```
    mixq-import model-dir | mixq-opt --mixq-compile="config=cfg.json out=v1"
    ```
  }];
  let options = [
    Option<"config", "config", "std::string", /*default=*/"\"\"",
           "path of the config JSON">,
    Option<"out", "out", "std::string", /*default=*/"\"\"",
           "the variant directory">,
    Option<"seed", "seed", "uint64_t", /*default=*/"0",
           "seed of the adapter initialisation">,
  ];
  let dependentDialects = ["::mixq::MixQDialect"];
}

def MixQLQLoRABitsPass : Pass<"mixq-lq-lora-bits", "mlir::ModuleOp"> {
  let summary = "LQ-LoRA: per-linear formats under an average-bit budget";
  let description = [{
    LQ-LoRA's bit allocation as a config generator. For every projection it
    measures the quantization error ||W - dequant(quant(W))||_F^2 of each
    candidate format (int2, int3, nf4 + double quant, int8; int tiles of
    one row by the largest divisor of the input width up to 64) and picks
    one format per linear minimising the total error subject to
    sum(bits/param * params) <= budget * sum(params). The multiple-choice knapsack is solved by Lagrangian relaxation (bisection on
    the multiplier), then the remaining budget is spent greedily on the
    upgrades with the best error reduction per bit. Writes a config JSON
    (docs/contracts.md) with one entry per linear to `out`, plus `adapter`
    (lora with `rank` and alpha = 2 * rank; none for rank = 0) on every
    entry, and annotates each linear with `mixq.lq_format`.
  }];
  let options = [
    Option<"budget", "budget", "double", /*default=*/"4.0",
           "average bits per parameter (storage, with scales)">,
    Option<"out", "out", "std::string", /*default=*/"\"\"",
           "config JSON to write">,
    Option<"rank", "rank", "int64_t", /*default=*/"8",
           "LoRA rank written into the config (0: no adapter)">,
  ];
}

def MixQPrunePass : Pass<"mixq-prune", "mlir::ModuleOp"> {
  let summary = "LLM-Pruner block-wise structural pruning of heads and channels";
  let description = [{
    Removes, in every layer of `layers` (e.g. `1-3`, `2`, `0,2-4`; default
    all), the fraction `ratio` of its KV groups (a KV head with the query
    heads sharing it: q_proj/k_proj/v_proj output rows and o_proj input
    columns) and of its MLP channels (gate_proj/up_proj output rows and the
    down_proj input column) with the lowest importance, read from
    `importance` (the JSON of `mixq-run importance --method taylor1|taylor2`:
    `kv_heads` and `channels` per layer). Whole KV groups are removed so the
    query/KV ratio of the layer is unchanged. round(ratio * count) units are
    removed, at least one kept.

    The pruned model is written as a standalone HF checkpoint into
    `out`/pruned (config.json with `mixq_layers`, model.safetensors in f32);
    the module's `mixq.checkpoint` is rebased on it (tensor shapes updated)
    and the layer's linears, rope and attention ops get the new shapes and
    head counts. Parameter counts and per-layer shapes are printed on stderr
    and written to `out`/prune_report.json. Runs before
    `--mixq-assign-config` / `--mixq-compile`.

    ```
    mixq-import stories260K-hf | mixq-opt \
      --mixq-prune="ratio=0.3 layers=1-3 importance=imp.json out=v" \
      --mixq-compile="config=cfg.json out=v"
    ```
  }];
  let options = [
    Option<"ratio", "ratio", "double", /*default=*/"0.3",
           "fraction of KV groups and MLP channels removed per layer">,
    Option<"layers", "layers", "std::string", /*default=*/"\"\"",
           "layer range, e.g. 1-3 (default: all layers)">,
    Option<"importance", "importance", "std::string", /*default=*/"\"\"",
           "importance JSON of mixq-run importance (taylor1 or taylor2)">,
    Option<"method", "method", "std::string", /*default=*/"\"\"",
           "taylor1 or taylor2: the score the importance file must hold "
           "(default: the file's)">,
    Option<"out", "out", "std::string", /*default=*/"\"\"",
           "the variant directory (the pruned checkpoint goes to out/pruned)">,
  ];
  let dependentDialects = ["::mixq::MixQDialect"];
}

#endif // MIXQ_METHODS_PASSES_TD
