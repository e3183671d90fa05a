#!/usr/bin/env python3
"""Summarises an init_report.json of --mixq-init-adapters for FileCheck:
"N linears, LABEL[, all below qlora]" then, per linear sorted by weight,
"weight adapter init below|equal|ABOVE" (error vs qlora_error) and, for
the first, its two errors."""
import json
import sys

doc = json.load(open(sys.argv[1]))
layers = sorted(doc["layers"], key=lambda e: e["weight"])


def relation(e):
    if e["error"] < e["qlora_error"]:
        return "below"
    if e["error"] == e["qlora_error"]:
        return "equal"
    return "ABOVE"


head = "%d linears, %s" % (len(layers), sys.argv[2])
if all(relation(e) == "below" for e in layers):
    head += ", all below qlora"
print(head)
for e in layers:
    print("%s %s %s %s" % (e["weight"], e["adapter"], e["init"], relation(e)))
q = [e for e in layers if e["weight"].endswith("0.self_attn.q_proj.weight")]
if q:
    print("%s error %.4g qlora_error %.4g" %
          (q[0]["weight"], q[0]["error"], q[0]["qlora_error"]))
