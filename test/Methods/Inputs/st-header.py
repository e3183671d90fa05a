#!/usr/bin/env python3
"""Prints a safetensors file's header for FileCheck: one line per tensor
("name dtype [shape]"), sorted, then one line per __metadata__ entry
("meta key = value"). With --f32 NAME, prints that F32 tensor's first
values; with --diff NAME OTHER_FILE [OTHER_NAME], the max abs difference of
an F32 tensor against one in another file."""
import json
import struct
import sys


def read(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    return header, data


def f32(path, name):
    header, data = read(path)
    e = header[name]
    assert e["dtype"] == "F32", e
    b, end = e["data_offsets"]
    return struct.unpack("<%df" % ((end - b) // 4), data[b:end])


def main(argv):
    path = argv[1]
    if len(argv) > 3 and argv[2] == "--diff":
        a = f32(path, argv[3])
        b = f32(argv[4], argv[5] if len(argv) > 5 else argv[3])
        assert len(a) == len(b), (len(a), len(b))
        print("maxdiff %.3g" % max(abs(x - y) for x, y in zip(a, b)))
        return
    header, _ = read(path)
    meta = header.pop("__metadata__", {})
    for name in sorted(header):
        e = header[name]
        print("%s %s %s" % (name, e["dtype"], e["shape"]))
    for k in sorted(meta):
        print("meta %s = %s" % (k, meta[k]))


main(sys.argv)
