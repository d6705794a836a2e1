"""Check masks against the image itself: shifted masks, beads no mask covers, masks smaller or larger than beads."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy.signal import fftconvolve
from skimage.measure import label

from beadseg.beads.classical import Detections, coverage


@dataclass
class QAThresholds:
    """When an image is flagged (the values and their meaning: conf/qa/default.yaml)."""

    min_labelled_fraction: float
    min_offset_px: float
    min_offset_confidence: float
    size_ratio_range: tuple[float, float]
    max_shift: int
    max_empty_label_fraction: float = 0.5


@dataclass
class LabelCheck:
    """What one mask gets wrong, judged against the beads the classical detector finds in its image."""

    offset_y: float  # where the mask sits relative to the beads it labels (+ = mask lower / further right)
    offset_x: float
    offset_confidence: float  # 0 (no evidence) .. 1 (a clean correlation peak)
    detected: int  # labelled beads the detector found, plus clear unlabelled ones
    unlabelled: int  # clearly visible beads that no (offset-corrected) mask pixel covers
    size_ratio: float  # median labelled area / apparent area over beads matched one-to-one (nan if none)
    unlabelled_centroids: np.ndarray
    labels: int = 0  # labelled objects (the mask's connected components)
    empty_labels: int = 0  # labelled objects with no detected bead under them (offset undone)

    @property
    def labelled_fraction(self) -> float:
        return 1.0 - self.unlabelled / self.detected if self.detected else 1.0

    @property
    def offset(self) -> float:
        return float(np.hypot(self.offset_y, self.offset_x))

    def flags(self, qa: QAThresholds) -> list[str]:
        """What is wrong with the mask: ``missing_labels``, ``labels_without_beads`` (most labelled objects cover no
        bead: the mask of another image, or of nothing), ``offset``, ``mask_smaller`` / ``mask_larger``."""
        flags = []
        if self.labelled_fraction < qa.min_labelled_fraction:
            flags.append("missing_labels")
        if self.labels and self.empty_labels / self.labels > qa.max_empty_label_fraction:
            flags.append("labels_without_beads")
        if self.offset >= qa.min_offset_px and self.offset_confidence >= qa.min_offset_confidence:
            flags.append("offset")
        low, high = qa.size_ratio_range
        if np.isfinite(self.size_ratio) and not low <= self.size_ratio <= high:
            flags.append("mask_smaller" if self.size_ratio < low else "mask_larger")
        return flags

    def faults(self, qa: QAThresholds) -> str:
        """The mask's faults in words (empty when none): what the worst-images figure says of a mask."""
        words = {
            "missing_labels": f"{self.unlabelled} visible beads unlabelled",
            "labels_without_beads": f"{self.empty_labels} of {self.labels} labels cover no bead (another image's "
            "mask?)",
            "offset": f"mask shifted by {self.offset:.1f} px",
            "mask_smaller": f"mask {self.size_ratio:.2f}x the beads' area",
            "mask_larger": f"mask {self.size_ratio:.2f}x the beads' area",
        }
        return "; ".join(words[flag] for flag in self.flags(qa))


def _parabola_vertex(left: float, centre: float, right: float) -> float:
    curvature = left - 2 * centre + right
    return 0.0 if curvature >= 0 else 0.5 * (left - right) / curvature


def estimate_offset(mask: np.ndarray, signal: np.ndarray, max_shift: int = 8) -> tuple[float, float, float]:
    """Shift (dy, dx) of the mask against the bead signal by cross-correlation, and a confidence in [0, 1].

    The confidence compares the correlation peak with its level ``max_shift`` pixels away (no bead overlap).
    """
    if not mask.any() or signal.max() <= 0:
        return 0.0, 0.0, 0.0
    beads = np.clip(signal, 0, 20).astype(np.float32)
    full = fftconvolve(mask.astype(np.float32), beads[::-1, ::-1], mode="full")
    cy, cx = beads.shape[0] - 1, beads.shape[1] - 1
    window = full[cy - max_shift : cy + max_shift + 1, cx - max_shift : cx + max_shift + 1]
    iy, ix = np.unravel_index(np.argmax(window), window.shape)
    peak = window[iy, ix]
    ring = np.concatenate([window[0], window[-1], window[1:-1, 0], window[1:-1, -1]])
    confidence = float(np.clip((peak - np.median(ring)) / max(peak, 1e-9), 0, 1))
    dy, dx = float(iy - max_shift), float(ix - max_shift)
    if 0 < iy < 2 * max_shift:
        dy += _parabola_vertex(window[iy - 1, ix], peak, window[iy + 1, ix])
    if 0 < ix < 2 * max_shift:
        dx += _parabola_vertex(window[iy, ix - 1], peak, window[iy, ix + 1])
    return dy, dx, confidence


def shift_mask(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Move a mask (binary or labels) by whole pixels; what leaves the frame is lost, what enters is background."""
    return ndi.shift(mask, (dy, dx), order=0, mode="constant", cval=0)


def label_faults(image: np.ndarray, mask: np.ndarray, detect, qa: QAThresholds) -> str:
    """A mask's faults in words, judged against the beads ``detect`` finds in its image."""
    return check_labels(mask, detect(image), qa.max_shift).faults(qa)


def check_labels(mask: np.ndarray, detections: Detections, max_shift: int = 8) -> LabelCheck:
    """Offset, unlabelled beads and size bias of one mask."""
    dy, dx, confidence = estimate_offset(mask, detections.signal, max_shift)
    aligned = shift_mask(mask, -round(dy), -round(dx)) if confidence > 0 else mask
    centres = np.clip(np.round(detections.centroids).astype(int), 0, np.array(mask.shape) - 1)
    covered, clear = coverage(detections, aligned)
    missed = ~covered & clear

    components = label(aligned, connectivity=1)
    owner = components[tuple(centres.T)] if detections.count else np.zeros(0, int)
    hits = np.bincount(owner, minlength=components.max() + 1)
    one_to_one = (owner > 0) & (hits[owner] == 1)
    component_area = np.bincount(components.ravel())
    ratios = component_area[owner[one_to_one]] / np.maximum(detections.areas[one_to_one], 1)
    return LabelCheck(
        offset_y=dy,
        offset_x=dx,
        offset_confidence=confidence,
        detected=int((covered | clear).sum()),
        unlabelled=int(missed.sum()),
        size_ratio=float(np.median(ratios)) if len(ratios) else float("nan"),
        unlabelled_centroids=detections.centroids[missed],
        labels=int(components.max()),
        empty_labels=int(np.sum(hits[1:] == 0)),
    )
