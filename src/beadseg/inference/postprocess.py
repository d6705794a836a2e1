"""From a probability map to a clean mask and separated bead instances."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage.measure import label, regionprops_table
from skimage.morphology import h_maxima
from skimage.segmentation import watershed


def split_touching(mask: np.ndarray, split_depth: float = 0.7) -> np.ndarray:
    """Instance labels: connected components split by a watershed of the distance transform.

    Each regional maximum of the distance transform at least ``split_depth`` px above the neck that joins it
    to a higher one seeds a bead, so two touching disks part while a single disk (or a plateau) stays whole.
    """
    if not mask.any():
        return np.zeros(mask.shape, np.int32)
    distance = ndi.distance_transform_edt(mask)
    markers = label(h_maxima(distance, split_depth), connectivity=2)
    return watershed(-distance, markers, mask=mask).astype(np.int32)


def circularity(labels: np.ndarray) -> dict[int, float]:
    """4π·area/perimeter² of each instance (1 for a disk; small objects can exceed 1)."""
    table = regionprops_table(labels, properties=("label", "area", "perimeter"))
    return {int(l): float(4 * np.pi * a / max(p, 1.0) ** 2) for l, a, p in zip(table["label"], table["area"], table["perimeter"])}


@dataclass
class PostProcess:
    """Threshold, fill holes, separate touching beads, drop objects of the wrong size or shape.

    ``threshold=None`` uses the model's own (tuned on validation and stored with the checkpoint).
    """

    threshold: float | None = None
    fill_holes: bool = True
    watershed: bool = True
    split_depth: float = 0.7
    min_area: int = 4
    max_area: int | None = None
    min_circularity: float = 0.3

    def __call__(self, probability: np.ndarray, default_threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
        """Clean binary mask and instance labels (int32, 0 = background)."""
        threshold = default_threshold if self.threshold is None else self.threshold
        mask = np.asarray(probability) > threshold
        if self.fill_holes:
            mask = ndi.binary_fill_holes(mask)
        labels = split_touching(mask, self.split_depth) if self.watershed else label(mask, connectivity=1).astype(np.int32)
        if labels.max():
            areas = np.bincount(labels.ravel())
            drop = areas < self.min_area
            if self.max_area is not None:
                drop |= areas > self.max_area
            if self.min_circularity > 0:
                for index, value in circularity(labels).items():
                    drop[index] |= value < self.min_circularity
            drop[0] = True
            labels[drop[labels]] = 0
            labels = _relabel(labels)
        return labels > 0, labels


def _relabel(labels: np.ndarray) -> np.ndarray:
    values = np.unique(labels)
    lookup = np.zeros(values.max() + 1, np.int32)
    lookup[values] = np.arange(len(values))
    return lookup[labels]
