#!/usr/bin/env python3
# A synthetic objective for mixq-search tests: reads a MixQ config JSON
# (version 1, per-layer entries) and prints a metrics JSON. Accuracy grows
# with bits and rank, more in the "important" middle layers; peak bytes grow
# with bits and rank. Deterministic.
#
#   search-objective.py [--mode MODE] [--sleep S] [--log FILE] CONFIG
# MODE: ok (default), crash (exit 3 with a message), segv (SIGSEGV), hang,
# garbage (prints non-JSON), nopeak (no peak_bytes), tasks (per-task
# accuracy object), fail-odd (crash on layer-0 rank index odd).
import json
import math
import os
import signal
import sys
import time

args = sys.argv[1:]
mode, sleep, log = "ok", 0.0, None
while len(args) > 1:
    flag = args.pop(0)
    if flag == "--mode":
        mode = args.pop(0)
    elif flag == "--sleep":
        sleep = float(args.pop(0))
    elif flag == "--log":
        log = args.pop(0)
    else:
        sys.exit("search-objective: unknown flag " + flag)
path = args[0]

with open(path) as f:
    cfg = json.load(f)
assert cfg["version"] == 1, "config version"
layers = sorted(cfg["layers"], key=lambda e: e["layer"])
n = len(layers)

if log:
    with open(log, "a") as f:
        f.write("start %s %d\n" % (os.path.basename(path), os.getpid()))
if sleep:
    time.sleep(sleep)
if mode == "crash":
    sys.stderr.write("objective: simulated crash\n")
    sys.exit(3)
if mode == "segv":
    os.kill(os.getpid(), signal.SIGSEGV)
if mode == "hang":
    time.sleep(3600)
if mode == "garbage":
    print("this is not json {")
    sys.exit(0)

acc = 0.0
peak = 1.0e8
for e in layers:
    l, bits, rank = e["layer"], e["bits"], e["rank"]
    weight = 1.0 + math.sin(math.pi * (l + 0.5) / n)  # middle layers matter
    acc += weight * (1.0 - 2.0 ** (-bits / 2.0)) * (1.0 - 0.5 / (1.0 + rank))
    peak += 2.0e7 * bits / 8.0 + 1.0e6 * rank
acc /= sum(1.0 + math.sin(math.pi * (l + 0.5) / n) for l in range(n))
metrics = {"accuracy": round(acc, 6), "peak_bytes": peak}
if mode == "tasks":
    metrics["accuracy"] = {"t1": {"acc": acc, "acc_norm": acc},
                           "t2": {"acc": acc - 0.01, "acc_norm": acc}}
    metrics["peak_bytes"] = {"total": peak, "weights": peak * 0.5}
if mode == "nopeak":
    del metrics["peak_bytes"]
if log:
    with open(log, "a") as f:
        f.write("end %s\n" % os.path.basename(path))
print("log line before the metrics")
print(json.dumps(metrics))
