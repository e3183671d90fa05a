#!/usr/bin/env python3
"""Summarises LQ-LoRA configs (--mixq-lq-lora-bits) of increasing budgets:
one line per file, then whether the total error decreases."""
import json
import re
import sys

errors = []
for path in sys.argv[1:]:
    doc = json.load(open(path))
    m = re.search(r"budget ([0-9.]+) bits/param, used ([0-9.]+), total "
                  r"squared error ([0-9.E+-]+)", doc["comment"])
    budget, used, err = float(m.group(1)), float(m.group(2)), float(m.group(3))
    errors.append(err)
    print("%d linears, budget %.1f, used %.4f, %s" %
          (len(doc["layers"]), budget, used,
           "within" if used <= budget + 1e-9 else "OVER"))
ok = all(a > b for a, b in zip(errors, errors[1:]))
print("error %s with budget" % ("decreasing" if ok else "NOT decreasing"))
