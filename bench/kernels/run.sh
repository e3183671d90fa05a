#!/usr/bin/env bash
# Runs mixq-bench on the shapes of issue #4 and writes
# bench/kernels/results/mixq-bench.jsonl (one JSON object per line, plus the
# load average at the start of each run) and mixq-bench.md (table).
# Usage: bench/kernels/run.sh <build-dir> [formats...]
set -euo pipefail
BUILD=${1:?usage: run.sh <build-dir> [formats]}
shift || true
FORMATS=${*:-nf4}
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
for fmt in $FORMATS; do
  for shape in "4096 4096" "11008 4096" "4096 11008"; do
    set -- $shape
    for m in 1 8 16 512 2048; do
      run gemm --format "$fmt" --m "$m" --n "$1" --k "$2" --rank 8 --min-time 0.2
      if [ "$m" -ge 512 ] && [ "$fmt" = nf4 ]; then
        run gemm --format "$fmt" --m "$m" --n "$1" --k "$2" --rank 8 \
          --precision bf16 --min-time 0.2
      fi
    done
  done
done
python3 "$HERE/render.py" "$JSONL" > "$OUT/mixq-bench.md"
