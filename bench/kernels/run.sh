#!/usr/bin/env bash
# Runs mixq-bench on the shapes of issue #4 and writes
# bench/kernels/results/mixq-bench.jsonl (one JSON object per line, plus the
# load average at the start of each run) and mixq-bench.md (table).
# Usage: bench/kernels/run.sh <build-dir> [formats...]
set -euo pipefail
BUILD=${1:?usage: run.sh <build-dir> [formats]}
shift || true
FORMATS=${*:-fp4 int8 int4 int3 int2 bf16 f32}
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$HERE/results
mkdir -p "$OUT"
JSONL=$OUT/mixq-bench.jsonl
: > "$JSONL"
run() {
  local load
  load=$(cut -d' ' -f1 /proc/loadavg)
  echo "+ mixq-bench $*" >&2
  "$BUILD/bin/mixq-bench" "$@" --json |
    sed "s/^{/{\"loadavg\":$load,\"cmd\":\"mixq-bench $*\",/" >> "$JSONL"
}
# 1. nf4 (the issue's format) on every shape, two threads, wall time; bf16
#    products for the training-like m.
for shape in "4096 4096" "11008 4096" "4096 11008"; do
  set -- $shape
  for m in 1 8 16 512 2048; do
    run gemm --format nf4 --m "$m" --n "$1" --k "$2" --rank 8 --min-time 0.2
    if [ "$m" -ge 512 ]; then
      run gemm --format nf4 --m "$m" --n "$1" --k "$2" --rank 8 \
        --precision bf16 --min-time 0.2
    fi
  done
done
# 2. One thread, CPU-time ratio (robust to other processes on the machine).
for shape in "4096 4096" "11008 4096" "4096 11008"; do
  set -- $shape
  for prec in f32 bf16; do
    run gemm --format nf4 --m 512 --n "$1" --k "$2" --rank 8 --nthreads 1 \
      --precision $prec --min-time 0.2
  done
done
# 3. The other formats on the square layer.
for fmt in $FORMATS; do
  for m in 1 16 512; do
    run gemm --format "$fmt" --m "$m" --n 4096 --k 4096 --rank 8 --min-time 0.2
  done
done
python3 "$HERE/render.py" "$JSONL" > "$OUT/mixq-bench.md"
