#!/usr/bin/env bash
# Builds everything check-mixq needs, runs lit (IR, tools, GoogleTest) and
# ends with one summary line: "check-mixq: N passed, N failed, N skipped".
set -uo pipefail
build=${1:-build}
jobs=${2:-$(nproc)}
log="$build/check-mixq.log"

ninja -C "$build" -j "$jobs" all || exit 1
/usr/lib/llvm-22/bin/lit -sv "$build/test" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}

# lit's summary has lines like "  Passed: 12 (80.00%)"; a category with no
# tests is not printed, and counts as 0.
count() {
  local n
  n=$(grep -E "^ *$1 *: *[0-9]+" "$log" | tail -1 | sed -E 's/[^:]*: *([0-9]+).*/\1/')
  echo "${n:-0}"
}
passed=$(( $(count Passed) + $(count "Expectedly Failed") ))
failed=$(( $(count Failed) + $(count "Unexpectedly Passed") + $(count Unresolved) + $(count "Timed Out") ))
skipped=$(( $(count Unsupported) + $(count Skipped) + $(count Excluded) ))
echo "check-mixq: ${passed} passed, ${failed} failed, ${skipped} skipped"
exit "$rc"
