"""What prediction writes per image: mask, instance labels, overlays, maps, and the object measurements."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import tifffile
from skimage.measure import regionprops_table
from skimage.segmentation import find_boundaries
from skimage.transform import resize


def display(image: np.ndarray) -> np.ndarray:
    """An image stretched to 0..1 between its 0.5 and 99.5 percentiles (huge images: from a strided sample)."""
    step = max(1, int(np.sqrt(image.size / 4e6)))
    low, high = np.percentile(np.asarray(image[::step, ::step], np.float32), (0.5, 99.5))
    return np.clip((np.asarray(image, np.float32) - low) / max(high - low, 1e-9), 0, 1)


def overlay_png(image: np.ndarray, labels: np.ndarray, path: Path, max_side: int = 4096) -> Path:
    """The image in gray with every bead's outline in yellow (downscaled when larger than ``max_side``)."""
    scale = min(1.0, max_side / max(image.shape))
    gray, edges = display(image), find_boundaries(labels, mode="inner")
    if scale < 1:
        shape = (round(image.shape[0] * scale), round(image.shape[1] * scale))
        gray = resize(gray, shape, anti_aliasing=True)
        edges = resize(edges.astype(np.float32), shape) > 0.2
    rgb = (np.repeat(gray[..., None], 3, axis=-1) * 255).astype(np.uint8)
    rgb[edges] = (255, 220, 0)
    iio.imwrite(path, rgb)
    return path


def write_labels(labels: np.ndarray, path: Path) -> Path:
    tifffile.imwrite(path, labels.astype(np.uint16 if labels.max() < 2**16 else np.uint32), compression="zlib")
    return path


def write_mask(mask: np.ndarray, path: Path) -> Path:
    tifffile.imwrite(path, mask.astype(np.uint8) * 255, compression="zlib")
    return path


def write_map(values: np.ndarray, path: Path) -> Path:
    tifffile.imwrite(path, np.asarray(values).astype(np.float16), compression="zlib")
    return path


def object_rows(name: str, labels: np.ndarray, image: np.ndarray, probability: np.ndarray) -> list[dict]:
    """``objects.csv`` rows: one per bead."""
    if labels.max() == 0:
        return []
    shape = regionprops_table(labels, intensity_image=np.stack([np.asarray(image, np.float32), probability], -1),
                              properties=("label", "centroid", "area", "equivalent_diameter_area", "perimeter",
                                          "intensity_mean"))
    return [
        {
            "image": name,
            "bead_id": int(shape["label"][i]),
            "centroid_y": round(float(shape["centroid-0"][i]), 2),
            "centroid_x": round(float(shape["centroid-1"][i]), 2),
            "area": int(shape["area"][i]),
            "equivalent_diameter": round(float(shape["equivalent_diameter_area"][i]), 3),
            "circularity": round(float(4 * np.pi * shape["area"][i] / max(shape["perimeter"][i], 1.0) ** 2), 3),
            "mean_intensity": round(float(shape["intensity_mean-0"][i]), 3),
            "mean_probability": round(float(shape["intensity_mean-1"][i]), 4),
        }
        for i in range(len(shape["label"]))
    ]
