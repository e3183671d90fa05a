#!/usr/bin/env bash
# One MixQ trial as an external objective for `mixq-search --objective-cmd`:
# compile the config JSON (last argument) into a variant of the model, fine-tune
# it, evaluate it, and print the runtime's metrics JSON on stdout.
#
#   MIXQ_BIN        directory of mixq-import/mixq-opt/mixq-run (default build/bin)
#   MIXQ_MODEL      checkpoint (default ../shared/data/models/stories260K-hf)
#   MIXQ_TOKENIZER  (default ../shared/data/models/stories260K/tok512.bin)
#   MIXQ_TASK       fine-tune data and eval task (default babi:qa1)
#   MIXQ_EPOCHS, MIXQ_BATCH, MIXQ_LR, MIXQ_LIMIT (eval items), MIXQ_SEED
#   MIXQ_WORK       where variants and runs go (default: a temporary directory)
set -euo pipefail
cfg="${!#}"
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${MIXQ_BIN:-$root/build/bin}
model=${MIXQ_MODEL:-$root/../shared/data/models/stories260K-hf}
tokenizer=${MIXQ_TOKENIZER:-$root/../shared/data/models/stories260K/tok512.bin}
task=${MIXQ_TASK:-babi:qa1}
work=${MIXQ_WORK:-$(mktemp -d)}
mkdir -p "$work"
trial="$work/$(basename "$cfg" .json)-$$"

# The imported module is the same for every trial: make it once per work dir.
module="$work/model.mlir"
if [ ! -f "$module" ]; then
  "$bin/mixq-import" "$model" -o "$module.tmp.$$" >&2
  mv "$module.tmp.$$" "$module"
fi
"$bin/mixq-opt" "$module" --mixq-assign-config=config="$cfg" \
  --mixq-emit-variant=out="$trial/variant" -o /dev/null >&2

exec "$bin/mixq-run" finetune "$trial/variant" --data "$task" \
  --epochs "${MIXQ_EPOCHS:-1}" --batch "${MIXQ_BATCH:-16}" --lr "${MIXQ_LR:-3e-3}" \
  --seed "${MIXQ_SEED:-0}" --tokenizer "$tokenizer" --out "$trial/run" \
  --eval "$task" --limit "${MIXQ_LIMIT:-100}" --quiet --json
