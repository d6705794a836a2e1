"""How large a frame's beads are, from the image alone: a scale-space blob search finds the beads whatever they look
like (dark, bright, a bright centre in a dark ring), and each of the strongest is measured where its contrast falls
to half, so that the estimate means what a mask's equivalent diameter means.

1. The scale-normalised Laplacian of Gaussian (``σ²∇²G``, Lindeberg's blob detector, as differences of Gaussians on
   an image pyramid: the cost of the whole ladder is about that of its first octave) answers at each bead's centre most
   strongly at
   ``σ = r/√2``; its local maxima in space and scale, of either sign, are the candidate beads.
2. The polarity whose strongest few candidates answer more is the beads'; candidates weaker than ``STRONG`` of
   those strongest (texture, noise) are dropped, and the most common size among the rest (the response-weighted
   mode in log size: beads outnumber the clusters they form) keeps the candidates within 25 % of it.
3. Each kept bead is measured: the connected region around its centre whose deviation from the local background is
   at least half its peak deviation (holes filled, so a ring closes over its centre); the frame's diameter is the
   median of their equivalent diameters.

An estimate is refused, with the reason, when fewer than ``MIN_BEADS`` beads were measured or when their sizes do not
agree (two sizes, or a spread that no stock of beads has): the caller then falls back to the model's diameter.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from beadseg.beads.instances import fill_holes, in_plane
from beadseg.beads.measure import image_noise

STEP = 2 ** 0.25  # the ratio of neighbouring scales (four per octave); the peak's parabola refines between them
STRONG = 0.5  # candidates answering less than half as strongly as the strongest few are texture, not beads
THRESHOLD = 6.0  # a candidate's response over the response's robust spread at its scale
MIN_BEADS = 3
MAX_SPREAD = 0.35  # (upper - lower quartile) / median of the measured diameters; a stock of beads: 0.05-0.2
MAX_MEASURED = 400  # beads measured per frame (the strongest): enough for a median, bounded in time
RESOLVED = 3.0  # beads narrower than this (px) in a shrunk frame lose their size to it: searched again at full size
MEASURED_WHERE_FOUND = 8.0  # beads this wide (px) in a shrunk frame are measured there; smaller: in the frame itself
MAX_PIXELS = 2**19  # pixels searched at once (a 724x724 crop; a 1440x1080 frame shrunk 2x2): an estimate's time bound
MEASURED_AT_ONCE = 2**20  # px of bead patches measured in one stack: a bound on the measurement's memory


@dataclass(frozen=True)
class SizeEstimate:
    """A frame's (or a capture's) bead diameter as estimated from its pixels.

    Parameters
    ----------
    diameter : float or None
        Equivalent diameter in px of the typical bead; ``None`` when the estimate cannot be trusted.
    beads : int
        How many beads were measured.
    spread : float
        (Upper - lower quartile) / median of the measured diameters.
    polarity : str or None
        ``dark`` (beads darker than the background) or ``bright``.
    reason : str
        Why the estimate is not trusted ("" when it is).

    Examples
    --------
    >>> SizeEstimate(None, 0, 0.0, None, "no beads found").trusted
    False
    """

    diameter: float | None
    beads: int
    spread: float
    polarity: str | None
    reason: str = ""

    @property
    def trusted(self) -> bool:
        """Whether the diameter can be used (else the model's serves, with ``reason`` named)."""
        return self.diameter is not None and not self.reason


def _ladder(min_diameter: float, max_diameter: float) -> np.ndarray:
    low, high = min_diameter / (2 * math.sqrt(2)), max_diameter / (2 * math.sqrt(2))
    return low * STEP ** np.arange(int(math.ceil(math.log(high / low) / math.log(STEP))) + 3)


def _responses(image: np.ndarray, sigmas: np.ndarray) -> list[tuple[np.ndarray, int]]:
    """``σ²∇²G`` of the image at every scale of the ladder, as differences of neighbouring Gaussian blurs (each blur
    made from the one before with a small kernel, as SIFT does: ``G(kσ) - G(σ) ≈ (k - 1) σ²∇²G``), each with the
    pyramid factor its map is sampled at (an octave down once σ reaches 4 px of the current level: the halved,
    already blurred image keeps what that scale sees)."""
    maps, factor = [], 1
    blurred = ndi.gaussian_filter(image, sigmas[0] / math.sqrt(STEP))  # each response lies between two blurs
    for sigma in sigmas:
        narrow, wide = sigma / math.sqrt(STEP), sigma * math.sqrt(STEP)
        if narrow / factor >= 4.0 and min(blurred.shape) >= 64:
            blurred, factor = blurred[::2, ::2], factor * 2
        wider = ndi.gaussian_filter(blurred, math.sqrt(wide**2 - narrow**2) / factor)
        maps.append(((wider - blurred) / (STEP - 1), factor))
        blurred = wider
    return maps


def _spread(values: np.ndarray) -> float:
    step = max(1, int(math.sqrt(values.size / 65536)))  # a median over at most ~64k samples
    sample = values[::step, ::step].flatten()
    return 1.4826 * float(_median(np.abs(sample - _median(sample)))) + 1e-9


def _median(sample: np.ndarray) -> np.floating:
    """``np.median`` of a 1-D float array, to the bit, with one partition and no copy (``sample`` is reordered)."""
    if np.isnan(sample.max()):
        return sample.dtype.type(np.nan)
    half = sample.size // 2
    sample.partition(half)
    if sample.size % 2:
        return sample[half]
    return (sample[:half].max() + sample[half]) / 2


def _local_maxima(values: np.ndarray, floor: float, sign: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the pixels where ``sign`` × ``values`` is above ``floor`` and no pixel of their 3x3
    square (within the frame) exceeds it: the pixels where it equals its
    :func:`~beadseg.beads.measure.square_maximum`, compared only at the few above the floor (``values`` is never
    copied whole)."""
    rows, columns = np.divmod(np.flatnonzero(values > floor if sign > 0 else values < -floor), values.shape[1])
    if not len(rows):
        return rows, columns
    height, width = values.shape
    strength = sign * values[rows, columns]
    keep = np.ones(len(rows), bool)
    for step_row in (-1, 0, 1):
        near_rows = np.clip(rows + step_row, 0, height - 1)
        for step_column in (-1, 0, 1):
            if step_row or step_column:
                keep &= strength >= sign * values[near_rows, np.clip(columns + step_column, 0, width - 1)]
    return rows[keep], columns[keep]


def _candidates(maps: list[tuple[np.ndarray, int]], sigmas: np.ndarray, sign: int,
                spreads: dict[int, float]) -> tuple[np.ndarray, ...]:
    """Local maxima of ``sign`` × the response in space and scale: (diameter px, response, row, column);
    ``spreads``: the robust spread (:func:`_spread`, the same for both signs) of each map but the first and last,
    which serve only as the scales beside them."""
    found = []
    for index in range(1, len(maps) - 1):
        response, factor = maps[index]
        rows, columns = _local_maxima(response, THRESHOLD * spreads[index], sign)
        if not len(rows):
            continue
        strength = sign * response[rows, columns]
        y, x = rows * factor, columns * factor
        neighbours = []
        for other in (index - 1, index + 1):
            values, other_factor = maps[other]
            neighbours.append(sign * values[np.minimum(y // other_factor, values.shape[0] - 1),
                                             np.minimum(x // other_factor, values.shape[1] - 1)])
        below, above = neighbours
        keep = (strength >= below) & (strength >= above)
        curvature = below[keep] - 2 * strength[keep] + above[keep]
        offset = np.where(curvature < 0, 0.5 * (below[keep] - above[keep]) / np.where(curvature < 0, curvature, -1), 0)
        diameter = sigmas[index] * STEP ** np.clip(offset, -0.5, 0.5) * 2 * math.sqrt(2)
        found.append(np.stack([diameter, strength[keep], y[keep], x[keep]]))
    if not found:
        return tuple(np.zeros(0) for _ in range(4))
    return tuple(np.concatenate(found, axis=1))


def _mode(diameters: np.ndarray, weights: np.ndarray, bandwidth: float = 0.08) -> tuple[float, float]:
    """The weighted mode of the diameters in log size, and the weight of the strongest other mode at least 1.5
    times larger or smaller (relative to the first)."""
    logs = np.log(diameters)
    grid = np.arange(logs.min() - 0.3, logs.max() + 0.3, 0.01)
    density = (weights[None, :] * np.exp(-0.5 * ((grid[:, None] - logs[None, :]) / bandwidth) ** 2)).sum(1)
    best = int(np.argmax(density))
    peaks = np.flatnonzero((density[1:-1] > density[:-2]) & (density[1:-1] >= density[2:])) + 1
    far = peaks[np.abs(grid[peaks] - grid[best]) >= math.log(1.5)]
    other = float(density[far].max() / density[best]) if len(far) else 0.0
    return float(math.exp(grid[best])), other


@functools.lru_cache(maxsize=256)
def _polar_grid(reach: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each pixel's distance from the centre of a (2·``reach``+1)² patch, its whole-px ring, and the pixels per
    ring (at least 1): the same for every bead of one size."""
    yy, xx = np.mgrid[-reach : reach + 1, -reach : reach + 1]
    radius = np.hypot(yy, xx)
    bins = np.round(radius).astype(int).ravel()
    return radius, bins, np.maximum(np.bincount(bins), 1)


def _measure(image: np.ndarray, rows: np.ndarray, columns: np.ndarray, diameters: np.ndarray,
             dark: bool) -> np.ndarray:
    """Each bead's equivalent diameter where its deviation from the local background falls to half its peak
    (beads cut by the frame's edge left out: their size says nothing), measured in stacks of patches of one size
    of at most ``MEASURED_AT_ONCE`` px."""
    height, width = image.shape
    rows, columns = rows.astype(int), columns.astype(int)
    reaches = np.ceil(1.2 * diameters).astype(int) + 2
    inside = (rows >= reaches) & (columns >= reaches) & (rows + reaches < height) & (columns + reaches < width)
    measured = np.full(len(rows), np.nan)
    for reach in np.unique(reaches[inside]):
        beads, at_once = np.flatnonzero(inside & (reaches == reach)), max(1, MEASURED_AT_ONCE // (2 * reach + 1) ** 2)
        for batch in np.array_split(beads, range(at_once, len(beads), at_once)):
            measured[batch] = _measure_patches(image, rows[batch], columns[batch], diameters[batch], int(reach), dark)
    return measured[~np.isnan(measured)]


def _measure_patches(image: np.ndarray, rows: np.ndarray, columns: np.ndarray, diameters: np.ndarray, reach: int,
                     dark: bool) -> np.ndarray:
    """:func:`_measure` for beads whose patches reach ``reach`` px from their centres (NaN: no region at a
    centre), one stack of patches, each treated as on its own."""
    count, side = len(rows), 2 * reach + 1
    patches = np.empty((count, side, side), np.float32)
    for patch, row, column in zip(patches, rows, columns):
        patch[:] = image[row - reach : row + reach + 1, column - reach : column + reach + 1]
    patches = ndi.gaussian_filter(patches, (0, 0.5, 0.5))
    radius, bins, per_bin = _polar_grid(reach)
    rough = diameters[:, None, None]
    ring = (radius >= 0.75 * rough) & (radius <= 1.2 * rough)
    background = _percentile_within(patches.reshape(count, -1), ring.reshape(count, -1),
                                    75 if dark else 25)  # the background side of a crowded ring
    deviation = np.abs(patches - background[:, None, None])
    rings = len(per_bin)
    profile = np.bincount((bins + rings * np.arange(count)[:, None]).ravel(), deviation.ravel(),
                          minlength=count * rings).reshape(count, rings) / per_bin
    peak = np.where(np.arange(rings) <= np.round(diameters / 2)[:, None], profile, -np.inf).max(axis=1)
    inner = (deviation >= (peak / 2)[:, None, None]) & (radius <= 0.75 * rough)
    region, _ = ndi.label(fill_holes(inner), in_plane(3))  # holes filled: a ring closes over its centre
    centre = region[:, reach - 1 : reach + 2, reach - 1 : reach + 2].reshape(count, 9)
    votes = np.where(centre > 0, (centre[:, :, None] == centre[:, None, :]).sum(axis=2), 0)
    most = votes.max(axis=1)
    number = np.where(votes == most[:, None], centre, np.iinfo(centre.dtype).max).min(axis=1)  # ties: the first
    area = np.bincount(region.ravel())[np.where(most > 0, number, 0)]
    return np.where(most > 0, np.sqrt(4 * area / math.pi), np.nan)


def _percentile_within(values: np.ndarray, within: np.ndarray, percent: float) -> np.ndarray:
    """``np.percentile(row[keep], percent)`` for each row of ``values`` and of ``within`` (a row keeps at least one
    value), all rows at once: the same linear interpolation, to the bit."""
    ordered = np.sort(np.where(within, values, np.inf), axis=1)
    kept = within.sum(axis=1)
    position = (kept - 1) * (percent / 100)
    below = np.floor(position).astype(int)
    fraction = (position - below).astype(values.dtype)[:, None]
    pair = np.take_along_axis(ordered, np.stack([below, np.minimum(below + 1, kept - 1)], axis=1), axis=1)
    low, high = pair[:, :1], pair[:, 1:]
    step = high - low
    return np.where(fraction >= 0.5, high - step * (1 - fraction), low + step * fraction)[:, 0]


def _shrunk(image: np.ndarray, factor: int, band: int = 256) -> np.ndarray:
    """Block means of ``factor``² px, band by band (a memory-mapped frame is never read whole): sums of strided
    views, 15x faster than ``np.mean`` over the blocks and equal to it to the bit where float32 holds the sums
    exactly (8- and 16-bit frames shrunk up to 16 times)."""
    height, width = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
    shrunk = np.zeros((height // factor, width // factor), np.float32)
    for top in range(0, height // factor, band):
        rows = np.asarray(image[top * factor : min(top + band, height // factor) * factor, :width], np.float32)
        for row in range(factor):
            for column in range(factor):
                shrunk[top : top + band] += rows[row::factor, column::factor]
    return (shrunk / float(factor**2)).astype(np.float32)


def estimate_diameter(image: np.ndarray, min_diameter: float = 2.5, max_diameter: float = 96.0) -> SizeEstimate:
    """The typical bead diameter (px) of a frame, from its pixels alone, with how far it can be trusted.

    Parameters
    ----------
    image : ndarray
        A 2-D frame (any dtype; gray). A frame over ``MAX_PIXELS`` is searched shrunk to at most ``MAX_PIXELS``
        (block means: every bead it holds) and its beads measured at full resolution, each in its own patch;
        where the shrunk frame shows no beads it can trust, or beads under ``RESOLVED`` px there (too small to
        survive it), its central ``MAX_PIXELS`` are searched at full resolution.
    min_diameter, max_diameter : float
        The range of diameters searched (px); ``max_diameter`` is also capped at a sixth of the frame's side.

    Returns
    -------
    SizeEstimate
        The diameter (``None`` with a ``reason`` when no beads are found, or their sizes disagree).

    Examples
    --------
    >>> yy, xx = np.mgrid[:128, :128]
    >>> frame = np.full((128, 128), 200.0) + np.random.default_rng(0).normal(0, 2, (128, 128))
    >>> for cy, cx in [(30, 30), (30, 90), (90, 40), (95, 95), (60, 64)]:
    ...     frame[np.hypot(yy - cy, xx - cx) <= 7] -= 80   # dark beads of 149 px: 13.8 px across
    >>> estimate = estimate_diameter(frame)
    >>> estimate.polarity, round(estimate.diameter, 1), estimate.trusted
    ('dark', 13.8, True)
    """
    image = np.asarray(image)
    if image.size <= MAX_PIXELS:
        return _estimate(image, image, 1, min_diameter, max_diameter)
    factor = int(math.ceil(math.sqrt(image.size / MAX_PIXELS)))
    whole = _estimate(_shrunk(image, factor), image, factor, min_diameter, max_diameter)
    if whole.trusted and (whole.diameter or 0.0) >= RESOLVED * factor:
        return whole
    side = int(math.sqrt(MAX_PIXELS))
    top, left = max(image.shape[0] - side, 0) // 2, max(image.shape[1] - side, 0) // 2
    centre = image[top : top + side, left : left + side]
    return _estimate(centre, centre, 1, min_diameter, max_diameter)


def _estimate(searched: np.ndarray, image: np.ndarray, factor: int, min_diameter: float,
              max_diameter: float) -> SizeEstimate:
    """:func:`estimate_diameter` on ``searched``, ``image`` shrunk ``factor`` times (1: the image itself): the
    candidates found there, measured in ``image`` (sizes in its px)."""
    frame = np.asarray(searched, np.float32)
    frame = frame / max(image_noise(frame), 1e-6)  # noise units: the same thresholds for 8 and 16 bits
    top = min(max_diameter / factor, min(frame.shape) / 6)
    if top <= min_diameter * STEP**2:
        return SizeEstimate(None, 0, 0.0, None, f"the frame ({frame.shape[0]}x{frame.shape[1]} px) is too small")
    sigmas = _ladder(min_diameter, top)
    maps = _responses(frame, sigmas)
    spreads = {index: _spread(maps[index][0]) for index in range(1, len(maps) - 1)}  # the scales searched
    best = None
    for polarity, sign in (("dark", 1), ("bright", -1)):
        diameters, strength, rows, columns = _candidates(maps, sigmas, sign, spreads)
        if not len(strength):
            continue
        score = float(np.sort(strength)[::-1][:MIN_BEADS].mean())
        if best is None or score > best[0]:
            best = (score, polarity, diameters, strength, rows, columns)
    if best is None:
        return SizeEstimate(None, 0, 0.0, None, "no beads found")
    score, polarity, diameters, strength, rows, columns = best
    strong = strength >= STRONG * score
    diameters, strength, rows, columns = diameters[strong], strength[strong], rows[strong], columns[strong]
    mode, other = _mode(diameters, strength**2)
    near = np.flatnonzero((diameters > mode / 1.25) & (diameters < mode * 1.25))
    near = near[np.argsort(strength[near])[::-1][:MAX_MEASURED]]
    if factor == 1 or mode >= MEASURED_WHERE_FOUND:
        measured = factor * _measure(frame, rows[near], columns[near], diameters[near], polarity == "dark")
    else:  # beads of a few px lose their size to the block means: measured in the image itself
        centre = (factor - 1) / 2  # a block's centre in the image's px
        measured = _measure(image, np.round(rows[near] * factor + centre), np.round(columns[near] * factor + centre),
                            diameters[near] * factor, polarity == "dark")
    if len(measured) < MIN_BEADS:
        return SizeEstimate(None, len(measured), 0.0, polarity,
                            f"{len(measured)} bead(s) found clear of the frame's edge, fewer than {MIN_BEADS}")
    low, median, high = np.percentile(measured, (25, 50, 75))
    spread = float((high - low) / median)
    reason = ""
    if other >= 0.5:
        reason = f"two bead sizes (the second {other:.0%} as common)"
    elif spread > MAX_SPREAD:
        reason = f"the beads' sizes disagree (spread {spread:.2f})"
    return SizeEstimate(round(float(median), 2), len(measured), round(spread, 3), polarity, reason)


def pooled(estimates: list[SizeEstimate]) -> SizeEstimate:
    """One estimate for frames of one capture (or windows of one frame): the median of the trusted ones, weighted
    by the beads each measured; untrusted when none is (with the most common reason).

    Examples
    --------
    >>> pooled([SizeEstimate(7.0, 30, 0.1, "dark"), SizeEstimate(7.4, 10, 0.1, "dark"),
    ...         SizeEstimate(None, 0, 0.0, None, "no beads found")]).diameter
    7.0
    """
    trusted = [estimate for estimate in estimates if estimate.trusted]
    if not trusted:
        reasons = [estimate.reason for estimate in estimates if estimate.reason] or ["no beads found"]
        return SizeEstimate(None, sum(e.beads for e in estimates), 0.0, None, max(set(reasons), key=reasons.count))
    order = sorted(trusted, key=lambda estimate: estimate.diameter or 0.0)
    weights = np.cumsum([estimate.beads for estimate in order])
    middle = order[int(np.searchsorted(weights, weights[-1] / 2))]
    polarities = [estimate.polarity for estimate in trusted]
    return SizeEstimate(middle.diameter, int(weights[-1]), middle.spread, max(set(polarities), key=polarities.count))


MAX_ZOOM = 8.0  # frames are resized by at most this factor either way (beads of 1 px or 8 times the model's)


class BeadSizeError(ValueError):
    """A bead size that cannot serve a frame (no pixel size for a size in µm, beads larger than the frame); the
    message names the setting."""


@dataclass(frozen=True)
class FrameSize:
    """What beadseg takes a frame's beads to measure, and how the frame meets the network.

    Parameters
    ----------
    diameter : float or None
        The beads' equivalent diameter in the frame's px (``None``: unknown, and no model's to fall back on).
    source : str
        ``given`` (``image.bead_diameter`` or ``image.bead_diameter_um``), ``estimated`` (from the pixels) or
        ``model`` (the diameter the model learned: the setting asked for it, or an estimate could not be trusted).
    zoom : float
        The factor the frame is resized by before the network (1: as it is), so that its beads measure what the
        model's did; maps come back to the frame's own grid.
    note : str
        Why an estimate was not used ("" otherwise).

    Examples
    --------
    >>> FrameSize(14.0, "given", 0.5)
    FrameSize(diameter=14.0, source='given', zoom=0.5, note='')
    """

    diameter: float | None
    source: str
    zoom: float = 1.0
    note: str = ""


@dataclass(frozen=True)
class BeadSizing:
    """The ``image.bead_diameter`` settings bound to a model: how each frame's bead diameter is decided and how
    far the frame is resized for the network.

    Parameters
    ----------
    diameter : float or str
        px, ``auto`` (estimated from each frame, the model's where the estimate cannot be trusted) or ``model``
        (every frame taken to hold beads of the model's size: no resizing).
    diameter_um : float, optional
        µm, with each frame's pixel size (its metadata, else ``image.pixel_size_um``); wins over ``diameter``.
    tolerance : float
        Frames whose beads are within this factor of the model's go to the network as they are.
    model_diameter : float, optional
        The bead diameter the model learned (px), stored in its checkpoint; ``None``: no resizing.

    Examples
    --------
    >>> sizing = BeadSizing(diameter=14.0, model_diameter=7.0)
    >>> sizing.for_frame(np.zeros((64, 64)))
    FrameSize(diameter=14.0, source='given', zoom=0.5, note='')
    >>> BeadSizing(diameter=8.0, model_diameter=7.0).for_frame(np.zeros((64, 64))).zoom  # within the tolerance
    1.0
    """

    diameter: float | str = "auto"
    diameter_um: float | None = None
    tolerance: float = 1.3
    model_diameter: float | None = None

    @classmethod
    def from_config(cls, image_config, model_diameter: float | None) -> BeadSizing:
        """The ``image.bead_diameter``, ``image.bead_diameter_um`` and ``image.diameter_tolerance`` settings bound to
        the model's diameter (``None``: no resizing).

        Examples
        --------
        >>> BeadSizing.from_config({"bead_diameter": 14, "diameter_tolerance": 1.3}, 7.0).zoom(14.0)
        0.5
        """
        image_config = image_config or {}
        return cls(diameter=image_config.get("bead_diameter", "auto"), diameter_um=image_config.get("bead_diameter_um"),
                   tolerance=float(image_config.get("diameter_tolerance", 1.3)), model_diameter=model_diameter)

    def zoom(self, diameter: float | None) -> float:
        """The resizing factor for beads of ``diameter`` px (1 within the tolerance, or without a model's size)."""
        if not diameter or not self.model_diameter:
            return 1.0
        ratio = self.model_diameter / diameter
        if max(ratio, 1 / ratio) <= self.tolerance:
            return 1.0
        return float(min(max(ratio, 1 / MAX_ZOOM), MAX_ZOOM))

    def given(self, pixel_size_um: float | None) -> float | None:
        """The diameter in px the settings give for a frame of ``pixel_size_um`` (None for ``auto`` and ``model``)."""
        if self.diameter_um is not None:
            if not pixel_size_um:
                raise BeadSizeError(
                    f"image.bead_diameter_um={self.diameter_um:g} needs the frame's pixel size: the "
                    "file records none; give image.pixel_size_um=MICRONS (or image.bead_diameter in px)"
                )
            return self.diameter_um / pixel_size_um
        return float(self.diameter) if not isinstance(self.diameter, str) else None

    def for_frame(self, image: np.ndarray, pixel_size_um: float | None = None,
                  estimate: SizeEstimate | None = None) -> FrameSize:
        """The frame's bead size and zoom: given, estimated (``estimate`` when the caller has one, e.g. its
        capture's), or the model's.

        Raises
        ------
        BeadSizeError
            A size in µm for a frame without a pixel size, or beads larger than the frame.
        """
        given = self.given(pixel_size_um)
        if given is not None:
            if given > min(image.shape[-2:]):
                key = "image.bead_diameter_um" if self.diameter_um is not None else "image.bead_diameter"
                raise BeadSizeError(f"{key}: beads of {given:.1f} px do not fit a frame of "
                                    f"{image.shape[-2]}x{image.shape[-1]} px")
            return FrameSize(round(given, 3), "given", self.zoom(given))
        if self.diameter == "auto":
            estimate = estimate or estimate_diameter(image)
            if estimate.trusted:
                return FrameSize(estimate.diameter, "estimated", self.zoom(estimate.diameter))
            return FrameSize(self.model_diameter, "model", 1.0, estimate.reason)
        return FrameSize(self.model_diameter, "model", 1.0)
