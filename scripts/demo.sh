#!/usr/bin/env bash
# MixQ's main job, as far as it exists today: import the bundled stories260K,
# give every layer a quantization format and adapter from a config JSON, and
# print what the compiler decided and the static fine-tuning memory estimate.
# (Later issues grow this into the full search: see README.md.)
set -euo pipefail
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
data=$(sed -n 's/^MIXQ_DATA_DIR:PATH=//p' "$build/CMakeCache.txt")
data=${data:-$root/../shared/data}
out="$build/demo"
mkdir -p "$out"
bin="$build/bin"
start=$(date +%s)

echo "== MixQ demo (about 5 seconds): import, assign a per-layer config, estimate memory"
echo
echo "-- 1. import $data/models/stories260K-hf"
"$bin/mixq-import" "$data/models/stories260K-hf" --summary
"$bin/mixq-import" "$data/models/stories260K-hf" -o "$out/stories260K.mlir"
echo
echo "-- 2. per-layer decisions from configs/demo-stories260K.json, estimate at batch 16 x 128 tokens"
"$bin/mixq-opt" "$out/stories260K.mlir" \
  --mixq-assign-config=config="$root/configs/demo-stories260K.json" \
  --mixq-estimate-memory="batch=16 seq-len=128 per-linear=true report=$out/memory.json" \
  -o "$out/stories260K.configured.mlir"
echo
echo "-- 3. the same question for a model MixQ cannot load here: LLaMA-2-7B from its config.json,"
echo "      uniform NF4 (double quant) + LoRA r8 on all projections, batch 4 x 256 tokens"
"$bin/mixq-import" "$root/test/Inputs/llama2-7b/config.json" |
  "$bin/mixq-opt" --mixq-assign-config=config="$root/test/Transforms/Inputs/uniform-nf4-r8.json" \
    --mixq-estimate-memory="batch=4 seq-len=256" -o "$out/llama2-7b.configured.mlir"
echo
echo "IR written to $out/ (stories260K.configured.mlir, llama2-7b.configured.mlir), estimate to $out/memory.json"
echo "demo finished in $(( $(date +%s) - start )) s"
