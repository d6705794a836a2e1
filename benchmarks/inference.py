"""Tiled prediction against the raw model forward, and peak memory for a small vs a huge image.

    python benchmarks/inference.py                    # default model, CPU or GPU (whichever is present)
    python benchmarks/inference.py --ckpt PATH        # a trained checkpoint instead of a fresh default model

Throughput: a 3840x2160 image through beadseg's tiled predictor (overlap, blending, normalisation, TTA off)
against the bare network on batches of tiles holding the same number of pixels; the ratio is the cost of tiling.
Memory: each size runs in a fresh process with a 16-bit TIFF input read as a memory map and the probability
map written to a memory map; reported is the peak of the process's anonymous memory (heap, not the file-backed
maps the OS pages in and out) above what it held once the model was loaded; on a GPU also the peak allocated
GPU memory.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import tifffile
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from beadseg.checkpoint import load_network
from beadseg.config import CONFIG_DIR
from beadseg.inference.predictor import ModelPredictor


def load_module(ckpt: str | None, overrides: list[str]):
    """A checkpoint's network and settings, or a fresh default model (``net`` and ``hparams`` either way)."""
    if ckpt:
        return load_network(ckpt, "segment")
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["paths.output_dir=/tmp/beadseg-benchmark", *overrides])
    return instantiate(cfg.module)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def raw_forward(predictor: ModelPredictor, pixels: int, tile: int) -> float:
    """Pixels per second of the bare network on batches of tile x tile inputs totalling ``pixels``."""
    count = math.ceil(pixels / tile**2)
    per_pass = predictor.per_pass(tile**2)
    batch = torch.rand(per_pass, 1, tile, tile, device=predictor.device)
    with torch.no_grad():
        predictor.tile_model(batch[:1])  # warm-up
        sync(predictor.device)
        start = time.perf_counter()
        for first in range(0, count, per_pass):
            predictor.tile_model(batch[: min(per_pass, count - first)])
        sync(predictor.device)
    return count * tile**2 / (time.perf_counter() - start)


def tiled(predictor: ModelPredictor, image: np.ndarray) -> float:
    predictor.predict(image[:256, :256])  # warm-up
    sync(predictor.device)
    start = time.perf_counter()
    predictor.predict(image)
    sync(predictor.device)
    return image.size / (time.perf_counter() - start)


def anonymous_memory() -> int:
    with open("/proc/self/status") as status:
        return next((int(line.split()[1]) * 1024 for line in status if line.startswith("RssAnon:")), 0)


def memory_probe(side: int, ckpt: str | None, overrides: list[str], tile: int, batch_size: int) -> dict:
    """Run in a fresh process: predict a side x side 16-bit TIFF; return peak memories in bytes."""
    module = load_module(ckpt, overrides)
    predictor = ModelPredictor(module, tile=tile, batch_pixels=batch_size * tile**2)
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "big.tif"
        rng = np.random.default_rng(0)
        with tifffile.TiffWriter(path, bigtiff=True) as tif:  # written in strips: never the whole image in memory
            tif.write(shape=(side, side), dtype=np.uint16,
                      data=(rng.integers(0, 65535, (min(512, side - y), side), dtype=np.uint16)
                            for y in range(0, side, 512)), rowsperstrip=512)
        image = tifffile.memmap(path, mode="r")
        out = np.lib.format.open_memmap(Path(scratch) / "p.npy", "w+", np.float32, image.shape)
        peak, running = [anonymous_memory()], True
        baseline = peak[0]

        def watch() -> None:
            while running:
                peak[0] = max(peak[0], anonymous_memory())
                time.sleep(0.005)

        thread = threading.Thread(target=watch)
        thread.start()
        if predictor.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        predictor.predict(image, probability_out=out)
        seconds = time.perf_counter() - start
        running = False
        thread.join()
    gpu = torch.cuda.max_memory_allocated() if predictor.device.type == "cuda" else None
    return {"side": side, "heap_bytes": peak[0] - baseline, "gpu_bytes": gpu, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", default=None)
    parser.add_argument("--tiles", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--memory-sides", type=int, nargs="+", default=[2048, 10000])
    parser.add_argument("--memory-overrides", nargs="*", default=["model.base_channels=4"],
                        help="model for the memory runs (small by default: the memory bound does not depend on it)")
    parser.add_argument("--memory-batches", type=int, nargs="+", default=[8, 4], help="tiles per forward pass")
    parser.add_argument("--probe", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--probe-batch", type=int, default=8, help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for the throughput model")
    args = parser.parse_args()
    if args.probe:
        print(json.dumps(memory_probe(args.probe, args.ckpt, args.memory_overrides, 512, args.probe_batch)))
        return

    module = load_module(args.ckpt, args.overrides)
    image = np.random.default_rng(0).integers(0, 255, (2160, 3840), dtype=np.uint8)
    device = "GPU " + torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({torch.get_num_threads()} threads)"
    print(f"\n{device}; model {type(module.net).__name__}; 3840x2160 image; best of {args.repeats}")
    print("| tile (overlap 32 px) | raw forward Mpx/s | tiled prediction Mpx/s | ratio |\n|---|---|---|---|")
    for tile in args.tiles:
        predictor = ModelPredictor(module, tile=tile)
        raw = max(raw_forward(predictor, image.size, tile) for _ in range(args.repeats))
        whole = max(tiled(predictor, image) for _ in range(args.repeats))
        print(f"| {tile} | {raw / 1e6:.3f} | {whole / 1e6:.3f} | {whole / raw:.3f} |")

    print(f"\nPeak memory of tiled prediction (model overrides {' '.join(args.memory_overrides) or 'none'}; tile 512)")
    print("| tiles per batch | image | heap above the loaded model | GPU allocated | seconds |\n|---|---|---|---|---|")
    for batch in args.memory_batches:
        results = []
        for side in args.memory_sides:
            command = [sys.executable, __file__, "--probe", str(side), "--probe-batch", str(batch),
                       "--memory-overrides", *args.memory_overrides]
            if args.ckpt:
                command += ["--ckpt", args.ckpt]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            result = json.loads(done.stdout.strip().splitlines()[-1])
            results.append(result)
            gpu = f"{result['gpu_bytes'] / 2**20:.0f} MiB" if result["gpu_bytes"] else "-"
            print(f"| {batch} | {side}x{side} | {result['heap_bytes'] / 2**20:.0f} MiB | {gpu} | {result['seconds']:.0f} |")
        ratio = results[-1]["heap_bytes"] / max(results[0]["heap_bytes"], 1)
        print(f"| {batch} | ratio | {ratio:.2f}x for {results[-1]['side'] ** 2 / results[0]['side'] ** 2:.0f}x the pixels | | |")


if __name__ == "__main__":
    main()
