"""What prediction writes per image: masks, instance labels, maps and overlays, each written whole or not at all.

Every file is written under a temporary name and renamed into place, so an interrupted run never leaves a file
that a resumed run would trust. Arrays larger than ``LARGE`` pixels (memory maps) are written tile by tile.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterator

import imageio.v3 as iio
import numpy as np
import tifffile

from beadseg import plots
from beadseg.data.io import release_pages

LARGE = 4096 * 4096  # pixels: above this, maps live in memory maps and are written tile by tile
TIFF_TILE = 512


def _partial(path: Path) -> Path:
    return path.with_name(f".{path.name}.partial")


def _tiles(array: np.ndarray, convert: Callable[[np.ndarray], np.ndarray], dtype) -> Iterator[np.ndarray]:
    for top in range(0, array.shape[0], TIFF_TILE):
        for left in range(0, array.shape[1], TIFF_TILE):
            tile = np.zeros((TIFF_TILE, TIFF_TILE), dtype)
            block = convert(np.asarray(array[top : top + TIFF_TILE, left : left + TIFF_TILE]))
            tile[: block.shape[0], : block.shape[1]] = block
            yield tile
        release_pages(array)


def write_tiff(array: np.ndarray, path: Path, convert: Callable[[np.ndarray], np.ndarray], dtype) -> Path:
    """``convert(array)`` as a zlib-compressed TIFF of ``dtype``; large arrays go tile by tile (bounded memory)."""
    partial = _partial(path)
    if array.size > LARGE:
        tifffile.imwrite(partial, _tiles(array, convert, dtype), shape=array.shape, dtype=dtype,
                         tile=(TIFF_TILE, TIFF_TILE), compression="zlib")
    else:
        tifffile.imwrite(partial, convert(np.asarray(array)).astype(dtype), compression="zlib")
    os.replace(partial, path)
    return path


def label_dtype(bead_count: int):
    return np.uint16 if bead_count < 2**16 else np.uint32


def write_labels(labels: np.ndarray, path: Path, bead_count: int) -> Path:
    dtype = label_dtype(bead_count)
    return write_tiff(labels, path, lambda block: block.astype(dtype), dtype)


def write_mask(labels: np.ndarray, path: Path) -> Path:
    """0/255 bead mask from instance labels."""
    return write_tiff(labels, path, lambda block: (block > 0).astype(np.uint8) * 255, np.uint8)


def write_map(values: np.ndarray, path: Path) -> Path:
    return write_tiff(values, path, lambda block: block.astype(np.float16), np.float16)


def overlay_png(image: np.ndarray, labels: np.ndarray, path: Path, max_side: int = 4096) -> Path:
    """The image in gray with every bead's outline in yellow, as a PNG (huge frames: every k-th pixel)."""
    rgb = (plots.overlay(image, labels, (1.0, 220 / 255, 0.0), max_side) * 255).astype(np.uint8)
    release_pages(image, labels)
    partial = _partial(path)
    iio.imwrite(partial, rgb, extension=".png")
    os.replace(partial, path)
    return path


def masked_mean(values: np.ndarray, labels: np.ndarray, band: int = 1024) -> tuple[float | None, float]:
    """Mean of ``values`` over the beads, and the fraction of pixels that are bead, in row bands."""
    total, count = 0.0, 0
    for top in range(0, labels.shape[0], band):
        beads = np.asarray(labels[top : top + band]) > 0
        count += int(beads.sum())
        if values is not None:
            total += float(np.asarray(values[top : top + band], np.float64)[beads].sum())
        release_pages(values, labels)
    mean = total / count if values is not None and count else None
    return mean, count / labels.size
