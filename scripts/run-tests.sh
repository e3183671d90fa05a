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

count() { grep -E "^ *$1 *:" "$log" | tail -1 | sed -E 's/[^:]*: *([0-9]+).*/\1/'; }
passed=$(( $(count Passed || true) + $(count "Expectedly Failed" || true) ))
failed=$(( $(count Failed || true) + $(count "Unexpectedly Passed" || true) + $(count Unresolved || true) + $(count "Timed Out" || true) ))
skipped=$(( $(count Unsupported || true) + $(count Skipped || true) + $(count Excluded || true) ))
# lit prints nothing for categories with zero tests; count() then yields "".
echo "check-mixq: ${passed} passed, ${failed} failed, ${skipped} skipped"
exit "$rc"
