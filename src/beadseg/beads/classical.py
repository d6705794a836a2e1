"""A classical bead detector (no training): background removal, noise-scaled bead signal, peaks, half-maximum regions.

It handles both polarities (dark beads in bright-field, bright beads in fluorescence). ``beadseg-analyze`` uses
it to check labels against the image; it is also the untrained baseline every model is compared with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage.feature import peak_local_max
from skimage.segmentation import watershed


@dataclass
class Detections:
    """Beads found in one image."""

    polarity: str  # "dark" (bright-field) or "bright" (fluorescence)
    signal: np.ndarray  # background-free bead signal in noise units (beads positive)
    centroids: np.ndarray  # (N, 2) y, x of each bead's half-maximum region
    labels: np.ndarray  # instance labels of the half-maximum regions (0 = background)
    areas: np.ndarray  # (N,) pixels per bead
    heights: np.ndarray  # (N,) peak signal of each bead, in noise units

    @property
    def count(self) -> int:
        return len(self.centroids)


def _tophats(image: np.ndarray, background_size: int, smooth_sigma: float) -> tuple[np.ndarray, np.ndarray]:
    # Odd reflection continues illumination slopes past the border, where a mirror would fake a bead-like dip.
    pad = background_size
    padded = np.pad(image.astype(np.float32), pad, mode="reflect", reflect_type="odd")
    smooth = ndi.gaussian_filter(padded, smooth_sigma)
    inner = (slice(pad, -pad), slice(pad, -pad))
    return ndi.white_tophat(smooth, size=background_size)[inner], ndi.black_tophat(smooth, size=background_size)[inner]


def _noise_units(residual: np.ndarray) -> np.ndarray:
    centre = np.median(residual)
    sigma = 1.4826 * np.median(np.abs(residual - centre))
    return (residual - centre) / max(float(sigma), 1e-6)


def bead_signal(
    image: np.ndarray, polarity: str = "auto", background_size: int = 25, smooth_sigma: float = 1.0
) -> tuple[np.ndarray, str]:
    """The bead signal in noise units (beads positive) and the polarity it used.

    ``polarity="auto"`` picks the side (dark or bright) whose strongest features stand out most from the noise.
    """
    bright, dark = _tophats(image, background_size, smooth_sigma)
    bright, dark = _noise_units(bright), _noise_units(dark)
    if polarity == "auto":
        polarity = "dark" if np.percentile(dark, 99.95) > np.percentile(bright, 99.95) else "bright"
    if polarity not in ("dark", "bright"):
        raise ValueError(f"polarity={polarity!r}: choose auto, dark or bright")
    return (dark if polarity == "dark" else bright), polarity


def detect_beads(
    image: np.ndarray,
    polarity: str = "auto",
    threshold: float = 5.0,
    min_distance: int = 2,
    background_size: int = 25,
    smooth_sigma: float = 1.0,
) -> Detections:
    """Beads as local maxima of the signal above ``threshold`` noise units, each grown to its half maximum."""
    signal, polarity = bead_signal(image, polarity, background_size, smooth_sigma)
    peaks = peak_local_max(signal, min_distance=min_distance, threshold_abs=threshold, exclude_border=False)
    markers = np.zeros(signal.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    basins = watershed(-signal, markers, mask=signal > threshold / 2)
    peak_height = np.zeros(len(peaks) + 1, np.float32)
    peak_height[1:] = signal[tuple(peaks.T)]
    labels = np.where(signal >= 0.5 * peak_height[basins], basins, 0).astype(np.int32)
    index = np.arange(1, len(peaks) + 1)
    areas = ndi.sum_labels(np.ones_like(labels), labels, index).astype(int)
    centroids = np.asarray(ndi.center_of_mass(np.ones_like(labels), labels, index)).reshape(-1, 2)
    return Detections(polarity, signal, centroids, labels, areas, peak_height[1:])


def coverage(detections: Detections, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per detected bead: whether a mask pixel (grown by one) covers its centre, and whether it stands out like
    the labelled ones (at least half their median height: not a faint dip or a cut-off half bead)."""
    if not detections.count:
        return np.zeros(0, bool), np.zeros(0, bool)
    centres = np.clip(np.round(detections.centroids).astype(int), 0, np.array(mask.shape) - 1)
    covered = ndi.binary_dilation(mask)[tuple(centres.T)]
    clear = (
        detections.heights >= 0.5 * np.median(detections.heights[covered]) if covered.any() else np.ones_like(covered)
    )
    return covered, clear


def unlabelled_regions(
    image: np.ndarray, labels: np.ndarray, margin: int = 2, debris_fraction: float = 0.5
) -> np.ndarray:
    """Pixels of clearly visible beads that no label covers, grown by ``margin`` px but never onto a labelled
    bead: where a loss should not be told "background" (label-aware training). A speck under ``debris_fraction``
    of the labelled beads' (half-maximum) size is debris, which the loss must call background: it stays in."""
    detections = detect_beads(image)
    covered, clear = coverage(detections, labels > 0)
    if covered.any():
        clear &= detections.areas >= debris_fraction * np.median(detections.areas[covered])
    missed = np.flatnonzero(~covered & clear) + 1
    if not len(missed):
        return np.zeros(labels.shape, bool)
    region = np.isin(detections.labels, missed)
    if margin:
        region = ndi.binary_dilation(region, iterations=margin)
    return region & (labels == 0)
