#!/usr/bin/env python3
"""Writes a safetensors file with one F32 tensor NAME [ROWS, COLS] of
deterministic values in [-0.5, 0.5) (a "trained" QA-BLoRA H)."""
import json
import struct
import sys

out, name, rows, cols = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
vals = [((i * 7919) % 1000) / 1000.0 - 0.5 for i in range(rows * cols)]
header = {name: {"dtype": "F32", "shape": [rows, cols],
                 "data_offsets": [0, 4 * len(vals)]}}
h = json.dumps(header).encode()
h += b" " * ((8 - len(h) % 8) % 8)
with open(out, "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + struct.pack("<%df" % len(vals), *vals))
