"""Bead instances from masks: the one definition of "a bead" that split, analyze, eval and prediction share."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.measure import label
from skimage.morphology import h_maxima
from skimage.segmentation import relabel_sequential, watershed

# How far (px) a distance-transform peak must rise above the neck joining it to a higher one to seed its own bead.
SPLIT_DEPTH = 0.7


def split_touching(mask: np.ndarray, split_depth: float = SPLIT_DEPTH) -> np.ndarray:
    """Instance labels: connected components split by a watershed of the distance transform.

    Each regional maximum of the distance transform at least ``split_depth`` px above the neck that joins it
    to a higher one seeds a bead, so two touching disks part while a single disk (or a plateau) stays whole.
    """
    if not mask.any():
        return np.zeros(mask.shape, np.int32)
    distance = ndi.distance_transform_edt(mask)
    markers = label(h_maxima(distance, split_depth), connectivity=2)
    return watershed(-distance, markers, mask=mask).astype(np.int32)


def bead_instances(raw_mask: np.ndarray) -> np.ndarray:
    """The beads of a reference mask as int32 labels 1..N: an instance-label image keeps its labels
    (renumbered), a binary mask has its components split where touching beads meet (:func:`split_touching`)."""
    if len(np.unique(raw_mask)) > 2:
        return relabel_sequential(raw_mask.astype(np.int32))[0]
    return split_touching(raw_mask > 0)
