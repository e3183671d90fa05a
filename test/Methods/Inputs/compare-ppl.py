#!/usr/bin/env python3
"""compare-ppl.py A.json B.json: the perplexities of two mixq-run eval metrics
JSONs (one ppl task each) agree to a relative 1e-4."""
import json
import sys

def ppl(path):
    acc = json.load(open(path))["accuracy"]
    (task,) = acc.values()
    return task["ppl"]

a, b = ppl(sys.argv[1]), ppl(sys.argv[2])
rel = abs(a - b) / max(abs(a), 1e-12)
print("ppl %s (relative difference %s)" % ("equal" if rel <= 1e-4 else
                                             "DIFFERENT %r vs %r" % (a, b),
                                             "< 1e-4" if rel <= 1e-4 else rel))
