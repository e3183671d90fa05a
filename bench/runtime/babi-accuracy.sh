#!/usr/bin/env bash
#===- babi-accuracy.sh - the bAbI qa1 accuracy target of issue #5 ---------===#
#
# Usage: bench/runtime/babi-accuracy.sh <build dir> [data dir] [seeds...]
#
# stories260K, NF4 base (block 64, double quant), LoRA r8 alpha 16 dropout
# 0.05 on all seven projections, bAbI qa1, 6 epochs, AdamW lr 3e-3 (linear
# decay), batch 16, loss on prompt + answer; accuracy on the first 300 test
# questions (candidates: all train answers). One run per seed (default 0 1 2),
# about 2 CPU-minutes each.
set -euo pipefail
build=${1:?usage: babi-accuracy.sh <build dir> [data dir] [seeds...]}
data=${2:-$(cd "$(dirname "$0")/../../../shared/data" && pwd)}
shift $(( $# >= 2 ? 2 : 1 ))
seeds=("$@")
[ ${#seeds[@]} -eq 0 ] && seeds=(0 1 2)
out=$(mktemp -d)
cat > "$out/nf4.json" <<'JSON'
{"version": 1, "default": {"format": "nf4", "block": 64, "double_quant": true,
 "adapter": "lora", "rank": 8, "alpha": 16, "dropout": 0.05}}
JSON
for s in "${seeds[@]}"; do
  "$build/bin/mixq-run" finetune "$data/models/stories260K/stories260K.bin" \
    --config "$out/nf4.json" --data babi:qa1 --data-dir "$data" --epochs 6 \
    --batch 16 --lr 3e-3 --loss-on-prompt --seed "$s" --out "$out/s$s" \
    --eval babi:qa1 --limit 300 --quiet
  grep -m1 '"acc"' "$out/s$s/metrics.json" | sed "s/^ */seed $s: /"
done
