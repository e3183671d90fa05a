#!/usr/bin/env python3
"""Renders mixq-bench JSON lines as a markdown table (bench/kernels/run.sh)."""
import json
import sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("| format | precision | threads | m | n | k | mixq GFLOP/s | "
      "OpenBLAS GFLOP/s | ratio | CPU-time ratio | bits/param | "
      "mixq read GB/s | triad GB/s | fraction | load |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    r.setdefault("cpu_ratio", None)
    cpu = "{:.2f}".format(r["cpu_ratio"]) if r["cpu_ratio"] else "-"
    print("| {format} | {precision} | {threads} | {m} | {n} | {k} | "
          "{mixq_gflops:.1f} | {openblas_gflops:.1f} | {ratio:.2f} | {cpu} | "
          "{bits_per_param:.3f} | {mixq_read_gbs:.1f} | {bandwidth_gbs:.1f} | "
          "{bandwidth_fraction:.0%} | {loadavg} |".format(cpu=cpu, **r))
