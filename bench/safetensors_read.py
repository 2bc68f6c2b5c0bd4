"""A minimal safetensors reader for the PyTorch sides (Debian packages no `safetensors` wheel):
F32 and I64 tensors by name, as torch tensors. Enough for the files bench/train-step.mjs writes
with @lora/safetensors."""
import json
import struct

import torch

DTYPES = {"F32": (torch.float32, 4), "I64": (torch.int64, 8)}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    body = bytearray(data[8 + length:])
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if entry["dtype"] not in DTYPES:
            continue  # e.g. CLIP's position_ids buffer in other checkpoints; nothing here uses them
        begin, end = entry["data_offsets"]
        dtype, size = DTYPES[entry["dtype"]]
        tensor = torch.frombuffer(body, dtype=dtype, offset=begin, count=(end - begin) // size)
        out[name] = tensor.reshape(entry["shape"])
    return out
