"""Beads corrected by hand: the labels that follow an edited layer of bead centres, and a corrected frame saved as
training data (``images/``, ``points/``, ``masks/``: ``beadseg-train data=points`` or ``data=folder`` reads it)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import tifffile
from skimage.draw import disk

from beadseg.data.points import write_points
from beadseg.files import atomic_write

MOVED = 0.5  # px: a bead whose centre moved further than this is drawn again at its new centre


def labels_in_step(
    found: np.ndarray,
    centres: dict[int, tuple[float, float]],
    points: np.ndarray,
    bead_ids: np.ndarray,
    diameter: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The bead labels after the centres were edited: a found bead whose point is gone is removed, one whose
    point moved and one added by hand (bead id 0, or the id of a point before it) is a disk of ``diameter`` px at its
    point (over background
    only); the others keep the pixels the model gave them.

    Parameters
    ----------
    found : ndarray of int
        The labels the model found (bead ``i`` is label ``i``).
    centres : dict
        Bead id -> its centre ``(y, x)`` as found.
    points : ndarray, shape (N, 2)
        The edited centres.
    bead_ids : ndarray of int, shape (N,)
        Each point's bead id; 0 for a point added by hand.
    diameter : float
        The disks' diameter, px.

    Returns
    -------
    labels, bead_ids : ndarray
        The labels in step with the points, and each point's bead id (new ones numbered after the found ones).

    Examples
    --------
    >>> found = np.zeros((20, 20), int); found[2:6, 2:6] = 1; found[10:14, 10:14] = 2
    >>> labels, ids = labels_in_step(found, {1: (3.5, 3.5), 2: (11.5, 11.5)}, np.array([[3.5, 3.5], [16.0, 4.0]]),
    ...                              np.array([1, 0]), 4.0)
    >>> ids.tolist(), sorted(np.unique(labels).tolist()), int(labels[16, 4])
    ([1, 3], [0, 1, 3], 3)
    """
    bead_ids = np.asarray(bead_ids, int).copy()
    seen: set[int] = set()
    for index, bead in enumerate(bead_ids):  # a point added by hand may carry another's id (napari copies the
        if bead in seen:                     # selected point's features to the next one): it is a new bead
            bead_ids[index] = 0
        seen.add(int(bead))
    unmoved = {int(i) for i, point in zip(bead_ids, points)
               if i in centres and np.hypot(*(np.asarray(centres[int(i)]) - point)) <= MOVED}
    labels = np.where(np.isin(found, sorted(unmoved)), found, 0)
    next_id = max(int(found.max()), int(bead_ids.max(initial=0))) + 1
    for index, point in enumerate(points):
        if int(bead_ids[index]) in unmoved:
            continue
        if not bead_ids[index]:
            bead_ids[index], next_id = next_id, next_id + 1
        rows, columns = disk(tuple(point), max(diameter / 2, 0.5), shape=labels.shape)  # local: no frame-wide work
        free = labels[rows, columns] == 0
        labels[rows[free], columns[free]] = bead_ids[index]
    return labels, bead_ids


def save_correction(folder: str | Path, name: str, image: np.ndarray, points: np.ndarray,
                    labels: np.ndarray) -> Path:
    """Append one corrected frame to a training folder: ``images/<stem>.tif`` (the image as read),
    ``points/<stem>.csv`` (``y,x`` of each bead) and ``masks/<stem>.tif`` (the bead labels, uint16). ``<stem>`` is
    ``name`` (its characters outside letters, digits, ``._-`` replaced), or ``name_2``, ``name_3``... where the
    folder holds it already: nothing in the folder is overwritten.

    Returns
    -------
    Path
        The image written.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> labels = np.zeros((8, 8), np.uint16); labels[2:4, 2:4] = 1
    >>> save_correction(folder, "frame 1", np.zeros((8, 8), np.uint8), np.array([[2.5, 2.5]]), labels).name
    'frame_1.tif'
    >>> save_correction(folder, "frame 1", np.zeros((8, 8), np.uint8), np.array([[2.5, 2.5]]), labels).name
    'frame_1_2.tif'
    """
    folder = Path(folder)
    base = re.sub(r"[^\w.-]", "_", name).strip(".") or "frame"
    taken = {path.stem for sub in ("images", "points", "masks") for path in (folder / sub).glob("*")}
    stem = next(candidate for candidate in (base if n == 1 else f"{base}_{n}" for n in range(1, len(taken) + 2))
                if candidate not in taken)
    with atomic_write(folder / "points" / f"{stem}.csv") as temporary:
        write_points(temporary, points)
    with atomic_write(folder / "masks" / f"{stem}.tif") as temporary:
        tifffile.imwrite(temporary, labels.astype(np.uint16), compression="zlib")
    with atomic_write(folder / "images" / f"{stem}.tif") as temporary:  # last: an image means a complete frame
        tifffile.imwrite(temporary, image)
    return folder / "images" / f"{stem}.tif"
