#!/usr/bin/env bash
# MixQ's main job on the bundled stories260K and bAbI qa1:
#  1. import the checkpoint, assign a hand-written per-layer config, print the
#     compiler's decisions and the static memory estimate (seconds);
#  2. a QR-Adaptor search over per-layer (bits, rank): every trial compiles a
#     variant (mixq-opt), fine-tunes it for one epoch and evaluates it
#     (mixq-run, scripts/mixq-trial.sh), and is stored in a SQLite study in the
#     build tree; a second `make demo` resumes the study instead of starting
#     over;
#  3. the Pareto front, the SVG plot and the chosen config (alpha = 0.5);
#  4. the chosen config fine-tuned again and its adapter exported in the PEFT
#     layout.
# MIXQ_DEMO_TRIALS (default 12) sets the search budget.
set -euo pipefail
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
data=$(sed -n 's/^MIXQ_DATA_DIR:PATH=//p' "$build/CMakeCache.txt")
data=${data:-$root/../shared/data}
out="${MIXQ_DEMO_OUT:-$build/demo}"
mkdir -p "$out"
bin="$build/bin"
start=$(date +%s)

trials=${MIXQ_DEMO_TRIALS:-12}
echo "== MixQ demo: a QR-Adaptor search of $trials trials on stories260K for bAbI qa1"
echo "   (each trial compiles, fine-tunes one epoch on 1000 questions and scores 100;"
echo "    about 20 s of CPU a trial: roughly $(( (trials + 1) * 25 / 60 + 1 )) minutes on 2 idle cores)"
echo
echo "-- 1. import $data/models/stories260K-hf"
"$bin/mixq-import" "$data/models/stories260K-hf" --summary
"$bin/mixq-import" "$data/models/stories260K-hf" -o "$out/stories260K.mlir"
echo
echo "-- 1b. a hand-written mixed config (configs/demo-stories260K.json): decisions and estimate at batch 16 x 128"
"$bin/mixq-opt" "$out/stories260K.mlir" \
  --mixq-assign-config=config="$root/configs/demo-stories260K.json" \
  --mixq-estimate-memory="batch=16 seq-len=128 per-linear=true report=$out/memory.json" \
  -o "$out/stories260K.configured.mlir"
echo
echo "-- 1c. LLaMA-2-7B from its config.json alone: uniform NF4 + LoRA r8, batch 4 x 256"
"$bin/mixq-import" "$root/test/Inputs/llama2-7b/config.json" |
  "$bin/mixq-opt" --mixq-assign-config=config="$root/test/Transforms/Inputs/uniform-nf4-r8.json" \
    --mixq-estimate-memory="batch=4 seq-len=256" -o "$out/llama2-7b.configured.mlir"
echo

export MIXQ_BIN="$bin" MIXQ_MODEL="$data/models/stories260K-hf"
export MIXQ_TOKENIZER="$data/models/stories260K/tok512.bin"
export MIXQ_TASK=babi:qa1 MIXQ_EPOCHS=1 MIXQ_LIMIT=100 MIXQ_SEED=0
export MIXQ_WORK="$out/work"
study="sqlite://$(cd "$out" && pwd)/study.db"
echo "-- 2. search: $study (resumed if it exists)"
"$bin/mixq-search" run --study "$study" --model "$MIXQ_MODEL" --bits 4,8 \
  --ranks 2,4,8 --strategy qr-adaptor --trials "$trials" --seed 0 \
  --objective-cmd "$root/scripts/mixq-trial.sh"
echo
echo "-- 3. front, plot, chosen configuration (alpha = 0.5)"
"$bin/mixq-search" report --study "$study" --alpha 0.5 \
  --svg "$out/front.svg" --front-json "$out/front.json" --front-csv "$out/front.csv" \
  --config-out "$out/chosen.json" --rank-pattern-out "$out/rank_pattern.json"
echo
echo "-- 4. fine-tune the chosen configuration and export its adapter (PEFT layout)"
"$bin/mixq-opt" "$out/stories260K.mlir" --mixq-assign-config=config="$out/chosen.json" \
  --mixq-emit-variant=out="$out/chosen" -o /dev/null
rm -rf "$out/chosen-run" "$out/adapter"
"$bin/mixq-run" finetune "$out/chosen" --data babi:qa1 --epochs 1 --batch 16 \
  --lr 3e-3 --seed 0 --tokenizer "$MIXQ_TOKENIZER" --out "$out/chosen-run" \
  --eval babi:qa1 --limit 100 --quiet --metrics "$out/chosen-metrics.json"
"$bin/mixq-run" export "$out/chosen" "$out/chosen-run" --tokenizer "$MIXQ_TOKENIZER" \
  --peft "$out/adapter"
ls -l "$out/adapter"
echo
echo "front: $out/front.json, plot: $out/front.svg, chosen config: $out/chosen.json,"
echo "adapter: $out/adapter/, metrics of the chosen run: $out/chosen-metrics.json"
echo "demo finished in $(( $(date +%s) - start )) s"
