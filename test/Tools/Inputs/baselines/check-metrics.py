#!/usr/bin/env python3
"""Checks a mixq-run finetune metrics JSON of a baseline run and prints one
line for FileCheck: the bAbI qa1 accuracy is present and in [0, 1], the peak
bytes are positive and their categories sum to the total, the run finished
with a finite loss. With --adalora, also prints the final total rank and the
target budget."""
import json
import math
import sys

path = sys.argv[1]
m = json.load(open(path))
acc = m["accuracy"]["babi:qa1"]
peak = m["peak_bytes"]
cats = sum(v for k, v in peak.items() if k != "total")
ok_acc = 0.0 <= acc["acc"] <= 1.0 and 0.0 <= acc["acc_norm"] <= 1.0
ok_peak = peak["total"] > 0 and cats == peak["total"]
loss = m["loss"]
ok_loss = len(loss) == m["steps"] and all(math.isfinite(x) for x in loss)
print("babi:qa1 n=%d acc %s, peak %s, steps %d %s, loss %s, trainable %s" % (
    acc["n"], "ok" if ok_acc else "BAD %r" % acc,
    "ok" if ok_peak else "BAD %r" % peak, m["steps"],
    "finished" if m["finished"] else "UNFINISHED",
    "ok" if ok_loss else "BAD", "yes" if m["trainable_params"] > 0 else "NO"))
if "--adalora" in sys.argv:
    a = m["adalora"]
    print("adalora total_rank %d target %d init %d" % (
        a["total_rank"], a["target_budget"], a["init_budget"]))
