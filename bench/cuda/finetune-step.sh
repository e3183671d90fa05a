#!/usr/bin/env bash
# Fine-tune step throughput and peak memory of the CUDA executor on a
# LLaMA-7B-shaped random-weight slice (issue #8): hidden 4096, intermediate
# 11008, 32 heads, vocab 32000, LAYERS decoder layers (default 2), QLoRA on
# every projection (qlora-7b-slice.json), alpaca_en_demo with the LLaMA-2
# tokenizer, --batch 4 --seq-len 512 --loss-on-prompt, 8 steps; the same run on the CPU
# (--device cpu) as the reference, unless NO_CPU=1.
#
# Usage: bench/cuda/finetune-step.sh <build-dir> [device]
#   device: cuda (default) or cuda-emu; cuda-emu uses a slice with hidden
#   128 / intermediate 344 / 1 layer / 32 tokens per sequence, a smoke run
#   of this script whose figures say nothing about a GPU.
# Writes bench/cuda/results/finetune-<device name>.json (both runs' metrics)
# when the device is a GPU.
set -euo pipefail
BUILD=$(cd "${1:?usage: finetune-step.sh <build-dir> [cuda|cuda-emu]}" && pwd)
DEVICE=${2:-cuda}
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
DATA=${MIXQ_DATA_DIR:-$SRC/../shared/data}
LAYERS=${LAYERS:-2}
STEPS=${STEPS:-8}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

SEQ=512
if [ "$DEVICE" = "cuda-emu" ]; then
  SEQ=32
  STEPS=2
  python3 - "$HERE/llama7b-slice/config.json" "$WORK/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c.update(hidden_size=128, intermediate_size=344, num_attention_heads=4,
         num_key_value_heads=4, num_hidden_layers=1)
json.dump(c, open(sys.argv[2], "w"), indent=1)
PY
else
  python3 - "$HERE/llama7b-slice/config.json" "$WORK/config.json" "$LAYERS" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["num_hidden_layers"] = int(sys.argv[3])
json.dump(c, open(sys.argv[2], "w"), indent=1)
PY
fi
mkdir -p "$WORK/ckpt"
cp "$WORK/config.json" "$WORK/ckpt/config.json"
"$BUILD/bin/mixq-import" "$WORK/config.json" --write-random "$WORK/ckpt" \
  --seed 1 --dtype bf16 -o /dev/null
"$BUILD/bin/mixq-import" "$WORK/ckpt" |
  "$BUILD/bin/mixq-opt" --mixq-compile="config=$HERE/qlora-7b-slice.json out=$WORK/v" \
    --mixq-emit-kernels=out="$WORK/v" -o /dev/null

run() { # device out
  "$BUILD/bin/mixq-run" finetune "$WORK/v" --device "$1" \
    --tokenizer "$DATA/models/llama2-tokenizer/tokenizer.model" \
    --data "alpaca:$DATA/finetune/alpaca_en_demo.json" --batch 4 \
    --seq-len "$SEQ" --loss-on-prompt --lr 1e-4 --stop-after "$STEPS" --out "$WORK/$2" --quiet
  python3 - "$WORK/$2/metrics.json" "$1" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
peak = m.get("device_peak_bytes", m["peak_bytes"])
print(f"{sys.argv[2]:9s} {m.get('device', 'cpu')}: {m['tokens_per_s']:.1f} tokens/s, "
      f"{m['wall_s']:.2f} s, loss {m['loss'][0]:.4f} -> {m['loss'][-1]:.4f}, "
      f"peak {peak['total'] / 2**20:.1f} MiB "
      f"(weights {peak['weights'] / 2**20:.1f}, activations "
      f"{peak['activations'] / 2**20:.1f}, workspace {peak['workspace'] / 2**20:.1f})")
PY
}
run "$DEVICE" dev
if [ "${NO_CPU:-0}" != 1 ]; then
  run cpu cpu
fi
if [ "$DEVICE" = "cuda" ]; then
  NAME=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['device'].replace(' ', '-'))" "$WORK/dev/metrics.json")
  mkdir -p "$HERE/results"
  python3 - "$WORK/dev/metrics.json" "$WORK/cpu/metrics.json" > "$HERE/results/finetune-$NAME.json" <<'PY'
import json, os, sys
out = {"device": json.load(open(sys.argv[1]))}
if os.path.exists(sys.argv[2]):
    out["cpu"] = json.load(open(sys.argv[2]))
json.dump(out, sys.stdout, indent=1)
PY
fi
