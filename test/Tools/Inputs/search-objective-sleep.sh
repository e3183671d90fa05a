#!/bin/sh
# A fast shell objective for the kill -9 tests: logs "start"/"end" lines,
# sleeps, prints metrics derived from the config (count of 8-bit layers).
#   search-objective-sleep.sh SECONDS LOG CONFIG
set -e
name=$(basename "$3")
echo "start $name" >> "$2"
sleep "$1"
n=$(grep -c '"bits": 8' "$3" || true)
r=$(grep -o '"rank": [0-9]*' "$3" | awk '{s += $2} END {print s + 0}')
echo "end $name" >> "$2"
echo "{\"accuracy\": 0.$n$r, \"peak_bytes\": $((1000 + 100 * n + r))}"
