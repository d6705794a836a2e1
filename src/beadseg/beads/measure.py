"""Measuring beads: each object's size, shape, contrast over its local background, and the image's noise."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def circularity(area: np.ndarray, perimeter: np.ndarray) -> np.ndarray:
    """4π·area/perimeter² with the Crofton perimeter (pass ``perimeter_crofton``), at most 1 as ImageJ's ``Circ.``:
    the Crofton estimate stays close on small objects (1.01 for a 15 px disk, 1.05-1.08 for 5-7 px ones before the
    cap; the 4-connected perimeter gives 1.2-1.4 there), and nothing is rounder than a disk.

    Examples
    --------
    >>> circularity([np.pi * 100], [2 * np.pi * 10]).round(3), circularity([21], [14.9]).round(3)
    (array([1.]), array([1.]))
    >>> circularity([300], [80]).round(3)  # a 10 x 30 bar
    array([0.589])
    """
    return np.minimum(4 * np.pi * np.asarray(area, float) / np.maximum(np.asarray(perimeter, float), 1.0) ** 2, 1.0)


def _residual_share() -> float:
    """How much of white noise's σ survives subtracting its 1 px Gaussian blur (about 0.87)."""
    impulse = np.zeros((15, 15))
    impulse[7, 7] = 1.0
    return float(np.sqrt(np.sum((impulse - ndi.gaussian_filter(impulse, 1.0)) ** 2)))


_RESIDUAL_SHARE = _residual_share()


def image_noise(image: np.ndarray, window: int = 128, grid: int = 3) -> float:
    """The image's pixel noise (σ, in its own units): the robust spread (MAD) of the image minus its 1 px Gaussian
    blur (scaled back to the σ of white noise), over up to ``grid``² windows spread across the frame (cheap on any
    size; beads barely move a median)."""
    height, width = image.shape
    crops = np.stack([np.asarray(image[top : top + window, left : left + window], np.float32)
                      for top in np.linspace(0, max(height - window, 0), grid).astype(int)
                      for left in np.linspace(0, max(width - window, 0), grid).astype(int)])
    residual = (crops - ndi.gaussian_filter(crops, (0, 1.0, 1.0))).ravel()
    spread = 1.4826 * float(np.median(np.abs(residual - np.median(residual)))) / _RESIDUAL_SHARE
    # a smooth, coarsely quantised frame can have a MAD of 0: never below a thousandth of its range
    if spread >= 1e-3 * float(np.ptp(crops)):  # the range below is no wider than the crops' extremes
        return max(spread, 1e-6)
    value_range = float(np.ptp(np.percentile(crops, (0.1, 99.9))))
    return max(spread, 1e-3 * value_range, 1e-6)


def square_maximum(values: np.ndarray, reach: int = 1) -> np.ndarray:
    """The maximum over the (2·``reach``+1)² square around each pixel, clipped to the frame (scipy's
    ``maximum_filter`` with ``mode="nearest"``), by array shifts along each axis in turn, each shift's reach up to
    the width covered so far (1, 3, 9... px: two steps of two shifts for a reach of 4, not four): several times
    faster for the small squares used here (for a boolean mask: the mask grown by ``reach``).

    Examples
    --------
    >>> values = np.zeros((1, 9), int); values[0, 4] = 7; values[0, 8] = 1
    >>> square_maximum(values, 2).tolist()
    [[0, 0, 7, 7, 7, 7, 7, 1, 1]]
    """
    result = values.copy()
    for axis in (0, 1):
        covered = 1  # the width each maximum spans so far along this axis
        while covered < 2 * reach + 1:
            step = min(covered, (2 * reach + 1 - covered) // 2)
            source = result.copy()
            for target, shifted in ((slice(step, None), slice(None, -step)), (slice(None, -step), slice(step, None)),
                                    (slice(None, step), slice(None, 1)),  # past the frame's edge: the edge's maximum
                                    (slice(-step, None), slice(-1, None))):
                where, what = [slice(None)] * 2, [slice(None)] * 2
                where[axis], what[axis] = target, shifted
                np.maximum(result[tuple(where)], source[tuple(what)], out=result[tuple(where)])
            covered += 2 * step
    return result


def contrast_snr(labels: np.ndarray, image: np.ndarray, noise: float, ring: int = 4,
                 sums: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Per label (index = label number): the aperture signal-to-noise ratio of each object, how far its mean
    intensity stands from its local background in units of the noise of a mean over that many pixels,
    ``|mean(object) - background| * sqrt(area) / noise`` (dark and bright beads alike). The background is the
    median of a ring 2..``ring`` px around the object, clear of every object (for an object crowded without one,
    the median of the chunk's background, from every other row and column). A blob of noise scores about 1.
    ``sums``: each label's pixel count and intensity sum, when the caller has them."""
    count = int(labels.max())
    snr = np.zeros(count + 1)
    if not count:
        return snr
    image = np.asarray(image, np.float32)
    around = square_maximum(labels.astype(np.uint16) if count < 2**16 else labels, ring)
    ring_mask = (around > 0) & ~square_maximum(labels > 0)
    owners, values = around[ring_mask], image[ring_mask]
    # by owner, then by value: one sort of a combined key (exact for integer intensities) instead of a lexsort
    low, span = (float(values.min()), float(np.ptp(values)) + 1.0) if len(values) else (0.0, 1.0)
    order = np.argsort(owners * span + (values.astype(np.float64) - low))
    owners, values = owners[order], values[order]
    starts = np.searchsorted(owners, np.arange(count + 2))
    has_ring = starts[1:-1] < starts[2:]
    background = np.zeros(count + 1, np.float32)
    background[1:][has_ring] = values[((starts[1:-1] + starts[2:]) // 2)[has_ring]]
    if not has_ring.all():  # objects crowded without a free pixel around them: the chunk's background
        free = image[::2, ::2][labels[::2, ::2] == 0]
        background[1:][~has_ring] = np.median(free) if len(free) else 0.0
    if sums is None:
        sums = (np.bincount(labels.ravel(), minlength=count + 1),
                np.bincount(labels.ravel(), weights=image.ravel(), minlength=count + 1))
    pixels, total = sums
    pixels, total = pixels[1:], total[1:]
    mean = total / np.maximum(pixels, 1)
    snr[1:] = np.abs(mean - background[1:]) * np.sqrt(pixels) / noise
    return snr


def reference_area(areas: np.ndarray) -> float | None:
    """The area of one bead in a frame: the median object area, taken again over the objects at least half of it
    (beads of one stock are monodisperse; specks far smaller than them do not pull it down)."""
    areas = np.asarray(areas, float)
    if not len(areas):
        return None
    reference = float(np.median(areas))
    return float(np.median(areas[areas >= 0.5 * reference]))


# Crofton perimeter weights of the 16 configurations of a 2x2 window (skimage's ``perimeter_crofton``, 4 directions)
_CROFTON = np.array([0, np.pi / 4 * (1 + 1 / np.sqrt(2)), np.pi / (4 * np.sqrt(2)), np.pi / (2 * np.sqrt(2)), 0,
                     np.pi / 4 * (1 + 1 / np.sqrt(2)), 0, np.pi / (4 * np.sqrt(2)), np.pi / 4, np.pi / 2,
                     np.pi / (4 * np.sqrt(2)), np.pi / (4 * np.sqrt(2)), np.pi / 4, np.pi / 2, 0, 0])


def crofton_perimeters(labels: np.ndarray) -> np.ndarray:
    """Per label (index = label number): skimage's ``perimeter_crofton`` of that label alone, for all labels in one
    vectorised pass over the 2x2 windows (each label counted once per window it touches)."""
    count = int(labels.max())
    padded = np.pad(labels, 1)
    a, b, c, d = padded[1:, 1:], padded[:-1, 1:], padded[1:, :-1], padded[:-1, :-1]  # weights 1, 2, 4, 8
    any_object = (a > 0) | (b > 0) | (c > 0) | (d > 0)
    a, b, c, d = a[any_object], b[any_object], c[any_object], d[any_object]
    ba, ca, da, cb, db, dc = b == a, c == a, d == a, c == b, d == b, d == c
    perimeter = np.zeros(count + 1)
    for owner, config, first in ((a, 1 + 2 * ba + 4 * ca + 8 * da, a > 0),
                                 (b, 2 + 4 * cb + 8 * db, (b > 0) & ~ba),
                                 (c, 4 + 8 * dc, (c > 0) & ~ca & ~cb),
                                 (d, np.full(len(d), 8), (d > 0) & ~da & ~db & ~dc)):
        perimeter += np.bincount(owner[first], _CROFTON[config[first]], count + 1)
    return perimeter


def edge_ids(labels: np.ndarray, top: bool, bottom: bool, left: bool, right: bool) -> np.ndarray:
    """The label numbers on the chosen sides of ``labels`` (0 included)."""
    sides = [labels[0] if top else (), labels[-1] if bottom else (), labels[:, 0] if left else (),
             labels[:, -1] if right else ()]
    return np.concatenate([np.ravel(side) for side in sides]).astype(np.int64)


def object_table(labels: np.ndarray, image: np.ndarray | None, probability: np.ndarray,
                 offset: tuple[int, int] = (0, 0), *, noise: float | None = None,
                 frame: tuple[int, int] | None = None, objects: np.ndarray | None = None) -> list[dict]:
    """One row per bead (id, centroid shifted by ``offset``, area, diameter, circularity, mean intensity and
    probability, and with ``noise`` its contrast over the local background in noise units): the columns of
    ``objects.csv``, the values skimage's ``regionprops`` gives, measured for all labels at once. ``at_edge``:
    whether the bead touches the frame's edge (that of ``labels``, or of a frame of shape ``frame`` of which
    ``labels`` is the piece at ``offset``); ``edge_reach``: for a bead on the frame's top and left edges (the
    exclusion edges of the unbiased counting frame, :data:`EDGE_RULES`) how many px it reaches into the frame from
    each (0: not on that edge). With ``objects`` (the connected objects,
    e.g. ``label(labels > 0)``), ``object_id`` names the one each bead lies in: beads of one clump share it."""
    count = int(labels.max())
    if count == 0:
        return []
    ys, xs = np.divmod(np.flatnonzero(labels), labels.shape[1])  # faster than a 2-D nonzero
    owner = labels[ys, xs]
    area = np.bincount(owner, minlength=count + 1)
    sums = {"y": np.bincount(owner, ys, count + 1), "x": np.bincount(owner, xs, count + 1),
            "probability": np.bincount(owner, np.asarray(probability[ys, xs], np.float32), count + 1)}
    if image is not None:
        sums["intensity"] = np.bincount(owner, np.asarray(image[ys, xs], np.float32), count + 1)
    present = np.flatnonzero(area[1:]) + 1
    pixels = area[present]
    sides = (True,) * 4 if frame is None else (offset[0] == 0, offset[0] + labels.shape[0] == frame[0],
                                                offset[1] == 0, offset[1] + labels.shape[1] == frame[1])
    at_edge = np.zeros(count + 1, bool)
    at_edge[edge_ids(labels, *sides)] = True
    reach = np.zeros((2, count + 1))  # how far a bead on the frame's top (left) edge reaches down (right) from it
    for axis, (side, coordinate) in enumerate(((sides[0], ys), (sides[2], xs))):
        on_side = np.zeros(count + 1, bool)
        on_side[
            edge_ids(labels, side, False, False, False) if axis == 0 else edge_ids(labels, False, False, side, False)
        ] = True
        on_side[0] = False
        if on_side.any():
            chosen = on_side[owner]
            np.maximum.at(reach[axis], owner[chosen], coordinate[chosen] + 1)
    columns = {
        "bead_id": present,
        "centroid_y": np.round(sums["y"][present] / pixels + offset[0], 2),
        "centroid_x": np.round(sums["x"][present] / pixels + offset[1], 2),
        "area": pixels,
        "equivalent_diameter": np.round(np.sqrt(4 * pixels / np.pi), 3),
        "circularity": np.round(circularity(pixels, crofton_perimeters(labels)[present]), 3),
        "mean_intensity": np.round(sums["intensity"][present] / pixels, 3) if image is not None else None,
        "mean_probability": np.round(sums["probability"][present] / pixels, 4),
        "contrast_snr": np.round(contrast_snr(labels, image, noise, sums=(area, sums["intensity"]))[present], 2)
        if image is not None and noise else None,
    }
    values = {key: np.asarray(column).tolist() if column is not None else [""] * len(present)
              for key, column in columns.items()}
    values["at_edge"] = at_edge[present].tolist()
    values["edge_reach"] = reach.T[present].tolist()
    if objects is not None:
        object_of = np.zeros(count + 1, np.int64)
        object_of[owner] = objects[ys, xs]
        values["object_id"] = object_of[present].tolist()
    return [dict(zip(values, row)) for row in zip(*values.values())]



def texture(image: np.ndarray, region: np.ndarray, noise: float, inset: int) -> float:
    """How much an object's inside varies, in noise units: the standard deviation of the image over ``region``
    shrunk by ``inset`` px, over the pixel noise. About 1 for a uniform particle; beads touching in a clump show
    their own profiles and the gaps between them (several times more)."""
    inside = ndi.binary_erosion(region, iterations=inset) if inset else region
    values = np.asarray(image, np.float32)[inside if inside.any() else region]
    return float(values.std()) / max(noise, 1e-6)

