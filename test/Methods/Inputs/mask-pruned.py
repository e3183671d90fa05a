#!/usr/bin/env python3
"""mask-pruned.py SRC_HF_DIR PRUNE_REPORT OUT_DIR

Writes the unpruned model of SRC_HF_DIR (F32 safetensors) with the units that
--mixq-prune removed switched off instead of cut out: the o_proj input columns
of every removed query head and the down_proj input columns of every removed
MLP channel are zeroed. That model computes the same function as the pruned
one, so the two must agree (test/Methods/mixq-prune.mlir)."""
import array
import json
import os
import shutil
import struct
import sys

src, report_path, out = sys.argv[1:4]
report = json.load(open(report_path))
cfg = json.load(open(os.path.join(src, "config.json")))
hd = cfg["hidden_size"] // cfg["num_attention_heads"]
with open(os.path.join(src, "model.safetensors"), "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    raw_header = f.read(n)
    header = json.loads(raw_header)
    data = bytearray(f.read())


def zero_columns(name, cols):
    info = header[name]
    assert info["dtype"] == "F32"
    rows, width = info["shape"]
    begin = info["data_offsets"][0]
    values = array.array("f")
    values.frombytes(bytes(data[begin:info["data_offsets"][1]]))
    for r in range(rows):
        for c in cols:
            values[r * width + c] = 0.0
    data[begin:info["data_offsets"][1]] = values.tobytes()


zeroed = 0
for layer in report["layers"]:
    if "kept_heads" not in layer:
        continue
    l = layer["layer"]
    heads = cfg["num_attention_heads"]
    channels = cfg["intermediate_size"]
    gone_heads = [h for h in range(heads) if h not in layer["kept_heads"]]
    gone_cols = [h * hd + i for h in gone_heads for i in range(hd)]
    gone_channels = [c for c in range(channels)
                     if c not in layer["kept_channels"]]
    zero_columns(f"model.layers.{l}.self_attn.o_proj.weight", gone_cols)
    zero_columns(f"model.layers.{l}.mlp.down_proj.weight", gone_channels)
    zeroed += 1
os.makedirs(out, exist_ok=True)
shutil.copy(os.path.join(src, "config.json"), os.path.join(out, "config.json"))
with open(os.path.join(out, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", n))
    f.write(raw_header)
    f.write(data)
print(f"masked {zeroed} layers")
