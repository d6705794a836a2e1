"""Images/s the training loader delivers, per loader worker, in the first epoch and in the steady state, without a
model: what a GPU that trains at N images/s needs from the host.

    python benchmarks/loader.py                         # the lab's settings: batch 32 of 256² patches
    python benchmarks/loader.py --workers 0 2 8 --images 200

Sources: the built-in synthetic one (images rendered once in the main process, shared with the forked workers)
and a folder of 16-bit 512² TIFF pairs (read, normalised and cached by each worker). Epoch 1 includes starting the
workers and reading every image; epoch 2 is the steady state (persistent workers, images in their caches).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
from hydra import compose, initialize_config_dir

from beadseg.config import CONFIG_DIR
from beadseg.data.synthetic import render_beads
from beadseg.datasets import build_datamodule
from beadseg.system import usable_cpus


def tiff_folder(root: Path, count: int) -> Path:
    rng = np.random.default_rng(0)
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True)
    for index in range(count):
        image, labels = render_beads(rng, 512, None, "brightfield", bit_depth=16, n_debris=4)
        tifffile.imwrite(root / "images" / f"frame_{index:04d}.tif", image)
        tifffile.imwrite(root / "masks" / f"frame_{index:04d}.tif", ((labels > 0) * 255).astype(np.uint8))
    return root


def epochs(overrides: list[str], workers: int) -> tuple[float, float]:
    """Images/s in the first and the second epoch of the training loader."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["paths.output_dir=/tmp/beadseg-benchmark", "data.output_dir=null",
                                          f"data.num_workers={workers}", *overrides])
    datamodule = build_datamodule(cfg.data)
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    rates = []
    for _ in range(2):
        start, images = time.perf_counter(), 0
        for batch in loader:
            images += len(batch["image"])
        rates.append(images / (time.perf_counter() - start))
    return rates[0], rates[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--images", type=int, default=60, help="images per source")
    args = parser.parse_args()
    lab = ["data.batch_size=32", "data.patch_size=256", "augmentation=heavy"]
    with tempfile.TemporaryDirectory() as scratch:
        folder = tiff_folder(Path(scratch) / "tiffs", args.images)
        sources = {"synthetic (512², mixed)": ["data=synthetic", f"data.source.n_images={args.images}",
                                               "data.source.image_size=512"],
                   "folder of 16-bit 512² TIFFs": ["data=folder", f"data.root={folder}"]}
        print(f"CPU: {usable_cpus()} cores; batch 32 of 256² patches, heavy augmentation\n")
        print("| source | loader workers | epoch 1 images/s | steady state images/s | per worker (steady) |")
        print("|---|---:|---:|---:|---:|")
        for source, overrides in sources.items():
            for workers in args.workers:
                first, steady = epochs([*overrides, *lab], workers)
                print(f"| {source} | {workers} | {first:.0f} | {steady:.0f} | {steady / max(workers, 1):.0f} |")


if __name__ == "__main__":
    main()
