"""From a probability map to a frame's beads: threshold, split, the bead rules (size, shape, debris, clumps,
particles, the edge rule), whole or chunk by chunk."""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage as ndi
from skimage.measure import label

from beadseg.beads.instances import (
    DEFAULT_PEAK_THRESHOLD,
    SPLIT_DEPTH,
    centre_peaks,
    fill_holes,
    split_at_peaks,
    split_large,
    split_touching,
    with_edge_remnants,
)
from beadseg.beads.measure import (
    circularity,
    crofton_perimeters,
    edge_ids,
    image_noise,
    object_table,
    reference_area,
    texture,
)
from beadseg.system import release_pages

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.5  # an untuned model's probability threshold


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


class MaskAndPeaks(NamedTuple):
    """What was found in a frame's maps where they were computed (the predictor does it on the device): the
    probability above the threshold, before holes are filled, and the centre heat-map's peaks as (row, column)
    pairs in raster order (:func:`~beadseg.beads.instances.centre_peaks`; ``None`` without a heat-map)."""

    mask: np.ndarray
    peaks: np.ndarray | None

    def crop(self, top: int, bottom: int, left: int, right: int) -> MaskAndPeaks:
        if self.peaks is None:
            return MaskAndPeaks(self.mask[top:bottom, left:right], None)
        rows, columns = self.peaks.T
        inside = (rows >= top) & (rows < bottom) & (columns >= left) & (columns < right)
        return MaskAndPeaks(self.mask[top:bottom, left:right], self.peaks[inside] - (top, left))


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

    ``threshold=None`` uses the model's own (tuned on validation and stored with the checkpoint; bound by
    :meth:`for_model`, 0.5 untuned). Frames larger
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

    def __post_init__(self) -> None:
        if self.edge_rule not in EDGE_RULES:
            raise ValueError(f"postprocess.edge_rule={self.edge_rule}: choose one of {', '.join(EDGE_RULES)}")

    @property
    def min_probability(self) -> float:
        """The probability threshold in force (0.5 where neither this nor a model's (:meth:`for_model`) is set)."""
        return DEFAULT_THRESHOLD if self.threshold is None else self.threshold

    def for_model(self, predictor) -> PostProcess:
        """This post-processing bound to a model once: its stored (tuned) threshold and peak threshold where none is
        set here, and the bead area it learned."""
        threshold = predictor.threshold if self.threshold is None else self.threshold
        peak = predictor.peak_threshold if self.peak_threshold is None else self.peak_threshold
        return replace(self, threshold=threshold, peak_threshold=peak, learned_bead_area=predictor.bead_area)

    def at_scale(self, scale: float) -> PostProcess:
        """This post-processing for maps on a grid ``scale`` times finer than the model's (frame px per model px:
        a frame resized by ``1 / scale`` for the network, its maps brought back): the lengths and areas it counts
        in px (peak distance, split depth, area bounds, halo, the learned bead area) scaled to the frame's pixels;
        a ``bead_area`` the user gave is the frame's already.

        Examples
        --------
        >>> post = PostProcess(min_area=4, peak_distance=2, learned_bead_area=40.0).at_scale(2.0)
        >>> post.min_area, post.peak_distance, post.learned_bead_area
        (16, 4, 160.0)
        """
        if scale == 1:
            return self
        area = scale * scale
        return replace(
            self, peak_distance=max(1, int(round(self.peak_distance * scale))), split_depth=self.split_depth * scale,
            min_area=int(round(self.min_area * area)) if self.min_area else 0,
            max_area=None if self.max_area is None else max(1, int(round(self.max_area * area))),
            halo=max(self.halo, int(math.ceil(self.halo * scale))),
            learned_bead_area=None if self.learned_bead_area is None else self.learned_bead_area * area)

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

    def candidates(self, maps: np.ndarray, found: MaskAndPeaks | None = None) -> np.ndarray:
        """Instance labels before the size and shape filters: threshold, hole filling, touching beads split (at
        the centre heat-map's peaks when there is one). ``found``: the threshold and the peaks computed already."""
        probability, centres = bead_maps(maps)
        above = found.mask if found is not None else np.asarray(probability) > self.min_probability
        mask = fill_holes(above) if self.fill_holes else above
        if centres is not None:
            peaks = found.peaks if found is not None else centre_peaks(np.asarray(centres), above, self.min_peak,
                                                                         self.peak_distance)
            return with_edge_remnants(split_at_peaks(mask, np.asarray(centres), peaks=peaks), mask)
        return (
            split_touching(mask, self.split_depth) if self.watershed else label(mask, connectivity=1).astype(np.int32)
        )

    def split_clumps(self, labels: np.ndarray) -> tuple[np.ndarray, float | None]:
        """Objects of at least ``split_area_ratio`` bead areas split into their beads by area
        (:func:`~beadseg.beads.instances.split_large`), and the bead area used (from the objects clear of the edge)."""
        counts = np.bincount(labels.ravel())
        areas = counts[1:]
        inner = np.ones(len(areas) + 1, bool)
        inner[edge_ids(labels, True, True, True, True)] = False  # no pixel on the border
        inner = inner[1:]
        reference = self.frame_bead_area(areas[(areas > 0) & inner] if inner.any() else areas[areas > 0])
        if self.split_area_ratio is None or not reference or not len(areas):
            return labels, reference
        if areas.max() < self.split_area_ratio * reference:
            return labels, reference
        return split_large(labels, reference, self.split_area_ratio, max_ratio=self.max_clump_beads,
                           areas=counts), reference

    def particles(self, objects: np.ndarray, table: list[dict], image: np.ndarray | None, noise: float | None,
                  reference: float | None) -> set[int]:
        """The connected objects (numbers in ``objects``; ``table``: their beads' rows, :func:`object_table`) that
        are particles, not clumps of beads: many beads large, round and uniform inside."""
        if self.particle_area_ratio is None or image is None or not noise or not reference:
            return set()
        areas = np.bincount([row["object_id"] for row in table], [row["area"] for row in table],
                            int(objects.max()) + 1)  # its beads' areas summed: every object px is a bead's
        large = np.flatnonzero(areas >= self.particle_area_ratio * reference)
        large = large[large > 0]
        if not len(large):
            return set()
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
            if (
                circularity(areas[number], crofton_perimeters(region.astype(np.int32))[1])
                >= self.particle_min_circularity
            ):
                found.add(int(number))
        return found

    def keeps(self, area: ArrayLike, roundness: ArrayLike, at_edge: ArrayLike | None = None) -> np.ndarray:
        """Which objects pass the size (``min_area``, ``max_area``) and shape (``min_circularity``) filters; one cut
        by the frame's edge (``at_edge``) is judged by ``max_area`` alone (the edge rule decides whether it counts)."""
        area = np.asarray(area)
        cut = np.zeros(len(area), bool) if at_edge is None else np.asarray(at_edge, bool)
        keep = (area >= self.min_area) & (np.asarray(roundness) >= self.min_circularity) | cut
        if self.max_area is not None:
            keep &= area <= self.max_area
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

    def __call__(self, maps: np.ndarray, image: np.ndarray | None = None, *,
                 noise: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Clean binary mask and instance labels (int32, 0 = background) of a whole (small) map: the beads of
        :meth:`instances` (without ``image``, no contrast rule)."""
        labels = self.instances(maps, image, noise=noise).labels
        return labels > 0, labels

    def instances(self, maps: np.ndarray, image: np.ndarray | None = None, *,
                  labels_out: np.ndarray | None = None, noise: float | None = None,
                  found: MaskAndPeaks | None = None) -> Instances:
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
                local, reference = self.split_clumps(self.candidates(maps[..., y0:y1, x0:x1],
                                                                     found and found.crop(y0, y1, x0, x1)))
                piece = None if image is None else image[y0:y1, x0:x1]
                objects = label(local > 0, connectivity=1)
                table = object_table(
                    local,
                    piece,
                    probability[y0:y1, x0:x1],
                    (y0, x0),
                    noise=noise,
                    frame=(height, width),
                    objects=objects,
                )
                if not table:
                    continue
                particles = self.particles(objects, table, piece, noise, reference)
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
                if labels_out is None and (top, left) == (0, 0):  # the first chunk, into zeros
                    np.take(lookup, local, out=window)
                else:  # a bead reaching into a neighbour's halo stays the neighbour's
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
        beads: list[dict] = []
        debris: list[dict] = []
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
