#!/bin/sh
# Kill -9 a worker of a built-in-trial study while a trial runs, then let a
# second worker finish the study. Prints the study's trials CSV and whether a
# trial process of the killed worker outlived it.
# Usage: search-kill-builtin.sh MIXQ_SEARCH OUT_DIR MODEL TOKENIZER
set -eu
search=$1 out=$2 model=$3 tok=$4
study=sqlite://$out/k.db
set -- "$search" run --study "$study" --model "$model" --tokenizer "$tok" \
  --bits 4,8 --ranks 2,4 --strategy random --seed 3 --trials 3 \
  --task babi:qa1 --batch 4 --train-limit 250 --limit 8 --threads 1 \
  --timeout 300 --heartbeat 0.2 --stale-after 2 --poll 0.1
# exec: $! must be the worker itself, not a subshell around it.
(exec "$@" --worker-id A) 2> "$out/a.log" &
a=$!
# Wait until A has completed one trial and is running the next.
i=0
while :; do
  csv=$("$search" report --study "$study" --trials-csv - 2>/dev/null || true)
  if echo "$csv" | grep -q ',complete,' && echo "$csv" | grep -q ',running,'; then
    break
  fi
  i=$((i + 1))
  if [ $i -gt 1200 ]; then
    echo "worker A never reached its second trial"; cat "$out/a.log"; exit 1
  fi
  sleep 0.1
done
sleep 0.5
kill -9 $a
wait $a || true
# The trial runs in a forked child in its own process group; it must die with
# its worker (parent-death signal), not keep training.
sleep 0.5
if pgrep -f -- "$out/k.db" > /dev/null; then
  echo "ORPHAN: a process of the killed worker is still running"
  pkill -9 -f -- "$out/k.db" || true
else
  echo "no orphan"
fi
"$@" --worker-id B 2> "$out/b.log"
"$search" report --study "$study" --trials-csv -
