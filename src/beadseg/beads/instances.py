"""Bead instances from masks: the one definition of "a bead" that split, analyze, eval and prediction share."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.measure import label
from skimage.morphology import h_maxima
from skimage.segmentation import clear_border, relabel_sequential, watershed

from beadseg.beads.measure import edge_ids

# How far (px) a distance-transform peak must rise above the neck joining it to a higher one to seed its own bead.
SPLIT_DEPTH = 0.7
DEFAULT_PEAK_THRESHOLD = 0.3  # an untuned target=centres model's: a centre heat-map peak above it is a bead
EIGHT = np.ones((3, 3), bool)  # 8-connectivity, as h_maxima's default footprint


def split_touching(mask: np.ndarray, split_depth: float = SPLIT_DEPTH) -> np.ndarray:
    """Instance labels: connected components split by a watershed of the distance transform.

    Each regional maximum of the distance transform at least ``split_depth`` px above the neck that joins it
    to a higher one seeds a bead, so two touching disks part while a single disk (or a plateau) stays whole.

    Parameters
    ----------
    mask : ndarray of bool, shape (H, W)
    split_depth : float
        px: how far a maximum must rise above the neck to a higher one to be a bead of its own.

    Returns
    -------
    ndarray of int32, shape (H, W)
        0 for background, 1..N for the beads.

    Examples
    --------
    >>> from skimage.draw import disk
    >>> pair = np.zeros((20, 30), bool)
    >>> pair[disk((10, 9), 5.5)] = pair[disk((10, 20), 5.5)] = True  # two touching beads
    >>> int(split_touching(pair).max()), int(split_touching(pair[:, :15]).max())
    (2, 1)
    """
    if not mask.any():
        return np.zeros(mask.shape, np.int32)
    distance = ndi.distance_transform_edt(mask)
    return watershed(-distance, label(deep_maxima(distance, split_depth), connectivity=2), mask=mask).astype(np.int32)


def deep_maxima(distance: np.ndarray, depth: float) -> np.ndarray:
    """``skimage.morphology.h_maxima(distance, depth)`` of a distance transform, one connected object at a time
    (each in its bounding box, framed by background): what joins two objects crosses background, so each object's
    maxima are its own, and many small reconstructions cost far less than one of the whole frame. An object with a
    single regional maximum (its pixels with no higher neighbour form one region) needs none: its one maximum is
    what ``h_maxima`` would return."""
    objects, count = ndi.label(distance > 0, structure=EIGHT)
    tops = (distance == ndi.maximum_filter(distance, size=3)) & (distance > 0)  # no neighbour higher
    top_regions, regions = ndi.label(tops, structure=EIGHT)
    owner = np.zeros(regions + 1, np.int64)
    owner[top_regions[tops]] = objects[tops]  # each top region lies in one object
    single = np.bincount(owner[1:], minlength=count + 1) == 1
    peaks = tops & single[objects]  # one regional maximum (most beads): h_maxima gives just it
    boxes = ndi.find_objects(objects)
    for number in np.flatnonzero(~single[1:]) + 1:
        box = boxes[number - 1]
        mine = objects[box] == number
        local = np.pad(np.where(mine, distance[box], 0), 1)
        peaks[box] |= h_maxima(local, depth)[1:-1, 1:-1].astype(bool) & mine
    return peaks


def bead_instances(raw_mask: np.ndarray) -> np.ndarray:
    """The beads of a reference mask as int32 labels 1..N: an instance-label image keeps its labels
    (renumbered), a binary mask has its components split where touching beads meet (:func:`split_touching`)."""
    if len(np.unique(raw_mask)) > 2:
        return relabel_sequential(raw_mask.astype(np.int32))[0]
    return split_touching(raw_mask > 0)


def centre_peaks(centres: np.ndarray, mask: np.ndarray, min_peak: float = DEFAULT_PEAK_THRESHOLD,
                 min_distance: int = 2) -> np.ndarray:
    """The heat-map's peaks inside ``mask``, as (row, column) pairs in raster order: pixels above ``min_peak``
    that hold the maximum of the heat-map (0 outside the mask) over the (2·``min_distance``+1)² square around
    them. Max-pool suppression: the predictor finds the same on the device.

    Parameters
    ----------
    centres : ndarray of float, shape (H, W)
        The bead-centre heat-map (probabilities).
    mask : ndarray of bool, shape (H, W)
        The thresholded bead mask: peaks outside it are no beads.
    min_peak : float
        The lowest value a peak may have (``postprocess.peak_threshold``).
    min_distance : int
        Px: a peak must be the maximum of the square of this reach around it (``postprocess.peak_distance``).

    Returns
    -------
    ndarray of int, shape (N, 2)

    Examples
    --------
    Two touching beads, one mask component, two peaks:

    >>> centres = np.zeros((7, 12), np.float32); centres[3, 3] = 0.9; centres[3, 8] = 0.8
    >>> centre_peaks(centres, np.ones((7, 12), bool)).tolist()
    [[3, 3], [3, 8]]
    >>> centre_peaks(centres, np.ones((7, 12), bool), min_peak=0.85).tolist()
    [[3, 3]]
    """
    masked = np.where(mask, centres, 0).astype(np.float32, copy=False)
    peaks = (masked > min_peak) & (masked == ndi.maximum_filter(masked, 2 * min_distance + 1, mode="nearest"))
    return np.argwhere(peaks)


def peak_markers(peaks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Watershed markers numbered in raster order from peaks (row, column): one per peak, or per group of peaks
    that touch (a plateau of equal values)."""
    markers = np.zeros(shape, np.int32)
    rows, columns = np.asarray(peaks, np.int64).reshape(-1, 2).T
    markers[rows, columns] = np.arange(1, len(rows) + 1)
    width = shape[1]
    position = rows * width + columns
    right, left = columns < width - 1, columns > 0  # a neighbour ahead in raster order: not across the row's end
    neighbours = [(1, right), (width - 1, left), (width, np.ones(len(rows), bool)), (width + 1, right)]
    if any(np.any(np.isin(position + step, position) & inside) for step, inside in neighbours):
        return label(markers > 0, connectivity=2)
    return markers


def split_at_peaks(mask: np.ndarray, centres: np.ndarray, min_peak: float = DEFAULT_PEAK_THRESHOLD,
                   min_distance: int = 2, peaks: np.ndarray | None = None) -> np.ndarray:
    """Instance labels from a mask and a bead-centre heat-map: each peak of the heat-map in the mask
    (:func:`centre_peaks`, unless ``peaks`` are found already; peaks that touch are one) is a bead, whose pixels
    are those the watershed of the heat-map gives it. Mask components holding no peak are no bead.

    Parameters
    ----------
    mask : ndarray of bool, shape (H, W)
    centres : ndarray of float, shape (H, W)
        The centre heat-map (a model's second map).
    min_peak, min_distance : float, int
        What makes a peak (:func:`centre_peaks`).
    peaks : ndarray of int, shape (N, 2), optional
        (row, column) of the peaks, when found already (on the device).

    Returns
    -------
    ndarray of int32, shape (H, W)

    Examples
    --------
    >>> mask = np.zeros((9, 16), bool); mask[2:7, 2:14] = True  # one merged blob
    >>> yy, xx = np.mgrid[:9, :16]
    >>> heat = np.exp(-((yy - 4) ** 2 + (xx - 5) ** 2) / 4) + np.exp(-((yy - 4) ** 2 + (xx - 11) ** 2) / 4)
    >>> labels = split_at_peaks(mask, heat)
    >>> int(labels.max()), int(labels[4, 5]), int(labels[4, 11])
    (2, 1, 2)
    """
    if peaks is None:
        peaks = centre_peaks(centres, mask, min_peak, min_distance)
    markers = peak_markers(peaks, mask.shape)
    return watershed(-np.asarray(centres, np.float32), markers, mask=mask).astype(np.int32, copy=False)


def centroids(labels: np.ndarray) -> np.ndarray:
    """Centroids (N, 2) of the instances present in ``labels``, in label order (numbers may be skipped, as in a
    crop of a label image)."""
    count = int(labels.max()) if labels.size else 0
    if count == 0:
        return np.zeros((0, 2))
    with np.errstate(invalid="ignore", divide="ignore"):  # skipped numbers have no pixels: NaN, dropped below
        found = np.asarray(ndi.center_of_mass(np.ones(labels.shape), labels, np.arange(1, count + 1))).reshape(-1, 2)
    return found[np.isfinite(found).all(1)]


def centre_heatmap(labels: np.ndarray, sigma: float) -> np.ndarray:
    """The bead-centre target: a Gaussian of width ``sigma`` px whose peak, exactly 1, lies on the pixel holding
    each instance's centroid (where two overlap, the larger value), float32 in [0, 1]."""
    heat = np.zeros(labels.shape, np.float32)
    reach = int(np.ceil(3 * sigma))
    for cy, cx in np.round(centroids(labels)):
        y0, y1 = max(int(cy) - reach, 0), min(int(cy) + reach + 1, labels.shape[0])
        x0, x1 = max(int(cx) - reach, 0), min(int(cx) + reach + 1, labels.shape[1])
        yy, xx = np.ogrid[y0:y1, x0:x1]
        bump = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2)).astype(np.float32)
        np.maximum(heat[y0:y1, x0:x1], bump, out=heat[y0:y1, x0:x1])
    return heat


def single_bead_area(mask: np.ndarray) -> float:
    """The area of one bead: the median area of the mask's smaller connected components (those up to 1.5 times
    the lower quartile, so that merged clusters do not pull it up), leaving out those cut by the image edge."""
    components = label(mask > 0, connectivity=1)
    inner = clear_border(components)
    areas = np.bincount((inner if inner.any() else components).ravel())[1:]
    areas = areas[areas > 0]
    if not len(areas):
        return 0.0
    return float(np.median(areas[areas <= 1.5 * np.percentile(areas, 25)]))


def nearest_centre_parts(pixels: tuple[np.ndarray, np.ndarray], parts: int, seed: int = 0) -> np.ndarray:
    """Part numbers 0..k-1 (k ≤ ``parts``; an empty cluster leaves no number unused) of an object's pixels, each
    the pixels nearest one of ``parts`` centres k-means (k-means++ start, ``seed``) places on the object."""
    from scipy.cluster.vq import kmeans2, vq

    points = np.stack(pixels, 1).astype(float)
    found, _ = kmeans2(points, parts, minit="++", seed=seed)
    return np.unique(vq(points, found)[0], return_inverse=True)[1]


def split_by_area(mask: np.ndarray, single_area: float | None = None, seed: int = 0) -> np.ndarray:
    """Instance labels of a mask whose touching beads merged, one per bead by area: a component of area A holds
    ``round(A / single_area)`` beads (at least one; ``single_area`` defaults to :func:`single_bead_area`), each
    the pixels nearest one of the centres k-means places on it. The lab's convention for counting beads."""
    components = label(mask > 0, connectivity=1).astype(np.int32)
    return split_large(components, single_area or single_bead_area(mask), 1.5, seed)


def split_large(labels: np.ndarray, single_area: float, min_ratio: float = 1.5, seed: int = 0,
                max_ratio: float | None = None, areas: np.ndarray | None = None) -> np.ndarray:
    """Instance labels in which every object of at least ``min_ratio`` times ``single_area`` px is split into
    ``round(area / single_area)`` beads (:func:`nearest_centre_parts`): its first part keeps its number, the others
    get new numbers after the largest; smaller objects stay as they are. A merged doublet becomes two beads, a
    chain of four four. Objects over ``max_ratio`` bead areas (None: no limit) stay whole: no clump, but a region
    no bead-sized split describes (an untrained model's mask of half the frame), and k-means over it with
    thousands of centres would take hours. ``areas``: ``np.bincount(labels.ravel())``, when the caller has it.

    Examples
    --------
    >>> doublet = np.zeros((9, 16), np.int32); doublet[2:7, 2:7] = doublet[2:7, 7:12] = 1
    >>> int(split_large(doublet, 25.0).max())
    2
    """
    areas = np.bincount(labels.ravel()) if areas is None else areas.copy()
    areas[0] = 0
    large = np.flatnonzero((areas >= min_ratio * single_area) & (areas <= (max_ratio or np.inf) * single_area)) \
        if single_area else np.zeros(0, int)
    if not len(large):
        return labels
    out = labels.astype(np.int32, copy=True)
    count = int(labels.max())
    boxes = ndi.find_objects(labels)
    for number in large:
        box = boxes[number - 1]
        rows, columns = np.nonzero(labels[box] == number)
        beads = max(1, int(round(areas[number] / single_area)))
        if beads == 1:
            continue
        # seeded by where the object starts, not by its number among the others (which other pieces change)
        start = (box[0].start + int(rows[0])) * labels.shape[1] + box[1].start + int(columns[0])
        parts = nearest_centre_parts((rows, columns), beads, seed + start)
        out[box][rows, columns] = np.where(parts == 0, number, count + parts)
        count += int(parts.max())
    return out


def centres_by_area(mask: np.ndarray, single_area: float | None = None, seed: int = 0) -> np.ndarray:
    """Bead centres (N, 2) of a mask whose touching beads merged: the centroids of :func:`split_by_area`."""
    return centroids(split_by_area(mask, single_area, seed))


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """``scipy.ndimage.binary_fill_holes`` (background not 4-connected to the border becomes object) by one
    labelling of the background instead of repeated dilations.

    Parameters
    ----------
    mask : ndarray of bool, shape (H, W) or (N, H, W)
        A frame, or a stack of frames each filled on its own (one labelling for the stack).

    Returns
    -------
    ndarray of bool, the shape of ``mask``
        ``mask`` with its holes filled (``mask`` itself when it has none).

    Examples
    --------
    >>> ring = np.ones((5, 5), bool); ring[2, 2] = False
    >>> bool(fill_holes(ring).all())
    True
    >>> cup = ring.copy(); cup[0, 2] = cup[1, 2] = False  # the gap reaches the border: no hole
    >>> int(fill_holes(cup).sum())
    22
    >>> fill_holes(np.stack([ring, cup])).sum(axis=(1, 2)).tolist()
    [25, 22]
    """
    background, count = ndi.label(~mask, in_plane(mask.ndim))
    border = np.unique(np.concatenate([background[..., 0, :].ravel(), background[..., -1, :].ravel(),
                                       background[..., :, 0].ravel(), background[..., :, -1].ravel()]))
    if np.count_nonzero(border) == count:  # every background region reaches the border: no holes
        return mask
    hole = np.ones(count + 1, bool)
    hole[0] = False
    hole[border] = False
    return mask | hole[background]


def in_plane(ndim: int) -> np.ndarray:
    """The structuring element of 4-connectivity within each frame of an ``ndim``-D stack of frames (the last
    two axes), none across frames: labelling a stack with it labels each frame as on its own.

    Examples
    --------
    >>> in_plane(3)[1].astype(int).tolist(), int(in_plane(3).sum())
    ([[0, 1, 0], [1, 1, 1], [0, 1, 0]], 5)
    """
    structure = np.zeros((3,) * ndim, bool)
    structure[(1,) * (ndim - 2)] = ndi.generate_binary_structure(2, 1)
    return structure


def with_edge_remnants(labels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``labels`` plus, as beads of their own, the mask's components that hold no label and touch the border: the
    part of a bead cut by the frame whose centre (and so its heat-map peak) lies outside it. The edge rule then
    decides whether it counts, as for any bead the frame cuts."""
    leftover = mask & (labels == 0)
    if not any(side.any() for side in (leftover[0], leftover[-1], leftover[:, 0], leftover[:, -1])):
        return labels  # no unlabelled part of the mask reaches the border (most frames): nothing to label
    remnants = label(leftover, connectivity=1)
    cut = np.unique(edge_ids(remnants, True, True, True, True))
    cut = cut[cut > 0]
    if not len(cut):
        return labels
    lookup = np.zeros(int(remnants.max()) + 1, labels.dtype)
    lookup[cut] = int(labels.max()) + 1 + np.arange(len(cut))
    return np.where(labels > 0, labels, lookup[remnants])
