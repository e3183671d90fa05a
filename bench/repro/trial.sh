#!/usr/bin/env bash
# Search objective for bench/repro/run.sh (`mixq-search --objective-cmd`):
# the same compile + fine-tune + evaluate recipe as the baselines (run.sh's
# repro_compile / repro_finetune; it is scripts/mixq-trial.sh with the
# compiler's adapter initialisation and --threads 1), on REPRO_TASK with
# REPRO_SEED; prints the runtime's metrics JSON on stdout.
set -euo pipefail
cfg="${!#}"
: "${REPRO_BIN:?run me through bench/repro/run.sh}" "${REPRO_WORK:?}" "${REPRO_TASK:?}" "${REPRO_TRAIN_FILE:?}"
dir="$REPRO_WORK/search/trials/$REPRO_TASK-$(basename "$cfg" .json)-$$"
mkdir -p "$dir"
"$REPRO_BIN/mixq-opt" "${REPRO_MODULE:-$REPRO_WORK/model.mlir}" \
  --mixq-assign-config=config="$cfg" --mixq-materialize-quant=out="$dir/variant" \
  --mixq-init-adapters="out=$dir/variant seed=${REPRO_SEED:-0} gaussian=kaiming" \
  --mixq-emit-variant=out="$dir/variant" -o /dev/null >&2
"$REPRO_BIN/mixq-run" finetune "$dir/variant" --data "babi:$REPRO_TRAIN_FILE" \
  --epochs "$REPRO_EPOCHS" --batch "$REPRO_BATCH" --lr "$REPRO_LR" \
  --schedule linear --seed "${REPRO_SEED:-0}" --tokenizer "$REPRO_TOKENIZER" \
  --out "$dir/run" --eval "babi:$REPRO_TASK" --limit "$REPRO_LIMIT" --threads 1 \
  --quiet --metrics "$dir/metrics.json" >&2
rm -rf "$dir/run/checkpoint" "$dir/variant/weights.safetensors"
cat "$dir/metrics.json"
