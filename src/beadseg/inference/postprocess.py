"""From a probability map to a clean mask and separated bead instances, whole or chunk by chunk."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np
from scipy import ndimage as ndi
from skimage.measure import label

from beadseg.data.instances import SPLIT_DEPTH, centre_peaks, split_at_peaks, split_large, split_touching
from beadseg.data.io import release_pages

log = logging.getLogger(__name__)

DEFAULT_PEAK_THRESHOLD = 0.3  # an untuned target=centres model's


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
    """The maximum over the (2·``reach``+1)² square around each pixel (scipy's ``maximum_filter``), by array
    shifts: several times faster for the small squares used here (for a boolean mask: the mask grown by ``reach``)."""
    result = values.copy()
    for axis in (0, 1):
        source = result.copy()
        for step in range(1, reach + 1):
            early, late = [slice(None)] * 2, [slice(None)] * 2
            early[axis], late[axis] = slice(None, -step), slice(step, None)
            np.maximum(result[tuple(late)], source[tuple(early)], out=result[tuple(late)])
            np.maximum(result[tuple(early)], source[tuple(late)], out=result[tuple(early)])
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
                 offset: tuple[int, int] = (0, 0), noise: float | None = None,
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
        on_side[edge_ids(labels, side, False, False, False) if axis == 0 else edge_ids(labels, False, False, side, False)] = True
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
        "contrast_snr": np.round(contrast_snr(labels, image, noise, sums=(area, sums.get("intensity")))[present], 2)
        if image is not None and noise else None,
    }
    values = {key: column.tolist() if column is not None else [""] * len(present) for key, column in columns.items()}
    values["at_edge"] = at_edge[present].tolist()
    values["edge_reach"] = reach.T[present].tolist()
    if objects is not None:
        object_of = np.zeros(count + 1, np.int64)
        object_of[owner] = objects[ys, xs]
        values["object_id"] = object_of[present].tolist()
    return [dict(zip(values, row)) for row in zip(*values.values())]


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """``scipy.ndimage.binary_fill_holes`` (background not 4-connected to the border becomes object) by one
    labelling of the background instead of repeated dilations.

    Parameters
    ----------
    mask : ndarray of bool, shape (H, W)

    Returns
    -------
    ndarray of bool, shape (H, W)
        ``mask`` with its holes filled (``mask`` itself when it has none).

    Examples
    --------
    >>> ring = np.ones((5, 5), bool); ring[2, 2] = False
    >>> bool(fill_holes(ring).all())
    True
    >>> cup = ring.copy(); cup[0, 2] = cup[1, 2] = False  # the gap reaches the border: no hole
    >>> int(fill_holes(cup).sum())
    22
    """
    background, count = ndi.label(~mask)
    border = np.unique(np.concatenate([background[0], background[-1], background[:, 0], background[:, -1]]))
    if np.count_nonzero(border) == count:  # every background region reaches the border: no holes
        return mask
    hole = np.ones(count + 1, bool)
    hole[0] = False
    hole[border] = False
    return mask | hole[background]


def with_edge_remnants(labels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``labels`` plus, as beads of their own, the mask's components that hold no label and touch the border: the
    part of a bead cut by the frame whose centre (and so its heat-map peak) lies outside it. The edge rule then
    decides whether it counts, as for any bead the frame cuts."""
    remnants = label(mask & (labels == 0), connectivity=1)
    cut = np.unique(edge_ids(remnants, True, True, True, True))
    cut = cut[cut > 0]
    if not len(cut):
        return labels
    lookup = np.zeros(int(remnants.max()) + 1, labels.dtype)
    lookup[cut] = int(labels.max()) + 1 + np.arange(len(cut))
    return np.where(labels > 0, labels, lookup[remnants])


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


class Found(NamedTuple):
    """What was found in a frame's maps where they were computed (the predictor does it on the device): the
    probability above the threshold, before holes are filled, and the centre heat-map's peaks as (row, column)
    pairs in raster order (:func:`~beadseg.data.instances.centre_peaks`; ``None`` without a heat-map)."""

    mask: np.ndarray
    peaks: np.ndarray | None

    def crop(self, top: int, bottom: int, left: int, right: int) -> Found:
        if self.peaks is None:
            return Found(self.mask[top:bottom, left:right], None)
        rows, columns = self.peaks.T
        inside = (rows >= top) & (rows < bottom) & (columns >= left) & (columns < right)
        return Found(self.mask[top:bottom, left:right], self.peaks[inside] - (top, left))


EDGE_RULES = ("gundersen", "none")  # beads cut by the frame's edge: counted by the unbiased frame, or all


class Instances(NamedTuple):
    """A frame's beads: instance labels (0 = background), one row per bead (``objects.csv``), and the objects
    rejected, each with its ``reason`` (``small``: under ``debris_area_fraction`` of the frame's bead area, a speck;
    ``faint``: contrast under ``min_contrast_snr``, no object at all; ``particle``: a round, uniform object many
    beads large, no clump of beads), whose pixels are background in ``labels``."""

    labels: np.ndarray
    objects: list[dict]
    debris: list[dict]

    @property
    def counted(self) -> int:
        """The beads the edge rule counts (``counted`` in each row)."""
        return sum(bool(row["counted"]) for row in self.objects)


def texture(image: np.ndarray, region: np.ndarray, noise: float, inset: int) -> float:
    """How much an object's inside varies, in noise units: the standard deviation of the image over ``region``
    shrunk by ``inset`` px, over the pixel noise. About 1 for a uniform particle; beads touching in a clump show
    their own profiles and the gaps between them (several times more)."""
    inside = ndi.binary_erosion(region, iterations=inset) if inset else region
    values = np.asarray(image, np.float32)[inside if inside.any() else region]
    return float(values.std()) / max(noise, 1e-6)


@dataclass
class PostProcess:
    """Threshold, fill holes, separate touching beads, drop objects of the wrong size or shape, tell beads from
    debris and particles, and count by a stated rule at the frame's edge.

    The input is the bead probability map (H, W) or, from a ``target=centres`` model, the stack (2, H, W) of
    probability and centre heat-map: then every heat-map peak above ``peak_threshold`` inside the mask is one
    bead (``peak_distance`` px apart at least) and the watershed of the heat-map gives it its pixels.
    ``peak_threshold=None`` uses the model's own (:meth:`for_model`; 0.3 untuned).

    The frame's bead area is :func:`reference_area` of its objects, or ``bead_area`` px when set (a frame whose own
    is under half the one the model learned, ``learned_bead_area``, holds debris only: the model's then serves).
    Beads of one stock are monodisperse, so:

    - *clumps*: an object of at least ``split_area_ratio`` bead areas that the peaks (or the watershed) left whole
      holds ``round(area / bead area)`` touching beads, split by k-means (``None``: off), up to ``max_clump_beads``
      bead areas (larger regions stay whole: no clump of beads an area rule can split);
    - *particles*: a connected object of at least ``particle_area_ratio`` bead areas, round (circularity at least
      ``particle_min_circularity``) and uniform inside (:func:`texture` at most ``particle_max_texture``) is no
      clump of beads but another particle: rejected with reason ``particle`` (``None``: off);
    - *debris*: an object under ``debris_area_fraction`` of the bead area is a speck (``small``), unless the frame's
      edge cuts it; an object whose contrast over its local background (:func:`contrast_snr`, which needs the
      image) is under ``min_contrast_snr`` noise units is no object at all (``faint``; a blob of noise scores
      about 1), except that an object of the bead size (not small, not cut by the edge) needs only
      ``min_bead_contrast_snr``: a faint, out-of-focus bead stays a bead. Each rule is off at ``None``.

    Every bead row says which connected object it lies in (``object_id``) and how many beads that object holds
    (``object_beads``). Edge rule (``edge_rule``): ``gundersen``, the unbiased counting frame (a bead the frame's
    top or left edge cuts is not counted, one the bottom or right edge cuts is), so that the tiles of a capture
    add up to the capture's count; a bead on the top or left edge with a whole bead's diameter in view is not cut
    (its edge falls on the frame's first row or column: no neighbouring tile holds any of it); ``none``: every
    bead counts. ``at_edge`` and ``counted`` say so.

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
    split_area_ratio: float | None = 1.6
    max_clump_beads: float = 30.0
    particle_area_ratio: float | None = 4.0
    particle_min_circularity: float = 0.85
    particle_max_texture: float = 3.0
    debris_area_fraction: float | None = 0.3
    min_contrast_snr: float | None = 5.0
    min_bead_contrast_snr: float | None = 4.0
    bead_area: float | None = None
    learned_bead_area: float | None = None  # set by for_model: the bead area the model saw in validation
    edge_rule: str = "gundersen"
    chunk: int = 2048
    halo: int = 64

    @classmethod
    def configured(cls, **changes) -> PostProcess:
        """The post-processing ``conf/postprocess/default.yaml`` describes (the defaults every command composes),
        with ``changes``: for callers outside a Hydra app (the napari widget), so that defaults live in one place."""
        from omegaconf import OmegaConf

        from beadseg.config import CONFIG_DIR

        settings = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "postprocess" / "default.yaml"))
        settings.pop("_target_")
        return cls(**{**settings, **changes})

    def __post_init__(self) -> None:
        if self.edge_rule not in EDGE_RULES:
            raise ValueError(f"postprocess.edge_rule={self.edge_rule}: choose one of {', '.join(EDGE_RULES)}")

    def threshold_for(self, default: float) -> float:
        """The probability threshold in force: this one's, or else ``default`` (the model's stored one)."""
        return default if self.threshold is None else self.threshold

    def for_model(self, predictor) -> PostProcess:
        """This post-processing with the predictor's stored peak threshold where none is set here, and the bead
        area the model learned."""
        peak = predictor.peak_threshold if self.peak_threshold is None else self.peak_threshold
        return replace(self, peak_threshold=peak, learned_bead_area=predictor.bead_area)

    @property
    def min_peak(self) -> float:
        """The centre heat-map's peak threshold in force."""
        return DEFAULT_PEAK_THRESHOLD if self.peak_threshold is None else self.peak_threshold

    def frame_bead_area(self, areas: np.ndarray) -> float | None:
        """One bead's area: ``bead_area``, else :func:`reference_area` of ``areas`` (the model's learned one where
        that is under half of it: a frame of debris only)."""
        if self.bead_area:
            return float(self.bead_area)
        reference, learned = reference_area(areas), self.learned_bead_area
        if learned and (reference is None or reference < 0.5 * learned):
            return learned
        return reference

    def candidates(self, maps: np.ndarray, default_threshold: float = 0.5, found: Found | None = None) -> np.ndarray:
        """Instance labels before the size and shape filters: threshold, hole filling, touching beads split (at
        the centre heat-map's peaks when there is one). ``found``: the threshold and the peaks computed already."""
        probability, centres = bead_maps(maps)
        above = found.mask if found is not None else np.asarray(probability) > self.threshold_for(default_threshold)
        mask = fill_holes(above) if self.fill_holes else above
        if centres is not None:
            peaks = found.peaks if found is not None else centre_peaks(np.asarray(centres), above, self.min_peak,
                                                                         self.peak_distance)
            return with_edge_remnants(split_at_peaks(mask, np.asarray(centres), peaks=peaks), mask)
        return split_touching(mask, self.split_depth) if self.watershed else label(mask, connectivity=1).astype(np.int32)

    def split_clumps(self, labels: np.ndarray) -> tuple[np.ndarray, float | None]:
        """Objects of at least ``split_area_ratio`` bead areas split into their beads by area
        (:func:`~beadseg.data.instances.split_large`), and the bead area used (from the objects clear of the edge)."""
        areas = np.bincount(labels.ravel())[1:]
        inner = np.bincount(labels[1:-1, 1:-1].ravel(), minlength=len(areas) + 1)[1:] == areas
        reference = self.frame_bead_area(areas[(areas > 0) & inner] if inner.any() else areas[areas > 0])
        if self.split_area_ratio is None or not reference or not len(areas):
            return labels, reference
        if areas.max() < self.split_area_ratio * reference:
            return labels, reference
        return split_large(labels, reference, self.split_area_ratio, max_ratio=self.max_clump_beads), reference

    def particles(self, objects: np.ndarray, image: np.ndarray | None, noise: float | None,
                  reference: float | None) -> set[int]:
        """The connected objects (numbers in ``objects``) that are particles, not clumps of beads: many beads large,
        round and uniform inside."""
        if self.particle_area_ratio is None or image is None or not noise or not reference:
            return set()
        areas = np.bincount(objects.ravel())
        large = np.flatnonzero(areas >= self.particle_area_ratio * reference)
        large = large[large > 0]
        found = set()
        inset = max(1, int(round(np.sqrt(reference / np.pi) / 2)))  # a quarter of a bead's diameter
        boxes = ndi.find_objects(objects)
        for number in large:
            box = boxes[number - 1]
            height, width = box[0].stop - box[0].start, box[1].stop - box[1].start
            if not 0.75 <= height / width <= 4 / 3 or areas[number] < 0.6 * height * width:
                continue  # not round (a disk fills π/4 of its square box): a chain or clump of beads
            region = objects[box] == number
            if texture(image[box], region, noise, inset) > self.particle_max_texture:
                continue  # beads show their own profiles inside: a clump
            if circularity(areas[number], crofton_perimeters(region.astype(np.int32))[1]) >= self.particle_min_circularity:
                found.add(int(number))
        return found

    def keeps(self, area: np.ndarray, roundness: np.ndarray, at_edge: np.ndarray | None = None) -> np.ndarray:
        """Which objects pass the size (``min_area``, ``max_area``) and shape (``min_circularity``) filters; one cut
        by the frame's edge (``at_edge``) is judged by ``max_area`` alone (the edge rule decides whether it counts)."""
        cut = np.zeros(len(area), bool) if at_edge is None else np.asarray(at_edge, bool)
        keep = (np.asarray(area) >= self.min_area) & (np.asarray(roundness) >= self.min_circularity) | cut
        if self.max_area is not None:
            keep &= np.asarray(area) <= self.max_area
        return keep

    def debris_reasons(self, rows: list[dict]) -> list[str]:
        """Why each object is rejected (``particle``, ``faint``, ``small``), or "" for a bead."""
        area = np.array([row["area"] for row in rows], float)
        contrast = np.array([row["contrast_snr"] if row["contrast_snr"] != "" else np.inf for row in rows])
        at_edge = np.array([row["at_edge"] for row in rows], bool)
        particle = np.array([row.get("particle", False) for row in rows], bool)
        lowest = min((bar for bar in (self.min_contrast_snr, self.min_bead_contrast_snr) if bar is not None),
                     default=None)
        visible = contrast >= lowest if lowest is not None else np.ones(len(rows), bool)
        small = np.zeros(len(rows), bool)
        if self.debris_area_fraction is not None:
            reference = self.frame_bead_area(area[visible & ~at_edge & ~particle])
            if reference:
                small = ~at_edge & (area < self.debris_area_fraction * reference)
        bead_sized = ~small & ~at_edge  # a cut object's size says nothing: it needs the higher bar
        faint = np.zeros(len(rows), bool)
        for bar, applies in ((self.min_contrast_snr, ~bead_sized), (self.min_bead_contrast_snr, bead_sized)):
            if bar is not None:
                faint |= applies & (contrast < bar)
        return ["particle" if p else "faint" if f else "small" if s else "" for p, f, s in zip(particle, faint, small)]

    def __call__(self, maps: np.ndarray, image: np.ndarray | None = None, default_threshold: float = 0.5, *,
                 noise: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Clean binary mask and instance labels (int32, 0 = background) of a whole (small) map: the beads of
        :meth:`instances` (without ``image``, no contrast rule)."""
        labels = self.instances(maps, image, default_threshold, noise=noise).labels
        return labels > 0, labels

    def instances(self, maps: np.ndarray, image: np.ndarray | None = None, default_threshold: float = 0.5, *,
                  labels_out: np.ndarray | None = None, noise: float | None = None,
                  found: Found | None = None) -> Instances:
        """Beads and debris of a frame of any size (labels into ``labels_out``, e.g. a memory map, when given),
        computed chunk by chunk (one measurement per object serves the filters and the table; the debris rules
        judge the whole frame): memory does not grow with the frame. ``noise``: the image's
        (:func:`image_noise`), when a caller post-processes one image at several settings; ``found``: the threshold
        and peaks computed on the device."""
        probability = bead_maps(maps)[0]
        height, width = probability.shape
        labels = labels_out if labels_out is not None else np.zeros((height, width), np.int32)
        if noise is None and image is not None:
            noise = image_noise(image)
        rows: list[dict] = []
        truncated = objects_before = 0
        for top in _starts(height, self.chunk):
            for left in _starts(width, self.chunk):
                core = (top, min(top + self.chunk, height), left, min(left + self.chunk, width))
                y0, y1 = max(core[0] - self.halo, 0), min(core[1] + self.halo, height)
                x0, x1 = max(core[2] - self.halo, 0), min(core[3] + self.halo, width)
                local, reference = self.split_clumps(self.candidates(maps[..., y0:y1, x0:x1], default_threshold,
                                                                     found and found.crop(y0, y1, x0, x1)))
                piece = None if image is None else image[y0:y1, x0:x1]
                objects = label(local > 0, connectivity=1)
                particles = self.particles(objects, piece, noise, reference)
                table = object_table(local, piece, probability[y0:y1, x0:x1], (y0, x0), noise, (height, width), objects)
                if not table:
                    continue
                ids = np.array([row["bead_id"] for row in table])
                cy, cx = np.array([[row["centroid_y"], row["centroid_x"]] for row in table]).T
                owned = (cy >= core[0]) & (cy < core[1]) & (cx >= core[2]) & (cx < core[3])
                owned &= self.keeps([row["area"] for row in table], [row["circularity"] for row in table],
                                    [row["at_edge"] for row in table])
                truncated += int(np.isin(ids[owned], edge_ids(local, y0 > 0, y1 < height, x0 > 0, x1 < width)).sum())
                lookup = np.zeros(local.max() + 1, labels.dtype)
                lookup[ids[owned]] = np.arange(1, owned.sum() + 1) + len(rows)
                for row, new_id in zip((r for r, o in zip(table, owned) if o), lookup[ids[owned]]):
                    rows.append({**row, "bead_id": int(new_id), "particle": row["object_id"] in particles,
                                 "object_id": row["object_id"] + objects_before})
                objects_before += int(objects.max())
                window = labels[y0:y1, x0:x1]
                # a bead reaching into a neighbour's halo stays the neighbour's
                np.copyto(window, lookup[local], where=window == 0)
            release_pages(image, maps, labels)
        if truncated:
            log.warning("%d beads reach past the %d px halo of their chunk (larger than the halo?): "
                        "raise postprocess.halo", truncated, self.halo)
        return self._sort_debris(labels, rows)

    def _sort_debris(self, labels: np.ndarray, rows: list[dict], band: int = 2048) -> Instances:
        """Debris and particles out of the labels and the bead table (beads renumbered 1..N in order), into their
        own list (a particle as one row, however many pieces it was cut into); each bead's object and its beads,
        and whether the edge rule counts it."""
        reasons = self.debris_reasons(rows) if rows else []
        beads, debris = [], []
        renumber = np.zeros(len(rows) + 1, labels.dtype)
        particles: dict[int, list[dict]] = {}
        diameter = self.frame_bead_area(np.array([row["area"] for row, reason in zip(rows, reasons)
                                                  if not reason and not row["at_edge"]], float))
        whole = np.sqrt(4 * diameter / np.pi) - 0.5 if diameter else np.inf
        for row, reason in zip(rows, reasons):
            row.pop("particle")
            reach = row.pop("edge_reach")
            if reason == "particle":
                particles.setdefault(row["object_id"], []).append(row)
            elif reason:
                row["reason"] = reason
                debris.append(row)
            else:  # the rows are updated in place: a copy per bead doubles a huge frame's table in memory
                cut = any(0 < depth < whole for depth in reach)  # on the top or left edge, and less than a bead in view
                renumber[row["bead_id"]] = len(beads) + 1
                row["bead_id"], row["counted"] = len(beads) + 1, self.edge_rule == "none" or not cut
                beads.append(row)
        debris += [merged_particle(pieces) for pieces in particles.values()]
        per_object = Counter(row["object_id"] for row in beads)
        for row in beads:
            row["object_beads"] = per_object[row["object_id"]]
        if len(beads) < len(rows):
            for top in range(0, labels.shape[0], band):
                labels[top : top + band] = renumber[labels[top : top + band]]
                release_pages(labels)
        return Instances(labels, beads, debris)


def merged_particle(pieces: list[dict]) -> dict:
    """One debris row (reason ``particle``) for the pieces a particle was cut into: their summed area, the
    area-weighted centroid, mean probability and contrast, the circularity of the largest piece."""
    area = np.array([row["area"] for row in pieces], float)
    weights = area / area.sum()
    mean = {key: round(float(sum(w * row[key] for w, row in zip(weights, pieces))), 3)
            for key in ("centroid_y", "centroid_x", "mean_probability")}
    contrast = [row["contrast_snr"] for row in pieces]
    return {**max(pieces, key=lambda row: row["area"]), **mean, "area": int(area.sum()),
            "equivalent_diameter": round(float(np.sqrt(4 * area.sum() / np.pi)), 3),
            "contrast_snr": round(float(np.dot(weights, contrast)), 2) if "" not in contrast else "",
            "reason": "particle"}
