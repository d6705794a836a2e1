"""Beads as the region files Fiji and QuPath open: an ImageJ ROI set (``<image>_rois.zip``, one polygon per bead,
named by its bead id) and a GeoJSON FeatureCollection of QuPath detections (``<image>.geojson``).

Both hold every bead found; those the edge rule leaves out of the count (``counted`` false in ``objects.csv``) are
named so: ``bead <id> (edge, not counted)``, ImageJ group 2 (counted beads: group 1) and the QuPath class
``Bead (edge, not counted)`` with the measurement ``counted`` 0 (1 for counted beads).

Each outline runs along the pixel edges of the bead's pixels (corner coordinates, as ImageJ's wand traces), so the
polygon encloses exactly the bead's pixels: its area is the bead's ``area`` in ``objects.csv``. Coordinates are
those of the whole frame, also for frames post-processed in chunks (outlines are traced band by band).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from beadseg.files import atomic_write
from beadseg.system import release_pages

ROI_FORMATS = {"imagej": "_rois.zip", "geojson": ".geojson"}  # rois=...: the file each writes per image
NOT_COUNTED = " (edge, not counted)"  # the name suffix of a bead the edge rule leaves out of the count

# the unit steps of a walk along pixel edges, clockwise on screen (rows grow downwards): right, down, left, up
_STEPS = [(0, 1), (1, 0), (0, -1), (-1, 0)]


def trace_outline(mask: np.ndarray) -> np.ndarray:
    """The outer boundary of the largest 4-connected piece of ``mask`` as (row, column) pixel-corner vertices, one
    per change of direction, clockwise on screen; the polygon encloses exactly that piece's pixels (holes filled).

    Parameters
    ----------
    mask : ndarray of bool, shape (H, W)
        One object (pieces touching it only at a corner are left out).

    Returns
    -------
    ndarray of int, shape (N, 2)
        The polygon's vertices (row, column) on pixel corners: pixel (r, c) spans [r, r+1] x [c, c+1].

    Examples
    --------
    >>> mask = np.zeros((4, 5), bool); mask[1:3, 1:4] = True
    >>> trace_outline(mask).tolist()
    [[1, 1], [1, 4], [3, 4], [3, 1]]
    """
    padded = np.pad(mask, 1)
    rows, cols = np.nonzero(padded)
    edges: dict[tuple[int, int], list[int]] = {}  # corner -> directions of the boundary edges leaving it
    for direction, (dr, dc), (cr, cc) in zip(range(4), ((-1, 0), (0, 1), (1, 0), (0, -1)),
                                             ((0, 0), (0, 1), (1, 1), (1, 0))):
        free = ~padded[rows + dr, cols + dc]  # the side of these pixels that faces background
        for r, c in zip(rows[free] + cr, cols[free] + cc):
            edges.setdefault((int(r), int(c)), []).append(direction)
    loops = []
    while edges:
        start = next(iter(edges))
        corner, heading, loop = start, None, []
        while heading is None or corner != start:
            leaving = edges[corner]
            # where two pieces touch at a corner, turn right (the other way would be left): each 4-connected
            # piece gets its own loop
            if heading is None:
                choice = leaving[0]
            else:
                now = heading
                choice = min(leaving, key=lambda d: (d - now - 1) % 4)
            leaving.remove(choice)
            if not leaving:
                del edges[corner]
            if choice != heading:
                loop.append(corner)
            heading = choice
            corner = (corner[0] + _STEPS[choice][0], corner[1] + _STEPS[choice][1])
        loops.append(np.array(loop) - 1)
    outer = max(loops, key=lambda vertices: abs(polygon_area(vertices)))
    return outer


def polygon_area(vertices: np.ndarray) -> float:
    """Signed shoelace area of a closed polygon given by its (row, column) vertices."""
    r, c = np.asarray(vertices, float).T
    return 0.5 * float(np.dot(c, np.roll(r, -1)) - np.dot(r, np.roll(c, -1)))


def bead_outlines(labels: np.ndarray, bead_ids: list[int], centroids_y: list[float], band: int = 2048,
                  halo: int = 64) -> Iterator[tuple[int, np.ndarray]]:
    """(bead id, outline in frame coordinates) of every bead listed, traced band by band (``band`` rows seeing
    ``halo`` of their neighbours; beads must be smaller than the halo, as for chunked post-processing): memory does
    not grow with the frame."""
    wanted = np.asarray(bead_ids)
    centre_rows = np.asarray(centroids_y, float)
    for top in range(0, labels.shape[0], band):
        mine = wanted[(centre_rows >= top) & (centre_rows < top + band)]
        if not len(mine):
            continue
        y0 = max(top - halo, 0)
        local = np.asarray(labels[y0 : min(top + band + halo, labels.shape[0])])
        boxes = ndi.find_objects(local, max_label=int(mine.max()))
        for bead in mine:
            box = boxes[bead - 1]
            outline = trace_outline(local[box] == bead)
            yield int(bead), outline + (box[0].start + y0, box[1].start)
        release_pages(labels)


def roi_name(bead: int, counted: bool) -> str:
    """A bead's name in the ROI set and the GeoJSON, saying whether the count holds it.

    Examples
    --------
    >>> roi_name(7, True), roi_name(8, False)
    ('bead 7', 'bead 8 (edge, not counted)')
    """
    return f"bead {bead}" + ("" if counted else NOT_COUNTED)


def write_imagej_rois(outlines: list[tuple[int, np.ndarray]], rows: dict[int, dict], path: Path) -> Path:
    """An ImageJ ROI set (zip) of traced polygons named ``bead <id>`` (the name QuPath shows, ``objects.csv``'s
    ``bead_id``; :func:`roi_name`), counted beads in group 1 and the others in group 2: Fiji's ROI Manager opens it
    over the image."""
    from roifile import ROI_TYPE, ImagejRoi, roiwrite

    rois = []
    for bead, outline in outlines:
        counted = bool(rows[bead]["counted"])
        points = outline[:, ::-1].astype(np.float64 if outline.max() > 32000 else np.int32)  # (x, y)
        roi = ImagejRoi.frompoints(points, name=roi_name(bead, counted))
        roi.roitype = ROI_TYPE.TRACED
        roi.group = 1 if counted else 2
        rois.append(roi)

    with atomic_write(path) as partial:
        if rois:
            roiwrite(partial, rois, mode="w")
        else:  # an empty set: an empty zip Fiji's ROI Manager opens as such
            import zipfile

            zipfile.ZipFile(partial, "w").close()
    return path


def write_geojson(outlines: list[tuple[int, np.ndarray]], rows: dict[int, dict], path: Path) -> Path:
    """A GeoJSON FeatureCollection of QuPath detections: one closed polygon per bead in full-frame pixel
    coordinates, named by its bead id (:func:`roi_name`), with its ``objects.csv`` values as measurements
    (``counted`` 1 or 0) and the class ``Bead``, or ``Bead (edge, not counted)``."""
    features = []
    for bead, outline in outlines:
        ring = outline[:, ::-1].tolist()  # (x, y)
        counted = bool(rows[bead]["counted"])
        numbers = {key: value for key, value in rows[bead].items() if isinstance(value, (int, float))
                   and not isinstance(value, bool) and key != "bead_id"}
        features.append({"type": "Feature", "id": f"bead-{bead}",
                         "geometry": {"type": "Polygon", "coordinates": [ring + ring[:1]]},
                         "properties": {"objectType": "detection", "name": roi_name(bead, counted),
                                        "classification": {"name": "Bead" + ("" if counted else NOT_COUNTED),
                                                           "color": [255, 220, 0] if counted else [128, 128, 128]},
                                        "measurements": {**numbers, "counted": int(counted)}}})
    text = json.dumps({"type": "FeatureCollection", "features": features})
    with atomic_write(path) as partial:
        partial.write_text(text)
    return path


def write_rois(kinds: list[str], labels: np.ndarray, objects: list[dict], folder: Path, name: str) -> list[Path]:
    """The ROI files ``kinds`` (``imagej``, ``geojson``) of one frame's beads into ``folder``."""
    outlines = list(bead_outlines(labels, [row["bead_id"] for row in objects], [row["centroid_y"] for row in objects]))
    rows = {row["bead_id"]: row for row in objects}
    written = []
    if "imagej" in kinds:
        written.append(write_imagej_rois(outlines, rows, folder / f"{name}{ROI_FORMATS['imagej']}"))
    if "geojson" in kinds:
        written.append(write_geojson(outlines, rows, folder / f"{name}{ROI_FORMATS['geojson']}"))
    return written
