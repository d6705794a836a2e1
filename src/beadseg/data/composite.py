"""Composite bead frames with exact truth, built from a user's own beads: "copy-paste" augmentation (Ghiasi et
al., CVPR 2021) for the one object class a bead lab has.

Isolated beads are cut out of real frames as their appearance relative to the local background (a ratio: dark
bright-field beads below 1, bright fluorescence beads above 1); the frames are emptied of every bead, labelled
or not (an unlabelled bead must not become background), and keep their texture and specks (what the frame shows
as background stays background); beads are then multiplied back onto an emptied frame at
any density, scattered or touching in doublets, triplets, chains and small clumps at contact distance (one bead
diameter as the masks draw it), each with its own instance label.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from skimage.measure import label

from beadseg.beads.instances import single_bead_area
from beadseg.beads.measure import edge_ids
from beadseg.data.points import annotated_folder
from beadseg.data.sources import RenderedSource
from beadseg.data.split import bounded_search, group_names

OBJECT_SIGMAS = 4.0  # a pixel of the (1 px smoothed) residual this many noise sigmas off the background is in a blob
OBJECT_SNR = 25.0  # ... which may be a bead where it holds this many noise sigmas over its area (the lab's beads:
# 44-335 in sparse tiles, 8-84 in dense ones; blobs of the lab's JPEG texture: median 5-11, at most 12-54)
MIN_BEAD_SNR = 10.0  # a cut bead stands out of its background by this many noise sigmas over its area, at least
GROUP_SIZES = (2, 3, 4, 5, 6)  # beads in a touching group ...
GROUP_ODDS = (0.45, 0.25, 0.15, 0.1, 0.05)  # ... and how often each size is drawn


def wide_blur(values: np.ndarray, sigma: float, factor: int = 4) -> np.ndarray:
    """A Gaussian blur of width ``sigma`` px computed on a grid ``factor`` times coarser (block means), brought
    back by linear interpolation: for widths of several pixels the same to a few per cent, ``factor``² cheaper."""
    if sigma < 2 * factor:
        return ndi.gaussian_filter(values, sigma, mode="reflect")
    height, width = values.shape
    padded = np.pad(values, ((0, -height % factor), (0, -width % factor)), mode="reflect")
    coarse = padded.reshape(padded.shape[0] // factor, factor, padded.shape[1] // factor, factor).mean((1, 3))
    coarse = ndi.gaussian_filter(coarse, sigma / factor, mode="reflect")
    return ndi.zoom(coarse, factor, order=1, mode="nearest", grid_mode=True)[:height, :width]


def smooth_background(image: np.ndarray, objects: np.ndarray, sigma: float) -> np.ndarray:
    """The frame's background under and around its objects: a Gaussian average of the pixels outside
    ``objects`` (normalised convolution), widened fourfold where objects leave too few pixels to average.

    Parameters
    ----------
    image : ndarray (H, W)
        The frame, any dtype.
    objects : ndarray of bool (H, W)
        Pixels to leave out of the average.
    sigma : float
        Width (px) of the Gaussian; a few bead diameters follows uneven illumination but not the beads.

    Returns
    -------
    ndarray of float32 (H, W)

    Examples
    --------
    >>> image = np.full((32, 32), 100.0); image[10:14, 10:14] = 20.0
    >>> objects = image < 50
    >>> float(smooth_background(image, objects, 4.0)[12, 12])
    100.0
    """
    image = np.asarray(image, np.float32)
    valid = (~objects).astype(np.float32)
    fallback = float(np.median(image[~objects])) if valid.any() else float(image.mean())
    averages = []
    for width in (sigma, 4 * sigma):
        weight = wide_blur(valid, width)
        averages.append((wide_blur(image * valid, width) / np.maximum(weight, 1e-6), weight))
    (near, near_weight), (wide, wide_weight) = averages
    return np.where(near_weight > 0.05, near, np.where(wide_weight > 1e-3, wide, fallback)).astype(np.float32)


def robust_sigma(values: np.ndarray) -> float:
    """The standard deviation of normally distributed ``values`` from their median absolute deviation (beads and
    outliers barely move it); at least 1e-6."""
    if not values.size:
        return 1e-6
    return max(1.4826 * float(np.median(np.abs(values - np.median(values)))), 1e-6)


def object_pixels(image: np.ndarray, mask: np.ndarray, diameter: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every bead of a frame, labelled or not, grown by half a bead: the mask's pixels, and each blob of pixels
    whose 1 px smoothed residual from the background stands over ``OBJECT_SIGMAS`` noise sigmas off it (dark or
    bright) that holds ``OBJECT_SNR`` noise sigmas over its area (a bead left unlabelled), or that the frame's edge
    cuts (a sliver of a bead whose centre lies in the neighbouring tile shows too few pixels to hold a bead's
    contrast; a band of the frame's edge one bead wide loses a little texture, 0.14 % of the lab's dense tiles).
    Fainter blobs inside the frame, its texture and its specks, stay: what the frame shows around its beads stays
    background (a frame emptied of them would teach that a real frame's texture is beads). Returns the objects,
    the background (:func:`smooth_background` outside them) and the quiet pixels, clear of every blob by half a
    bead (whose noise may fill the objects' places)."""
    image = np.asarray(image, np.float32)
    sigma, halo = 2.0 * diameter, max(int(round(diameter / 2)), 1)
    objects = ndi.binary_dilation(mask > 0, iterations=halo)
    difference = image - smooth_background(image, objects, sigma)
    residual = ndi.gaussian_filter(difference, 1.0)
    free = residual[~objects]
    centre, spread = (float(np.median(free)), robust_sigma(free)) if free.size else (0.0, 1e-6)
    blobs, count = ndi.label((np.abs(residual - centre) > OBJECT_SIGMAS * spread) & ~objects)
    quiet = ~(objects | ndi.binary_dilation(blobs > 0, iterations=halo))
    if count:
        index = np.arange(1, count + 1)
        area = ndi.sum_labels(np.ones_like(difference), blobs, index)
        snr = np.abs(ndi.sum_labels(difference, blobs, index)) / (robust_sigma(difference[~objects]) * np.sqrt(area))
        cut = np.isin(index, edge_ids(blobs, True, True, True, True))
        standing_out = np.isin(blobs, index[(snr >= OBJECT_SNR) | cut])
        objects |= ndi.binary_dilation(standing_out, iterations=halo)
    return objects, smooth_background(image, objects, sigma), quiet


def emptied(image: np.ndarray, objects: np.ndarray, background: np.ndarray, quiet: np.ndarray,
            rng: np.random.Generator) -> np.ndarray:
    """The frame with its objects replaced by background: the smooth background plus the frame's own noise,
    copied (with its grain) from ``quiet`` places of the frame at random offsets. float32."""
    image = np.asarray(image, np.float32)
    residual = image - background
    filled = np.where(objects, background, image)
    todo = objects.copy()
    for _ in range(12):
        if not todo.any():
            break
        shift = tuple(int(v) for v in rng.integers(-image.shape[0] // 2, image.shape[0] // 2, 2))
        donor_free = np.roll(quiet, shift, axis=(0, 1))
        take = todo & donor_free
        filled[take] += np.roll(residual, shift, axis=(0, 1))[take]
        todo &= ~take
    return filled


@dataclass(frozen=True)
class CutBead:
    """One isolated bead cut out of a frame: its appearance as a ratio to the local background (1 away from it),
    its mask, and the mask's centroid in the patch."""

    ratio: np.ndarray
    mask: np.ndarray
    centre: tuple[float, float]


@dataclass
class BeadLibrary:
    """Beads cut out of real frames, grouped by capture (beads of one stock share a size), the emptied frames, the
    dtype to store composites in, and each capture's bead diameter (as its masks draw it)."""

    beads: dict[str, list[CutBead]] = field(default_factory=dict)
    backgrounds: list[np.ndarray] = field(default_factory=list)
    diameters: dict[str, float] = field(default_factory=dict)
    dtype: np.dtype = np.dtype(np.uint8)

    def add_frame(self, image: np.ndarray, mask: np.ndarray, group: str, rng: np.random.Generator) -> None:
        """Cut the isolated beads of one frame (components of the mask of one bead's area, nothing else within
        half a bead of them, not cut by the frame's edge, standing out of the background: a mean contrast of at
        least ``MIN_BEAD_SNR`` noise sigmas over their area) and keep the frame emptied of every bead
        (:func:`object_pixels`)."""
        mask = np.asarray(mask) > 0
        area = single_bead_area(mask)
        if area <= 0:
            return
        diameter = float(np.sqrt(4 * area / np.pi))
        objects, smooth, quiet = object_pixels(image, mask, diameter)
        self.backgrounds.append(emptied(image, objects, smooth, quiet, rng))
        self.dtype = np.dtype(image.dtype)
        difference = np.asarray(image, np.float32) - smooth
        pixel_noise = robust_sigma(difference[~objects])
        ratio = np.asarray(image, np.float32) / np.maximum(smooth, 1e-6)
        components = label(mask, connectivity=2)
        sizes = np.bincount(components.ravel())
        pad = int(np.ceil(diameter / 2)) + 2
        own_halo = max(int(round(diameter / 2)), 1)
        kept = self.beads.setdefault(group, [])
        for number, box in enumerate(ndi.find_objects(components), start=1):
            if box is None or not 0.6 * area <= sizes[number] <= 1.4 * area:
                continue
            top, left = box[0].start - pad, box[1].start - pad
            bottom, right = box[0].stop + pad, box[1].stop + pad
            if top < 0 or left < 0 or bottom > mask.shape[0] or right > mask.shape[1]:
                continue
            window = (slice(top, bottom), slice(left, right))
            mine = components[window] == number
            around = label(objects[window], connectivity=2)
            others = (around > 0) & ~np.isin(around, around[mine])
            if others.any() or (components[window] > 0)[~mine].any():
                continue  # another object (labelled or not) within half a bead: not isolated
            if abs(float(difference[window][mine].mean())) * np.sqrt(mine.sum()) < MIN_BEAD_SNR * pixel_noise:
                continue  # a label over (almost) nothing: no template of a bead
            grown = ndi.binary_dilation(mine, iterations=max(own_halo - 1, 1))
            feather = ndi.gaussian_filter(grown.astype(np.float32), 1.0)
            bead_ratio = 1.0 + feather * (ratio[window] - 1.0)
            ys, xs = np.nonzero(mine)
            kept.append(CutBead(bead_ratio.astype(np.float32), mine, (float(ys.mean()), float(xs.mean()))))
        sizes_kept = [int(b.mask.sum()) for b in kept]
        if sizes_kept:
            self.diameters[group] = float(np.sqrt(4 * np.median(sizes_kept) / np.pi))
        else:
            self.beads.pop(group)

    @property
    def groups(self) -> list[str]:
        return sorted(self.beads)


def place_beads(rng: np.random.Generator, shape: tuple[int, int], n_beads: int, diameter: float,
                touching_fraction: float) -> list[np.ndarray]:
    """Bead centres in groups: ``touching_fraction`` of the beads in doublets, triplets, chains and small clumps
    whose members touch at contact distance (``diameter`` ± 3 %), the others scattered; beads of different
    groups stay at least 1.25 diameters apart. Returns one (k, 2) array of centres per group (fewer beads than
    asked where the frame fills up)."""
    placed = np.zeros((0, 2))
    groups: list[np.ndarray] = []
    remaining = n_beads
    # a draw starts a touching group with these odds, so that touching_fraction of the beads end up in one
    group_odds = touching_fraction / (touching_fraction + (1 - touching_fraction) * np.dot(GROUP_SIZES, GROUP_ODDS))
    height, width = shape
    failures = 0
    while remaining > 0 and failures < 200:
        size = 1
        if rng.random() < group_odds:
            size = int(rng.choice(GROUP_SIZES, p=GROUP_ODDS))
        size = min(size, remaining)
        chain = rng.random() < 0.5  # a chain keeps its direction; a clump grows around its members
        members = [rng.uniform((0, 0), (height, width))]
        heading = rng.uniform(0, 2 * np.pi)
        for _ in range(size - 1):
            for _attempt in range(20):
                if chain:
                    angle, parent = heading + rng.normal(0, 0.6), members[-1]
                else:
                    angle, parent = rng.uniform(0, 2 * np.pi), members[rng.integers(len(members))]
                step = diameter * rng.uniform(0.97, 1.03)
                candidate = parent + step * np.array([np.sin(angle), np.cos(angle)])
                if np.hypot(*(np.asarray(members) - candidate).T).min() >= 0.95 * diameter:
                    members.append(candidate)
                    heading = angle
                    break
        group = np.asarray(members)
        if len(placed):
            gaps = np.hypot(placed[:, None, 0] - group[None, :, 0], placed[:, None, 1] - group[None, :, 1])
            if gaps.min() < 1.25 * diameter:
                failures += 1
                continue
        failures = 0
        placed = np.concatenate([placed, group])
        groups.append(group)
        remaining -= len(group)
    return groups


def composite(background: np.ndarray, beads: list[CutBead], centres: np.ndarray, rng: np.random.Generator,
              dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """The background with each bead multiplied onto it so that its mask's centroid lands on its centre (whole
    pixels; each bead drawn in a random one of its 8 flips and quarter turns), and the exact instance labels
    (a pixel two masks claim belongs to the bead whose centre is nearer)."""
    image = np.array(background, np.float32)
    labels = np.zeros(image.shape, np.int32)
    distance = np.full(image.shape, np.inf, np.float32)
    height, width = image.shape
    number = 0
    for centre in centres:
        bead = beads[rng.integers(len(beads))]
        turns, flip = int(rng.integers(4)), bool(rng.integers(2))
        ratio, mask = np.rot90(bead.ratio, turns), np.rot90(bead.mask, turns)
        if flip:
            ratio, mask = ratio[:, ::-1], mask[:, ::-1]
        ys, xs = np.nonzero(mask)
        top = int(round(centre[0] - ys.mean()))
        left = int(round(centre[1] - xs.mean()))
        y0, x0 = max(top, 0), max(left, 0)
        y1, x1 = min(top + ratio.shape[0], height), min(left + ratio.shape[1], width)
        if y0 >= y1 or x0 >= x1:
            continue
        inside = (slice(y0 - top, y1 - top), slice(x0 - left, x1 - left))
        window = (slice(y0, y1), slice(x0, x1))
        mine = mask[inside]
        if not mine.any():
            continue
        number += 1
        image[window] *= ratio[inside]
        true_centre = (ys.mean() + top, xs.mean() + left)
        yy, xx = np.mgrid[window]
        near = np.hypot(yy - true_centre[0], xx - true_centre[1]).astype(np.float32)
        claim = mine & (near < distance[window])
        labels[window][claim] = number
        distance[window][claim] = near[claim]
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    out = np.clip(np.round(image), info.min, info.max).astype(dtype) if info else image.astype(dtype)
    return out, labels


class CompositeSource(RenderedSource):
    """``n_images`` composite frames (or ``per_frame`` for each frame of the folder) built from the isolated beads
    and the emptied frames of a folder data set (``root`` with ``images/`` and ``masks/``), with exact instance
    labels; image ``i`` depends only on (``seed``, ``i``) and the folder.

    Each frame takes the beads of one capture (``group_by`` names captures; beads of one stock share a size) and
    one emptied frame, and holds ``min_beads``-``max_beads`` beads per 512² (log-uniform), ``touching_fraction`` of
    them touching others at contact distance. ``frames``: a regex; only matching frames give beads and backgrounds
    (e.g. the sparse captures). ``exclude_groups``: captures never used (held-out test captures; a data module
    adds its validation and test captures through :meth:`hold_out`).

    Examples
    --------
    >>> source = CompositeSource("data/real", n_images=20, min_beads=300, max_beads=900)  # doctest: +SKIP
    >>> name, image, labels = source.render(0)  # doctest: +SKIP
    """

    def __init__(self, root: str | Path, images: str = "images", n_images: int | None = None,
                 *, annotations: str = "masks", bead_diameter: float | str = "auto", per_frame: float = 1.0,
                 min_beads: int = 150, max_beads: int = 1400, touching_fraction: float = 0.45,
                 seed: int = 0, frames: str | None = None, group_by: str | None = None,
                 exclude_groups: list[str] | None = None, plane=None) -> None:
        self.folder = annotated_folder(root, annotations, images, bead_diameter, plane)
        self.requested, self.per_frame = n_images, per_frame
        self.min_beads, self.max_beads, self.touching_fraction = min_beads, max_beads, touching_fraction
        self.seed, self.frames, self.group_by = seed, frames, group_by
        self.exclude_groups = set(exclude_groups or ())
        self._library: BeadLibrary | None = None

    @property
    def library(self) -> BeadLibrary:
        """The beads and emptied frames of the folder, cut once (on first use)."""
        if self._library is None:
            rows = self.folder.entries()
            names = [row["name"] for row in rows]
            chosen = bounded_search(names, self.frames, "data.composite_frames") if self.frames else [True] * len(rows)
            groups = group_names(names, self.group_by, "source.group_by")
            library = BeadLibrary()
            for index, (row, group, wanted) in enumerate(zip(rows, groups, chosen)):
                if group in self.exclude_groups or not wanted:
                    continue
                sample = self.folder.read(row)
                library.add_frame(sample.image, sample.mask, group, np.random.default_rng([self.seed, index]))
            if not library.beads or not library.backgrounds:
                raise ValueError(f"data.composite: no isolated bead to cut out of {self.folder.root} (frames "
                                 f"{self.frames or 'all'}, captures left out {sorted(self.exclude_groups)})")
            self._library = library
        return self._library

    def hold_out(self, groups: set[str]) -> None:
        """Leave the captures ``groups`` (those validation and test hold) out of the beads and backgrounds too;
        frames drawn before are drawn again."""
        groups = self.exclude_groups | set(groups)
        if groups != self.exclude_groups:
            self.exclude_groups, self._library = groups, None
            self.redraw()

    @property
    def n_images(self) -> int:  # type: ignore[override]
        if self.requested is not None:
            return self.requested
        return int(round(self.per_frame * len(self.folder.entries())))

    def render(self, index: int) -> tuple[str, np.ndarray, np.ndarray]:
        library = self.library
        rng = np.random.default_rng([self.seed, index, 7])
        group = library.groups[rng.integers(len(library.groups))]
        background = library.backgrounds[rng.integers(len(library.backgrounds))]
        background = np.rot90(background, int(rng.integers(4)))
        per_area = background.size / 512**2
        wanted = int(np.exp(rng.uniform(np.log(self.min_beads), np.log(self.max_beads))) * per_area)
        groups = place_beads(rng, background.shape, wanted, library.diameters[group], self.touching_fraction)
        centres = np.concatenate(groups) if groups else np.zeros((0, 2))
        image, labels = composite(background, library.beads[group], centres, rng, library.dtype)
        return f"composite_{index:04d}", image, labels
