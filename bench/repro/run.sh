#!/usr/bin/env bash
# The seeds' tables in miniature (issue #9): every baseline method x bAbI task
# x seed on stories260K with one fine-tuning recipe, the QR-Adaptor stage
# ablations against the uniform configurations, and AutoMixQ on a 30%-pruned
# stories260K against uniform LoRA / 8-bit LoftQ. See bench/repro/README.md.
#
#   bench/repro/run.sh BUILD_DIR [--tasks qa1,qa11,qa12] [--seeds 0,1,2]
#       [--jobs 2] [--methods m1,m2,...] [--part all|zeroshot|baselines|search|prune]
#       [--search-tasks qa1] [--search-trials 8]
#
# Resumable: a run whose metrics JSON exists under bench/repro/results is
# skipped; a search study (SQLite in BUILD_DIR/repro-work) resumes. At the
# end (and with `python3 bench/repro/tables.py`) tables.md and the README's
# tables are regenerated.
#
# Recipe (the same for every method): 1 epoch over the first 500 training
# questions of the task (whole stories), batch 16, AdamW lr 3e-3, linear
# decay, no warm-up, loss on the answer tokens, then accuracy on the first
# 200 test questions; --threads 1. Override with REPRO_TRAIN, REPRO_EPOCHS,
# REPRO_BATCH, REPRO_LR, REPRO_LIMIT (results of another recipe should go to
# another REPRO_RESULTS directory).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

# ---- one fine-tuning run: compile CONFIG with SEED into VARIANT_DIR, train, evaluate.
# Used by the baselines and (through trial.sh) by the search objective.
repro_compile() { # config init-mode(kaiming|normal) seed out
  rm -rf "$4"
  "$REPRO_BIN/mixq-opt" "${REPRO_MODULE:-$REPRO_WORK/model.mlir}" \
    --mixq-assign-config=config="$1" --mixq-materialize-quant=out="$4" \
    --mixq-init-adapters="out=$4 seed=$3 gaussian=$2" \
    --mixq-emit-variant=out="$4" -o /dev/null
}
repro_train_file() { # task -> path of its training subset (first REPRO_TRAIN questions)
  local f="$REPRO_WORK/data/$1_train$REPRO_TRAIN.txt"
  if [ ! -f "$f" ]; then
    mkdir -p "$REPRO_WORK/data"
    # Whole stories, in file order, until REPRO_TRAIN questions are in.
    awk -F'\t' -v n="$REPRO_TRAIN" '$1 ~ /^1 / && q >= n { exit }
      { print; if (NF > 1) q++ }' \
      "$(ls "$REPRO_DATA"/tasks/babi/"$1"_*_train.txt)" >"$f.tmp.$$"
    mv "$f.tmp.$$" "$f"
  fi
  echo "$f"
}
repro_finetune() { # variant task seed rundir metrics [mixq-run options...]
  "$REPRO_BIN/mixq-run" finetune "$1" "${@:6}" --data "babi:$(repro_train_file "$2")" \
    --epochs "$REPRO_EPOCHS" --batch "$REPRO_BATCH" --lr "$REPRO_LR" \
    --schedule linear --seed "$3" --tokenizer "$REPRO_TOKENIZER" \
    --out "$4" --eval "babi:$2" --limit "$REPRO_LIMIT" --threads 1 --quiet \
    --metrics "$5"
}

# Methods: name, config (relative to configs/, or generated), init mode.
# QLoRA / LoRA / Q-BLoRA / QA-BLoRA use PEFT's default adapter initialisation
# (Kaiming-uniform A, B = 0); "gaussian" is PEFT's init_lora_weights="gaussian"
# (A ~ N(0, 1/r)); LoftQ, PiSSA and LQ-LoRA initialise from the SVD.
method_spec() {
  case "$1" in
    lora-f32|qlora-nf4|qlora-int8|qblora|qablora) echo "$here/configs/$1.json kaiming" ;;
    # AdaLoRA is a runtime-only adapter (mixq-opt rejects it): the runtime
    # fine-tunes the checkpoint with --config, PEFT's AdaLoRA initialisation.
    adalora) echo "$here/configs/$1.json runtime" ;;
    loftq1|loftq5|loftq8|loftq8-d0|lora-f32-d0|pissa) echo "$here/configs/$1.json kaiming" ;;
    gaussian) echo "$here/configs/gaussian.json normal" ;;
    lq-lora) echo "$REPRO_WORK/lq-lora.json kaiming" ;;
    *) echo "unknown method $1" >&2; return 1 ;;
  esac
}
all_methods=lora-f32,qlora-nf4,qlora-int8,loftq1,loftq5,pissa,gaussian,adalora,lq-lora,qblora,qablora

one_run() { # method task seed
  local m=$1 t=$2 s=$3
  local dest="$REPRO_RESULTS/baselines/$t/${REPRO_PREFIX:-}$m/seed$s.json"
  [ -f "$dest" ] && return 0
  # BUILD/repro-work/skip-methods: methods to leave out for now (one a line),
  # e.g. while the runtime has a bug that makes them fail.
  if grep -qx "$m" "$REPRO_WORK/skip-methods" 2>/dev/null; then
    echo "[repro] $m: listed in $REPRO_WORK/skip-methods, skipped" >&2
    return 0
  fi
  local spec cfg mode
  spec=$(method_spec "$m") || return 0
  cfg=${spec% *} mode=${spec#* }
  if [ ! -f "$cfg" ]; then
    echo "[repro] $m: no config $cfg (not yet available), skipped" >&2
    return 0
  fi
  local w="$REPRO_WORK/runs/$t/${REPRO_PREFIX:-}$m/seed$s"
  mkdir -p "$w" "$(dirname "$dest")"
  # Several run.sh processes may share the results: a run in progress holds
  # $w.lock (its pid); a lock whose process is gone is taken over.
  if ! (set -o noclobber; echo $$ >"$w.lock") 2>/dev/null; then
    if kill -0 "$(cat "$w.lock" 2>/dev/null)" 2>/dev/null; then return 0; fi
    echo $$ >"$w.lock"
  fi
  trap "rm -f '$w.lock'" EXIT
  [ -f "$dest" ] && return 0
  local start=$(date +%s)
  local ok=0
  if [ "$mode" = runtime ]; then
    repro_finetune "${REPRO_CHECKPOINT:-$REPRO_MODEL}" "$t" "$s" "$w/run" "$w/metrics.json" \
      --config "$cfg" >"$w/log" 2>&1 && ok=1
  elif repro_compile "$cfg" "$mode" "$s" "$w/variant" >"$w/log" 2>&1 &&
       repro_finetune "$w/variant" "$t" "$s" "$w/run" "$w/metrics.json" >>"$w/log" 2>&1; then
    ok=1
  fi
  if [ $ok = 1 ]; then
    cp "$cfg" "$(dirname "$dest")/config.json"
    mv "$w/metrics.json" "$dest"
    rm -f "${dest%.json}.failed"
    rm -rf "$w/run/checkpoint" "$w/variant/weights.safetensors"
    echo "[repro] $m $t seed $s: done in $(( $(date +%s) - start )) s" >&2
  else
    tail -c 2000 "$w/log" > "${dest%.json}.failed"
    echo "[repro] $m $t seed $s: FAILED (see ${dest%.json}.failed)" >&2
  fi
}

zeroshot_run() { # bits task
  local b=$1 t=$2
  local dest="$REPRO_RESULTS/zeroshot/$t/bits$b.json"
  [ -f "$dest" ] && return 0
  mkdir -p "$(dirname "$dest")" "$REPRO_WORK/zeroshot"
  local cfg="$REPRO_WORK/zeroshot/bits$b.json"
  case $b in
    32) echo '{"version":1,"default":{"format":"f32"},"layers":[{}]}' >"$cfg" ;;
    8) echo '{"version":1,"default":{"format":"int8","block":64},"layers":[{}]}' >"$cfg" ;;
    4) echo '{"version":1,"default":{"format":"nf4","block":64,"double_quant":true},"layers":[{}]}' >"$cfg" ;;
  esac
  "$REPRO_BIN/mixq-run" eval "$REPRO_MODEL" --config "$cfg" \
    --tokenizer "$REPRO_TOKENIZER" --task "babi:$t" --limit "$REPRO_LIMIT" \
    --threads 1 --metrics "$dest.tmp" --json >/dev/null 2>&1
  mv "$dest.tmp" "$dest"
}

# ---- search studies: one per (study, task), 8 trials, objective trial.sh.
search_study() { # name task strategy-args...
  local name=$1 t=$2; shift 2
  local out="$REPRO_RESULTS/search/$t/$name"
  local db="$REPRO_WORK/search/$t-$name.db"
  mkdir -p "$out" "$REPRO_WORK/search"
  local start=$(date +%s)
  REPRO_TASK=$t REPRO_TRAIN_FILE=$(repro_train_file "$t") REPRO_SEED=0 "$REPRO_BIN/mixq-search" run --study "sqlite://$db" \
    --model "${REPRO_SEARCH_MODEL:-$REPRO_MODEL}" --bits 4,8 --ranks 2,4,8 --seed 0 \
    --trials "$REPRO_SEARCH_TRIALS" --objective-cmd "$here/trial.sh" \
    --config-dir "$REPRO_WORK/search/$t-$name-configs" "$@" \
    2>>"$out/../$name.log" >&2 || echo "[repro] search $name $t: run failed" >&2
  echo "$(( $(date +%s) - start ))" >>"$out/invocation_wall_s.txt"
  "$REPRO_BIN/mixq-search" report --study "sqlite://$db?mode=ro" --alpha 0.5 \
    --front-json "$out/report.json" --trials-csv "$out/trials.csv" \
    --svg "$out/front.svg" --config-out "$out/chosen.json" >"$out/report.txt" ||
    echo "[repro] search $name $t: report failed" >&2
  echo "[repro] search $name $t: done" >&2
}
# QR-Adaptor's stage-1 input: per-layer entropy importance I(l) = H(Y) -
# H(Y|X_l) (`mixq-run importance --method entropy`, 16 training examples) of
# the f32 model and of its NF4 quantization.
qr_importance() { # task -> path of the importance JSON for --importance
  local t=$1 f="$REPRO_WORK/search/importance-$1.json"
  if [ ! -f "$f" ]; then
    mkdir -p "$REPRO_WORK/search"
    "$REPRO_BIN/mixq-run" importance "$REPRO_MODEL" --tokenizer "$REPRO_TOKENIZER" \
      --method entropy --data "babi:$(repro_train_file "$t")" --threads 1 --quiet \
      --out "$f.f32" >&2
    echo '{"version":1,"default":{"format":"nf4","block":64,"double_quant":true},"layers":[{}]}' \
      >"$REPRO_WORK/search/nf4.json"
    "$REPRO_BIN/mixq-run" importance "$REPRO_MODEL" --tokenizer "$REPRO_TOKENIZER" \
      --config "$REPRO_WORK/search/nf4.json" --method entropy \
      --data "babi:$(repro_train_file "$t")" --threads 1 --quiet --out "$f.nf4" >&2
    python3 - "$f.f32" "$f.nf4" "$f" <<'PY'
import json, sys
a, b = (json.load(open(p))["importance"] for p in sys.argv[1:3])
json.dump({"importance": a, "importance_quantized": b}, open(sys.argv[3], "w"))
PY
  fi
  echo "$f"
}
searches() {
  local t
  for t in ${REPRO_SEARCH_TASKS//,/ }; do
    search_study uniform "$t" --strategy uniform
    search_study qr-all "$t" --strategy qr-adaptor --stages 1,2,3 \
      --population 3 --generations 1 --offspring 2
    search_study qr-no1 "$t" --strategy qr-adaptor --stages 2,3 \
      --population 3 --generations 1 --offspring 2
    search_study qr-no2 "$t" --strategy qr-adaptor --stages 1,3
    search_study qr-no3 "$t" --strategy qr-adaptor --stages 1,2 \
      --population 3 --generations 1 --offspring 2
    if "$REPRO_BIN/mixq-run" importance --help >/dev/null 2>&1; then
      local imp
      imp=$(qr_importance "$t")
      mkdir -p "$REPRO_RESULTS/search/$t/qr-all-imp"
      cp "$imp" "$REPRO_RESULTS/search/$t/qr-all-imp/importance.json"
      search_study qr-all-imp "$t" --strategy qr-adaptor --stages 1,2,3 \
        --population 3 --generations 1 --offspring 2 --importance "$imp"
    fi
  done
}

# ---- AutoMixQ on a 30%-pruned stories260K. LLM-Pruner's block-wise setting:
# layers 1-3 only (the first and last are kept), 60% of their KV groups and MLP
# channels by first-order Taylor importance (16 examples of the qa1 training
# subset): 260,032 -> 182,272 parameters, 29.9% removed. The AutoMixQ study vs
# uniform LoRA (f32 base) and uniform 8-bit LoftQ on the same pruned model
# (seeds as the baselines, the same recipe), on the search tasks.
prune_part() {
  if ! "$REPRO_BIN/mixq-opt" --help | grep -q -- '--mixq-prune' ||
     ! "$REPRO_BIN/mixq-run" importance --help >/dev/null 2>&1; then
    echo "[repro] prune: this build has no --mixq-prune / mixq-run importance yet; AutoMixQ-on-pruned rows skipped" >&2
    return 0
  fi
  local t p="$REPRO_WORK/pruned"
  mkdir -p "$p" "$REPRO_RESULTS/pruned"
  if [ ! -f "$p/model.mlir" ]; then
    "$REPRO_BIN/mixq-run" importance "$REPRO_MODEL" --tokenizer "$REPRO_TOKENIZER" \
      --method taylor1 --data "babi:$(repro_train_file qa1)" --out "$p/importance.json" \
      --threads 1 --quiet >"$p/importance.log" 2>&1
    "$REPRO_BIN/mixq-opt" "$REPRO_WORK/model.mlir" \
      --mixq-prune="ratio=0.6 layers=1-3 importance=$p/importance.json method=taylor1 out=$p" \
      -o "$p/model.mlir.tmp" 2>"$p/prune.log"
    mv "$p/model.mlir.tmp" "$p/model.mlir"
    cp "$p/prune_report.json" "$REPRO_RESULTS/pruned/prune_report.json"
    cp "$p/prune.log" "$REPRO_RESULTS/pruned/prune.log"
  fi
  for t in ${REPRO_SEARCH_TASKS//,/ }; do
    [ -f "$REPRO_RESULTS/pruned/zeroshot-$t.json" ] ||
      "$REPRO_BIN/mixq-run" eval "$p/pruned" --tokenizer "$REPRO_TOKENIZER" \
        --task "babi:$t" --limit "$REPRO_LIMIT" --threads 1 \
        --metrics "$REPRO_RESULTS/pruned/zeroshot-$t.json" --json >/dev/null 2>&1
  done
  export REPRO_MODULE="$p/model.mlir"
  for t in ${REPRO_SEARCH_TASKS//,/ }; do
    local s
    for s in ${seeds//,/ }; do
      REPRO_PREFIX=pruned- "$0" __one lora-f32 "$t" "$s"
      REPRO_PREFIX=pruned- "$0" __one loftq8 "$t" "$s"
    done
    REPRO_SEARCH_MODEL="$p/pruned" search_study automixq-pruned "$t" \
      --strategy automixq --init 4 --patience 3
    # The same uniform baselines in the search objective's setting (no
    # dropout), and the uniform configurations through the objective itself.
    for s in ${seeds//,/ }; do
      REPRO_PREFIX=pruned- "$0" __one lora-f32-d0 "$t" "$s"
      REPRO_PREFIX=pruned- "$0" __one loftq8-d0 "$t" "$s"
    done
    REPRO_SEARCH_MODEL="$p/pruned" search_study uniform-pruned "$t" --strategy uniform
  done
}

setup() {
  mkdir -p "$REPRO_WORK" "$REPRO_RESULTS"
  if [ ! -f "$REPRO_WORK/model.mlir" ]; then
    "$REPRO_BIN/mixq-import" "$REPRO_MODEL" -o "$REPRO_WORK/model.mlir.tmp"
    mv "$REPRO_WORK/model.mlir.tmp" "$REPRO_WORK/model.mlir"
  fi
  # LQ-LoRA: per-linear format under a 4.2 bits/param budget (NF4 + double
  # quant is 4.127), LoRA r8, LoftQ-style (1 alternation) low-rank + quantized
  # initialisation.
  if [ ! -f "$REPRO_WORK/lq-lora.json" ]; then
    "$REPRO_BIN/mixq-opt" "$REPRO_WORK/model.mlir" \
      --mixq-lq-lora-bits="budget=4.2 out=$REPRO_WORK/lq-alloc.json rank=8" -o /dev/null
    python3 - "$REPRO_WORK/lq-alloc.json" "$REPRO_WORK/lq-lora.json" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
for e in c["layers"]:
    if e.get("adapter") == "lora":
        e.update({"dropout": 0.05, "init": "loftq", "init_iters": 1})
c["model"] = "stories260K"
json.dump(c, open(sys.argv[2], "w"), indent=1)
EOF
  fi
}

# ---- main
if [ "${1:-}" = __one ]; then shift; one_run "$@"; exit 0; fi
if [ "${1:-}" = __zeroshot ]; then shift; zeroshot_run "$@"; exit 0; fi
if [ $# -lt 1 ] || [ "${1:0:2}" = -- ]; then
  sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
build=$(cd "$1" && pwd); shift
tasks=qa1,qa11,qa12 seeds=0,1,2 jobs=2 methods=$all_methods part=all
search_tasks=qa1
while [ $# -gt 0 ]; do
  case "$1" in
    --tasks) tasks=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --methods) methods=$2; shift 2 ;;
    --part) part=$2; shift 2 ;;
    --search-tasks) search_tasks=$2; shift 2 ;;
    --search-trials) export REPRO_SEARCH_TRIALS=$2; shift 2 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
data=$(sed -n 's/^MIXQ_DATA_DIR:PATH=//p' "$build/CMakeCache.txt" 2>/dev/null || true)
data=${data:-$root/../shared/data}
export REPRO_BIN="$build/bin" REPRO_WORK="$build/repro-work"
export REPRO_RESULTS=${REPRO_RESULTS:-$here/results}
export REPRO_MODEL="$data/models/stories260K-hf"
export REPRO_TOKENIZER="$data/models/stories260K/tok512.bin"
export REPRO_DATA="$data" REPRO_TRAIN=${REPRO_TRAIN:-500}
export REPRO_EPOCHS=${REPRO_EPOCHS:-1} REPRO_BATCH=${REPRO_BATCH:-16}
export REPRO_LR=${REPRO_LR:-3e-3} REPRO_LIMIT=${REPRO_LIMIT:-200}
export REPRO_SEARCH_TRIALS=${REPRO_SEARCH_TRIALS:-8}
export REPRO_SEARCH_TASKS=$search_tasks
setup

baseline_jobs() { # seed-major order: every (method, task) of seed 0 first
  local s t m
  for s in ${seeds//,/ }; do for t in ${tasks//,/ }; do for m in ${methods//,/ }; do
    echo "$m $t $s"
  done; done; done
}
run_baselines() { # parallel jobs
  baseline_jobs | xargs -P "$1" -L 1 "$0" __one
}
run_zeroshot() {
  local t b
  for t in ${tasks//,/ }; do for b in 32 8 4; do "$0" __zeroshot "$b" "$t"; done; done
}

start=$(date +%s)
case "$part" in
  zeroshot) run_zeroshot ;;
  baselines) run_baselines "$jobs" ;;
  search) searches ;;
  prune) prune_part ;;
  all)
    run_zeroshot
    if [ "$jobs" -ge 2 ]; then
      # One slot runs the searches (sequential trials), the others the baselines.
      searches & spid=$!
      run_baselines $(( jobs - 1 ))
      wait "$spid"
    else
      run_baselines 1
      searches
    fi
    prune_part ;;
  *) echo "run.sh: unknown part $part" >&2; exit 2 ;;
esac
echo "[repro] $part finished in $(( $(date +%s) - start )) s" >&2
python3 "$here/tables.py" --results "$REPRO_RESULTS" --out "$here/tables.md" || true
