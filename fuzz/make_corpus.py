#!/usr/bin/env python3
"""Writes the seed corpora of the import fuzzers (fuzz/corpus/*).

Small valid files of each format plus a few near-misses, so that libFuzzer
starts from inputs that get past the first checks. Deterministic; run it
again after changing it and commit the outputs.
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def safetensors(entries, metadata=None, pad=True):
    """entries: list of (name, dtype, shape, bytes)."""
    header, data, offset = {}, b"", 0
    for name, dtype, shape, raw in entries:
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [offset, offset + len(raw)]}
        data += raw
        offset += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data


def f32(values):
    return struct.pack("<%df" % len(values), *values)


def llama2c(dim, hidden, layers, heads, kv, vocab, seq, extra=0):
    hd = dim // heads
    kvdim = kv * hd
    v = abs(vocab)
    n = (v * dim + layers * (dim + dim * dim + 2 * kvdim * dim + dim * dim +
                             dim + 3 * dim * hidden) + dim + seq * hd +
         (v * dim if vocab < 0 else 0) + extra)
    return (struct.pack("<7i", dim, hidden, layers, heads, kv, vocab, seq) +
            f32([i * 0.01 for i in range(max(n, 0))]))


def write(kind, name, data):
    d = os.path.join(HERE, "corpus", kind)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    write("safetensors", "f32.safetensors",
          safetensors([("a", "F32", [2, 2], f32([1, 2, 3, 4])),
                       ("b", "F32", [1], f32([5]))], {"format": "pt"}))
    write("safetensors", "dtypes.safetensors",
          safetensors([("h", "F16", [2], b"\x00\x3c\x00\xc0"),
                       ("bf", "BF16", [2], b"\x80\x3f\xa0\xc0"),
                       ("i8", "I8", [3], b"\x01\xff\x7f"),
                       ("u8", "U8", [1], b"\x07"),
                       ("i16", "I16", [1], b"\x01\x02"),
                       ("i32", "I32", [1], b"\x01\x02\x03\x04"),
                       ("i64", "I64", [1], b"\x01" * 8),
                       ("f64", "F64", [1], b"\x00" * 8),
                       ("e", "F32", [0, 3], b"")]))
    write("safetensors", "model.safetensors",
          safetensors([("model.embed_tokens.weight", "F32", [4, 2], f32(range(8))),
                       ("model.norm.weight", "F32", [2], f32([1, 1]))]))
    write("safetensors", "unpadded.safetensors",
          safetensors([("x", "BF16", [3], b"\x80\x3f" * 3)], pad=False))
    overlap = (b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
               b'"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}')
    write("safetensors", "overlap.safetensors",
          struct.pack("<Q", len(overlap)) + overlap + b"\x00" * 6)
    write("safetensors", "empty.safetensors", safetensors([]))
    write("llama2c", "shared.bin", llama2c(4, 4, 1, 2, 1, 2, 1))
    write("llama2c", "separate.bin", llama2c(8, 12, 2, 2, 1, -4, 2))
    write("llama2c", "gqa.bin", llama2c(8, 6, 1, 4, 2, 3, 1))
    write("llama2c", "truncated.bin", llama2c(4, 4, 1, 2, 1, 2, 1, extra=-3))
    write("llama2c", "header-only.bin", struct.pack("<7i", 8, 8, 1, 2, 2, 4, 4))


if __name__ == "__main__":
    main()
