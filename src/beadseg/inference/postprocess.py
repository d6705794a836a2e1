"""From a probability map to a clean mask and separated bead instances, whole or chunk by chunk."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage as ndi
from skimage.measure import label, regionprops_table

from beadseg.data.instances import SPLIT_DEPTH, split_at_peaks, split_touching
from beadseg.data.io import release_pages

log = logging.getLogger(__name__)

DEFAULT_PEAK_THRESHOLD = 0.3  # an untuned target=centres model's


def circularity(area: np.ndarray, perimeter: np.ndarray) -> np.ndarray:
    """4π·area/perimeter² with the Crofton perimeter (pass ``perimeter_crofton``), which stays right on small
    objects: 1.01 for a 15 px disk, 1.05-1.08 for 5-7 px ones (the 4-connected perimeter gives 1.2-1.4 there)."""
    return 4 * np.pi * np.asarray(area, float) / np.maximum(np.asarray(perimeter, float), 1.0) ** 2


def object_table(labels: np.ndarray, image: np.ndarray, probability: np.ndarray,
                 offset: tuple[int, int] = (0, 0)) -> list[dict]:
    """One row per bead (id, centroid shifted by ``offset``, area, diameter, circularity, mean intensity and
    probability): the columns of ``objects.csv``."""
    if labels.max() == 0:
        return []
    intensity = np.stack([np.asarray(image, np.float32), np.asarray(probability, np.float32)], -1)
    shape = regionprops_table(labels, intensity_image=intensity,
                              properties=("label", "centroid", "area", "equivalent_diameter_area", "perimeter_crofton",
                                          "intensity_mean"))
    roundness = circularity(shape["area"], shape["perimeter_crofton"])
    return [
        {
            "bead_id": int(shape["label"][i]),
            "centroid_y": round(float(shape["centroid-0"][i]) + offset[0], 2),
            "centroid_x": round(float(shape["centroid-1"][i]) + offset[1], 2),
            "area": int(shape["area"][i]),
            "equivalent_diameter": round(float(shape["equivalent_diameter_area"][i]), 3),
            "circularity": round(float(roundness[i]), 3),
            "mean_intensity": round(float(shape["intensity_mean-0"][i]), 3),
            "mean_probability": round(float(shape["intensity_mean-1"][i]), 4),
        }
        for i in range(len(shape["label"]))
    ]


def _relabel(labels: np.ndarray) -> np.ndarray:
    values = np.unique(labels)
    lookup = np.zeros(values.max() + 1, np.int32)
    lookup[values] = np.arange(len(values))
    return lookup[labels]


def _starts(length: int, chunk: int) -> list[int]:
    return list(range(0, length, chunk))


def bead_maps(maps: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The bead probability and, for a ``target=centres`` model, the centre heat-map, of a (H, W) or (C, H, W)
    stack of maps."""
    if not isinstance(maps, np.ndarray):  # keeps a memory map a memory map
        maps = np.asarray(maps)
    if maps.ndim == 2:
        return maps, None
    return maps[0], (maps[1] if len(maps) > 1 else None)


@dataclass
class PostProcess:
    """Threshold, fill holes, separate touching beads, drop objects of the wrong size or shape.

    The input is the bead probability map (H, W) or, from a ``target=centres`` model, the stack (2, H, W) of
    probability and centre heat-map: then every heat-map peak above ``peak_threshold`` inside the mask is one
    bead (``peak_distance`` px apart at least) and the watershed of the heat-map gives it its pixels.
    ``peak_threshold=None`` uses the model's own (:meth:`for_model`; 0.3 untuned).

    ``threshold=None`` uses the model's own (tuned on validation and stored with the checkpoint). Frames larger
    than ``chunk`` px are processed in chunks that see ``halo`` px of their neighbours; a bead belongs to the
    chunk holding its centroid, so one that crosses a chunk edge is one bead, counted once (beads must be
    smaller than ``halo``).
    """

    threshold: float | None = None
    fill_holes: bool = True
    watershed: bool = True
    split_depth: float = SPLIT_DEPTH
    min_area: int = 4
    max_area: int | None = None
    min_circularity: float = 0.3
    peak_threshold: float | None = None
    peak_distance: int = 2
    chunk: int = 2048
    halo: int = 64

    def threshold_for(self, default: float) -> float:
        """The probability threshold in force: this one's, or else ``default`` (the model's stored one)."""
        return default if self.threshold is None else self.threshold

    def for_model(self, predictor) -> PostProcess:
        """This post-processing with the predictor's stored peak threshold where none is set here."""
        if self.peak_threshold is not None:
            return self
        return replace(self, peak_threshold=predictor.peak_threshold)

    def candidates(self, maps: np.ndarray, default_threshold: float = 0.5) -> np.ndarray:
        """Instance labels before the size and shape filters: threshold, hole filling, touching beads split (at
        the centre heat-map's peaks when there is one)."""
        probability, centres = bead_maps(maps)
        mask = np.asarray(probability) > self.threshold_for(default_threshold)
        if self.fill_holes:
            mask = ndi.binary_fill_holes(mask)
        if centres is not None:
            peak = DEFAULT_PEAK_THRESHOLD if self.peak_threshold is None else self.peak_threshold
            return split_at_peaks(mask, np.asarray(centres), peak, self.peak_distance)
        return split_touching(mask, self.split_depth) if self.watershed else label(mask, connectivity=1).astype(np.int32)

    def keeps(self, area: np.ndarray, roundness: np.ndarray) -> np.ndarray:
        """Which objects pass the size (``min_area``, ``max_area``) and shape (``min_circularity``) filters."""
        keep = np.asarray(area) >= self.min_area
        if self.max_area is not None:
            keep &= np.asarray(area) <= self.max_area
        return keep & (np.asarray(roundness) >= self.min_circularity)

    def __call__(self, maps: np.ndarray, default_threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
        """Clean binary mask and instance labels (int32, 0 = background) of a whole (small) probability map."""
        labels = self.candidates(maps, default_threshold)
        if labels.max():
            table = regionprops_table(labels, properties=("label", "area", "perimeter_crofton"))
            keep = np.zeros(labels.max() + 1, bool)
            keep[table["label"]] = self.keeps(table["area"], circularity(table["area"], table["perimeter_crofton"]))
            labels = _relabel(np.where(keep[labels], labels, 0))
        return labels > 0, labels

    def instances(self, maps: np.ndarray, image: np.ndarray, default_threshold: float = 0.5,
                  labels_out: np.ndarray | None = None) -> tuple[np.ndarray, list[dict]]:
        """Instance labels of a frame of any size (into ``labels_out``, e.g. a memory map, when given) and its
        object table, computed chunk by chunk (one measurement per bead serves the filters and the table):
        memory does not grow with the frame."""
        probability = bead_maps(maps)[0]
        height, width = probability.shape
        labels = labels_out if labels_out is not None else np.zeros((height, width), np.int32)
        rows: list[dict] = []
        truncated = 0
        for top in _starts(height, self.chunk):
            for left in _starts(width, self.chunk):
                core = (top, min(top + self.chunk, height), left, min(left + self.chunk, width))
                y0, y1 = max(core[0] - self.halo, 0), min(core[1] + self.halo, height)
                x0, x1 = max(core[2] - self.halo, 0), min(core[3] + self.halo, width)
                local = self.candidates(maps[..., y0:y1, x0:x1], default_threshold)
                table = object_table(local, image[y0:y1, x0:x1], probability[y0:y1, x0:x1], (y0, x0))
                if not table:
                    continue
                ids = np.array([row["bead_id"] for row in table])
                cy, cx = np.array([[row["centroid_y"], row["centroid_x"]] for row in table]).T
                owned = (cy >= core[0]) & (cy < core[1]) & (cx >= core[2]) & (cx < core[3])
                owned &= self.keeps([row["area"] for row in table], [row["circularity"] for row in table])
                cut = [local[0] if y0 > 0 else (), local[-1] if y1 < height else (),
                       local[:, 0] if x0 > 0 else (), local[:, -1] if x1 < width else ()]
                truncated += int(np.isin(ids[owned], np.concatenate([np.ravel(c) for c in cut])).sum())
                lookup = np.zeros(local.max() + 1, np.int64)
                lookup[ids[owned]] = np.arange(1, owned.sum() + 1) + len(rows)
                for row, new_id in zip((r for r, o in zip(table, owned) if o), lookup[ids[owned]]):
                    rows.append({**row, "bead_id": int(new_id)})
                mine = lookup[local]
                window = labels[y0:y1, x0:x1]
                free = (mine > 0) & (window == 0)
                window[free] = mine[free]
            release_pages(image, maps, labels)
        if truncated:
            log.warning("%d beads reach past the %d px halo of their chunk (larger than the halo?): "
                        "raise postprocess.halo", truncated, self.halo)
        return labels, rows
