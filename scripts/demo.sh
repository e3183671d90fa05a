#!/usr/bin/env bash
# MixQ's main job on the bundled stories260K and bAbI qa1:
#  1. import the checkpoint, assign a hand-written per-layer config, print the
#     compiler's decisions and the static memory estimate (seconds);
#  2. a QR-Adaptor search over per-layer (bits, rank) with mixq-search's
#     built-in trial: the checkpoint is imported once, and every trial compiles
#     its variant in process (the MLIR pass pipeline), fine-tunes it for one
#     epoch and evaluates it with the runtime library in a forked child
#     process; the study is a SQLite database in the output directory, so a
#     second `make demo` resumes it instead of starting over;
#  3. the Pareto front, the SVG plot and the chosen config (alpha = 0.5);
#  4. the chosen trial's fine-tuned adapter, exported in the PEFT layout.
# MIXQ_DEMO_TRIALS (default 12) sets the search budget; MIXQ_DEMO_OUT the
# output directory (default <build>/demo). scripts/mixq-trial.sh is the same
# trial as an external --objective-cmd.
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
echo "   (importance measured once, then each trial compiles its variant, fine-tunes one"
echo "    epoch on 500 questions and scores 100; measured 15-19 s a trial and 3 min 16 s for"
echo "    the whole 12-trial demo on 2 idle cores, so expect about $(( (trials * 17 + 30) / 60 + 1 )) minutes here,"
echo "    longer on a loaded machine. A second run resumes the study.)"
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

model="$data/models/stories260K-hf"
tokenizer="$data/models/stories260K/tok512.bin"
study="sqlite://$(cd "$out" && pwd)/study.db"
echo "-- 2. search: $study (resumed if it exists)"
"$bin/mixq-search" run --study "$study" --model "$model" --bits 4,8 \
  --ranks 2,4,8 --strategy qr-adaptor --importance auto --trials "$trials" --seed 0 \
  --task babi:qa1 --epochs 1 --batch 16 --lr 3e-3 --train-seed 0 \
  --train-limit 500 --limit 100 \
  --tokenizer "$tokenizer" --work-dir "$out/work" --timeout 1200
echo
echo "-- 3. front, plot, chosen configuration (alpha = 0.5)"
"$bin/mixq-search" report --study "$study" --alpha 0.5 \
  --svg "$out/front.svg" --front-json "$out/front.json" --front-csv "$out/front.csv" \
  --config-out "$out/chosen.json" --rank-pattern-out "$out/rank_pattern.json"
echo
echo "-- 4. the chosen trial's fine-tuned adapter (PEFT layout)"
chosen=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["chosen"]["trial"])' "$out/front.json")
rm -rf "$out/adapter"
cp -r "$out/work/default-trial-$chosen/adapter" "$out/adapter"
cp "$out/work/default-trial-$chosen/metrics.json" "$out/chosen-metrics.json"
ls -l "$out/adapter"
echo
echo "front: $out/front.json, plot: $out/front.svg, chosen config (trial $chosen): $out/chosen.json,"
echo "adapter: $out/adapter/, metrics of the chosen trial: $out/chosen-metrics.json"
echo "demo finished in $(( $(date +%s) - start )) s"
