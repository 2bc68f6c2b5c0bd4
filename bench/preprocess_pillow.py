"""Pillow side of bench/preprocess.mjs: the same work @lora/dataset does per image (decode, EXIF
rotate, RGB, Lanczos resize to cover size x size with kohya's rounding, centre crop, float32
CHW in [-1, 1]), in this process or in a pool of worker processes (like a PyTorch DataLoader
with num_workers), created once and kept warm."""
import multiprocessing
import os
import time

import numpy as np
from PIL import Image, ImageOps

from worker import serve


def preprocess(path, size):
    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image).convert("RGB")
    width, height = image.size
    scale = max(size / width, size / height)  # cover the square, as kohya's bucket resize does
    resized = (int(width * scale + 0.5), int(height * scale + 0.5))
    image = image.resize(resized, Image.LANCZOS)
    left, top = (resized[0] - size) // 2, (resized[1] - size) // 2
    image = image.crop((left, top, left + size, top + size))
    pixels = np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / 127.5 - 1.0
    return np.ascontiguousarray(pixels)


def preprocess_in_worker(args):
    # The array stays in the worker (a DataLoader would hand it over through shared memory):
    # returning only its shape keeps the pool's transfer cost out of Pillow's number.
    return preprocess(*args).shape


pools = {}
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pool):
    """CPU time of this process and, if given, of the pool's live workers (from /proc)."""
    total = time.process_time()
    for worker in pool._pool if pool else []:
        with open(f"/proc/{worker.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / TICK  # utime, stime
    return total


def run(request):
    files, size, processes = request["files"], request["size"], request["processes"]
    if processes > 1 and processes not in pools:
        pools[processes] = multiprocessing.Pool(processes)
    pool = pools.get(processes) if processes > 1 else None
    started, cpu = time.perf_counter(), cpu_seconds(pool)
    if pool is None:
        for path in files:
            preprocess(path, size)
    else:
        pool.map(preprocess_in_worker, [(path, size) for path in files], chunksize=4)
    return {"seconds": time.perf_counter() - started, "cpu": cpu_seconds(pool) - cpu}


def check(request):
    preprocess(request["file"], request["size"]).tofile(request["out"])
    return {}


if __name__ == "__main__":
    serve({"run": run, "check": check})
