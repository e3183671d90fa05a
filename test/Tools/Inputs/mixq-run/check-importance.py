#!/usr/bin/env python3
"""Summarises an importance JSON of mixq-run importance for FileCheck.

Prints the version, method, sample count and per-layer sizes, and checks the
aggregates: taylor layer score = sum of projections, sum of heads = q + o,
sum of KV groups = q + k + v + o, sum of channels = gate + up + down; entropy
layer score = CE[l] - CE[l+1]. Any violation prints BAD lines.
"""
import json
import math
import sys

d = json.load(open(sys.argv[1]))
imp = d["importance"]
layers = d["layers"]
print(f"version {d['version']} method {d['method']} samples {d['samples']} "
      f"layers {len(imp)}")
bad = []
close = lambda a, b: abs(a - b) <= 1e-6 * max(1.0, abs(a), abs(b))
for i, l in enumerate(layers):
    if l["layer"] != i or not close(l["score"], imp[i]):
        bad.append(f"layer {i}: score/importance mismatch")
    if not all(math.isfinite(x) for x in [l["score"]]):
        bad.append(f"layer {i}: non-finite score")
    if d["method"] == "entropy":
        ce = d["cross_entropy"]
        if not close(l["score"], ce[i] - ce[i + 1]):
            bad.append(f"layer {i}: score != CE[l] - CE[l+1]")
        continue
    p = l["projections"]
    if not close(l["score"], sum(p.values())):
        bad.append(f"layer {i}: score != sum of projections")
    if any(x <= 0 for x in p.values()):
        bad.append(f"layer {i}: a projection scores <= 0")
    if not close(sum(l["heads"]), p["q_proj"] + p["o_proj"]):
        bad.append(f"layer {i}: heads do not sum to q + o")
    if not close(sum(l["kv_heads"]),
                 p["q_proj"] + p["k_proj"] + p["v_proj"] + p["o_proj"]):
        bad.append(f"layer {i}: kv_heads do not sum to q + k + v + o")
    if not close(sum(l["channels"]),
                 p["gate_proj"] + p["up_proj"] + p["down_proj"]):
        bad.append(f"layer {i}: channels do not sum to gate + up + down")
    print(f"layer {i}: heads {len(l['heads'])} kv_heads {len(l['kv_heads'])} "
          f"channels {len(l['channels'])}")
if d["method"] == "entropy":
    print(f"answer entropy {d['answer_entropy']:.4f} "
          f"information {len(d['information'])}")
for b in bad:
    print("BAD", b)
print("ok" if not bad else "failed")
