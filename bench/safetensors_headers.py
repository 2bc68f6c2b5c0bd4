"""Baseline for the sharded-checkpoint open time: what a Python loader does at the least before
it can look tensors up (read the index, then each shard's 8-byte length and JSON header), with
the standard library only. The safetensors wheel (Rust) is not packaged by Debian."""
import json
import os
import struct
import time

from worker import serve


def open_headers(index_path):
    with open(index_path, "rb") as f:
        index = json.load(f)
    folder = os.path.dirname(index_path)
    tensors = {}
    for shard in sorted(set(index["weight_map"].values())):
        with open(os.path.join(folder, shard), "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(length))
        header.pop("__metadata__", None)
        for name, info in header.items():
            tensors[name] = (shard, info["dtype"], info["shape"], info["data_offsets"])
    missing = [name for name, shard in index["weight_map"].items() if tensors.get(name, (None,))[0] != shard]
    if missing:
        raise ValueError(f"{len(missing)} tensors are not in the shard the index names, e.g. {missing[0]}")
    return tensors


def run(request):
    started = time.perf_counter()
    tensors = open_headers(request["index"])
    return {"seconds": time.perf_counter() - started, "tensors": len(tensors)}


serve({"run": run})
