#!/usr/bin/env bash
#===- run-bench.sh - mixq-run vs the PyTorch peer on stories260K + bAbI ---===#
#
# Usage: bench/runtime/run-bench.sh <build dir> [data dir]
#
# Times, on this machine in this run, (1) one epoch of the bAbI qa1 fine-tune
# (LoRA r8 on all seven projections, AdamW lr 3e-3, batch 16) and (2) the
# scoring of the first 300 qa1 test questions against all train answers, for
# mixq-run (NF4 base as the accuracy target, and f32 base as the peer) and for
# bench/runtime/peer_babi.py (PyTorch, f32 base), both on 2 threads, and
# prints the speed-up ratios. Needs python3-torch (scripts/install-deps.sh).
set -euo pipefail
build=${1:?usage: run-bench.sh <build dir> [data dir]}
data=${2:-$(cd "$(dirname "$0")/../../../shared/data" && pwd)}
here=$(cd "$(dirname "$0")" && pwd)
run=$build/bin/mixq-run
out=$(mktemp -d)
# Debian's interpreter, which python3-torch installs into.
py=python3
[ -x /usr/bin/python3 ] && py=/usr/bin/python3
model=$data/models/stories260K/stories260K.bin

cat > "$out/nf4.json" <<'JSON'
{"version": 1, "default": {"format": "nf4", "block": 64, "double_quant": true,
 "adapter": "lora", "rank": 8, "alpha": 16, "dropout": 0.05}}
JSON
cat > "$out/f32.json" <<'JSON'
{"version": 1, "default": {"format": "f32", "adapter": "lora", "rank": 8,
 "alpha": 16, "dropout": 0.05}}
JSON

for base in nf4 f32; do
  "$run" finetune "$model" --config "$out/$base.json" --data babi:qa1 \
    --data-dir "$data" --epochs 1 --batch 16 --lr 3e-3 --threads 2 \
    --out "$out/$base" --quiet
  "$run" eval "$model" --config "$out/$base.json" --adapters "$out/$base" \
    --data-dir "$data" --task babi:qa1 --limit 300 --threads 2 --quiet \
    --metrics "$out/$base-eval.json"
done
"$py" "$here/peer_babi.py" --data "$data" --epochs 1 --limit 300 \
  --threads 2 > "$out/peer.json"

"$py" - "$out" <<'PY'
import json, sys, os
d = sys.argv[1]
peer = json.load(open(os.path.join(d, "peer.json")))
print(f"peer ({peer['peer']}): epoch {peer['train_s']:.2f} s, "
      f"300 questions {peer['eval_s']:.2f} s")
for base in ("nf4", "f32"):
    ft = json.load(open(os.path.join(d, base, "metrics.json")))
    ev = json.load(open(os.path.join(d, base + "-eval.json")))
    te = ft["train_wall_s"]
    es = ev["accuracy"]["babi:qa1"]["wall_s"]
    print(f"mixq-run {base}: epoch {te:.2f} s ({peer['train_s']/te:.1f}x), "
          f"300 questions {es:.2f} s ({peer['eval_s']/es:.1f}x), "
          f"peak {ft['peak_bytes']['total']} B vs estimate "
          f"{ft['estimated_peak_bytes']} B")
PY
