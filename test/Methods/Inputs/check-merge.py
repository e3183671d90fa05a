#!/usr/bin/env python3
"""Checks merged / folded weights numerically, printing one line for
FileCheck.

  dense MERGED CKPT REPORT: for every linear of an init_report.json,
    ||merged W - checkpoint W||_F must equal the reported init error
    ||W - Q - s*AB||_F (the merge is dequant(Q) + s*AB) to 1e-4 relative.
  fold FOLDED BASE ADAPTERS NAME SCALE L1: the zero points of NAME in FOLDED
    must be those in BASE plus SCALE * H / L1 (H = lora_H of ADAPTERS).
"""
import json
import math
import struct
import sys


def tensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    header.pop("__metadata__", None)
    return header, data


def f32(file, name):
    header, data = file
    e = header[name]
    assert e["dtype"] == "F32", (name, e)
    b, end = e["data_offsets"]
    return struct.unpack("<%df" % ((end - b) // 4), data[b:end])


def dense(merged, ckpt, report):
    m, c = tensors(merged), tensors(ckpt)
    layers = json.load(open(report))["layers"]
    bad = []
    for e in layers:
        a, b = f32(m, e["weight"]), f32(c, e["weight"])
        frob = math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)))
        if abs(frob - e["error"]) > 1e-4 * e["qlora_error"]:
            bad.append("%s: %g vs %g" % (e["weight"], frob, e["error"]))
    print("%d merged, %s" % (len(layers), "; ".join(bad) or "all match"))


def fold(folded, base, adapters, name, scale, l1):
    f, b, a = tensors(folded), tensors(base), tensors(adapters)
    z1, z0 = f32(f, name + ".qzeros"), f32(b, name + ".qzeros")
    mod = "base_model.model." + name[: -len(".weight")]
    h = f32(a, mod + ".lora_H.weight")
    worst = max(abs(x - y - scale * hv / l1) for x, y, hv in zip(z1, z0, h))
    moved = max(abs(x - y) for x, y in zip(z1, z0))
    codes = f[0][name + ".qcodes"] == b[0][name + ".qcodes"]
    print("fold %s: beta moved %s, error %s, codes %s" %
          (name, "yes" if moved > 1e-3 else "no",
           "ok" if worst < 1e-6 else "BAD %g" % worst,
           "same" if codes else "DIFFERENT"))


if sys.argv[1] == "dense":
    dense(*sys.argv[2:5])
else:
    fold(*sys.argv[2:6], float(sys.argv[6]), float(sys.argv[7]))
