"""Sliding-window inference: overlapping tiles, batched on the device, blended with smooth weights.

Memory is bounded by the tile batch and one band of tile rows: finished rows are written straight into
the output (which may be a memory map), so a 10000x10000 image costs about what a 2048x2048 one does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np
import torch

from beadseg.system import release_pages

# (N, 1, h, w) normalised tiles -> (N, C, h, w) probabilities and (optionally) their uncertainty
TileModel = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]


def blend_window(height: int, width: int, kind: str = "gaussian") -> np.ndarray:
    """Weights that fall smoothly towards a tile's edges (never to zero: every pixel stays covered)."""

    def profile(n: int) -> np.ndarray:
        position = (np.arange(n) + 0.5) / n - 0.5  # -0.5 .. 0.5
        if kind == "gaussian":
            return np.exp(-0.5 * (position / 0.125) ** 2)  # sigma = 1/8 of the tile, as nnU-Net
        if kind == "cosine":
            return np.cos(np.pi * position) ** 2
        if kind == "constant":
            return np.ones(n)
        raise ValueError(f"blend={kind!r}: choose gaussian, cosine or constant")

    return np.maximum(np.outer(profile(height), profile(width)), 1e-3).astype(np.float32)


def tile_plan(length: int, tile: int, overlap: int, multiple: int = 1) -> tuple[int, list[int]]:
    """Tile size and origins along one axis: as few tiles as cover ``length`` with at least ``overlap`` px
    shared by neighbours, shrunk (to a multiple of ``multiple``) and spread evenly so little is computed twice."""
    if length <= tile:
        return length, [0]
    if not 0 <= overlap < tile:
        raise ValueError(f"inference.overlap={overlap} px must be at least 0 and smaller than inference.tile={tile}")
    count = math.ceil((length - overlap) / (tile - overlap))
    size = min(tile, math.ceil((length + (count - 1) * overlap) / count / multiple) * multiple)
    return size, [int(round(v)) for v in np.linspace(0, length - size, count)]


def _batches(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def to_device(batch: np.ndarray, device: str | torch.device) -> torch.Tensor:
    """A host batch on the device: through pinned memory with a non-blocking copy to a GPU."""
    tensor = torch.from_numpy(np.ascontiguousarray(batch))
    if torch.device(device).type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def predict_tiled(
    model: TileModel,
    image: np.ndarray,
    normalize: Callable[[np.ndarray], np.ndarray],
    *,
    tile: int = 512,
    overlap: int = 32,
    batch_size: int = 8,
    blend: str = "gaussian",
    device: str | torch.device = "cpu",
    multiple: int = 1,
    probability_out: np.ndarray | None = None,
    uncertainty_out: np.ndarray | None = None,
    on_tile_row: Callable[[int], None] | None = None,
    channels: int = 1,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Probability map (and uncertainty map when the model gives one) of a whole 2-D image of any size: (H, W),
    or (channels, H, W) for a model with several output maps (the uncertainty is that of the first).

    ``normalize`` maps a raw crop to model input; tiles are ``tile`` px at most (a multiple of ``multiple``,
    the model's divisor, so that it pads nothing), neighbours sharing at least ``overlap`` px. Outputs go into
    ``probability_out`` / ``uncertainty_out``
    when given (e.g. memory maps), else into new float32 arrays. ``on_tile_row(n_tiles)`` reports progress (0
    as a row starts, the tile count when it is done).
    """
    height, width = image.shape
    tile_h, rows = tile_plan(height, tile, overlap, multiple)
    tile_w, cols = tile_plan(width, tile, overlap, multiple)
    weights = blend_window(tile_h, tile_w, blend)
    shape = (channels, height, width) if channels > 1 else (height, width)
    probability = probability_out if probability_out is not None else np.empty(shape, np.float32)
    uncertainty = uncertainty_out
    # Weighted sums over one band of tile_h rows: only rows no later tile touches are divided out and written.
    band = {
        "probability": np.zeros((channels, tile_h, width), np.float32),
        "weight": np.zeros((tile_h, width), np.float32),
    }
    origin = 0  # image row of the band's first row

    def flush(until: int) -> None:
        nonlocal origin
        count = until - origin
        if count <= 0:
            return
        finished = band["probability"][:, :count] / band["weight"][:count]
        probability[..., origin:until, :] = finished if channels > 1 else finished[0]
        if uncertainty is not None and "uncertainty" in band:
            uncertainty[origin:until] = band["uncertainty"][:count] / band["weight"][:count]
        for values in band.values():
            values[..., : tile_h - count, :] = values[..., count:, :].copy()
            values[..., tile_h - count :, :] = 0
        origin = until
        release_pages(image, probability, uncertainty)

    for top in rows:
        if on_tile_row:
            on_tile_row(0)  # a row starts: the caller may stop the run here (napari's Cancel)
        flush(top)
        strip = normalize(image[top : top + tile_h])
        for xs in _batches(cols, batch_size):
            tiles = to_device(np.stack([strip[:, x : x + tile_w] for x in xs])[:, None], device)
            with torch.no_grad():
                on_device, spread_on_device = model(tiles)
            probs = on_device.float().cpu().numpy()
            if probs.shape[1] != channels:
                raise ValueError(f"the model gives {probs.shape[1]} output maps, {channels} expected")
            if spread_on_device is not None and "uncertainty" not in band:
                band["uncertainty"] = np.zeros_like(band["weight"])
                if uncertainty is None:
                    uncertainty = np.empty((height, width), np.float32)
            spread = spread_on_device[:, 0].float().cpu().numpy() if spread_on_device is not None else None
            offset = top - origin
            for index, x in enumerate(xs):
                window = (slice(offset, offset + tile_h), slice(x, x + tile_w))
                band["probability"][(slice(None), *window)] += probs[index] * weights
                if spread is not None:
                    band["uncertainty"][window] += spread[index] * weights
                band["weight"][window] += weights
        if on_tile_row:
            on_tile_row(len(cols))
    flush(height)
    return probability, uncertainty
