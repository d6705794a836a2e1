"""Sliding-window inference: overlapping tiles, batched on the device, blended with smooth weights.

Memory is bounded by the tile batch and one band of tile rows: finished rows are written straight into
the output (which may be a memory map), so a 10000x10000 image costs about what a 2048x2048 one does.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch

# (N, 1, h, w) normalised tiles -> (N, 1, h, w) probabilities and (optionally) their uncertainty
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


def tile_starts(length: int, tile: int, overlap: float) -> list[int]:
    """Tile origins along one axis: ``overlap`` of a tile shared by neighbours, the last tile flush with the end."""
    if length <= tile:
        return [0]
    step = max(int(tile * (1 - overlap)), 1)
    starts = list(range(0, length - tile, step))
    return starts + [length - tile]


def _batches(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def predict_tiled(
    model: TileModel,
    image: np.ndarray,
    normalize: Callable[[np.ndarray], np.ndarray],
    tile: int = 256,
    overlap: float = 0.25,
    batch_size: int = 8,
    blend: str = "gaussian",
    device: str | torch.device = "cpu",
    probability_out: np.ndarray | None = None,
    uncertainty_out: np.ndarray | None = None,
    on_tile_row: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Probability map (and uncertainty map when the model gives one) of a whole 2-D image of any size.

    ``normalize`` maps a raw crop to model input. Outputs go into ``probability_out`` / ``uncertainty_out``
    when given (e.g. memory maps), else into new float32 arrays. ``on_tile_row(n_tiles)`` reports progress.
    """
    height, width = image.shape
    tile_h, tile_w = min(tile, height), min(tile, width)
    weights = blend_window(tile_h, tile_w, blend)
    rows, cols = tile_starts(height, tile_h, overlap), tile_starts(width, tile_w, overlap)
    probability = probability_out if probability_out is not None else np.empty((height, width), np.float32)
    uncertainty = uncertainty_out
    band = np.zeros((2, tile_h, width), np.float64)  # weighted sums of probability and uncertainty
    band_weight = np.zeros((tile_h, width), np.float64)
    has_uncertainty, origin = False, 0  # image row of band[:, 0]

    def flush(until: int) -> None:
        nonlocal band, band_weight, origin
        count = until - origin
        if count <= 0:
            return
        probability[origin:until] = band[0, :count] / band_weight[:count]
        if has_uncertainty:
            uncertainty[origin:until] = band[1, :count] / band_weight[:count]
        band = np.roll(band, -count, axis=1)
        band_weight = np.roll(band_weight, -count, axis=0)
        band[:, -count:], band_weight[-count:] = 0, 0
        origin = until

    for top in rows:
        flush(top)
        strip = normalize(image[top : top + tile_h])
        for xs in _batches(cols, batch_size):
            tiles = torch.from_numpy(np.stack([strip[:, x : x + tile_w] for x in xs])[:, None]).to(device)
            with torch.no_grad():
                probs, spread = model(tiles)
            probs = probs[:, 0].float().cpu().numpy()
            if spread is not None and not has_uncertainty:
                has_uncertainty = True
                if uncertainty is None:
                    uncertainty = np.empty((height, width), np.float32)
            spread = spread[:, 0].float().cpu().numpy() if spread is not None else None
            offset = top - origin
            for index, x in enumerate(xs):
                window = (slice(offset, offset + tile_h), slice(x, x + tile_w))
                band[0][window] += probs[index] * weights
                if spread is not None:
                    band[1][window] += spread[index] * weights
                band_weight[window] += weights
        if on_tile_row:
            on_tile_row(len(cols))
    flush(height)
    return probability, uncertainty
