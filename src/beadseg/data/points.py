"""Bead data sets annotated by clicks: ``images/`` and ``points/`` (one CSV of bead centres per image, paired by
file stem) and no masks. Each bead becomes a disk of the beads' diameter at its centre (touching disks parted
halfway between their centres), so the centre target learns from the points themselves and the mask target from
disks of the bead size."""

from __future__ import annotations

import csv
import math
from functools import partial
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from beadseg.beads.size import BeadSizing, estimate_diameter
from beadseg.data.folder import FolderSource, check_unchanged, pair_by_stem, rescaled_image
from beadseg.data.io import BeadDataError, image_name, list_images, open_image
from beadseg.data.manifest import build_manifest, image_stats, manifest_path
from beadseg.data.readers import DEFAULT_PLANE, PlaneChoice
from beadseg.data.sample import BeadSample

MAX_POINTS = 100_000  # rows one points file may hold (a 3840x2160 frame of 3-px beads touching holds ~900,000 px²/7)
MAX_POINTS_BYTES = 8 << 20  # bytes of one points file
COLUMNS = (("y", "x"), ("axis-0", "axis-1"))  # beadseg's own; napari's points writer for a 2-D layer


def read_points(path: str | Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Bead centres ``(N, 2)`` as ``(y, x)`` in pixels from a CSV with columns ``y,x`` (or ``axis-0,axis-1``, as
    napari's points writer saves a 2-D layer; other columns are ignored), refused with the file and line named
    where a value is missing, not finite or, given the image's ``shape``, outside it.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "a.csv"
    >>> _ = path.write_text("index,axis-0,axis-1\\n0,3.0,4.5\\n1,10,2\\n")
    >>> read_points(path, (16, 16)).tolist()
    [[3.0, 4.5], [10.0, 2.0]]
    """
    path = Path(path)
    if path.stat().st_size > MAX_POINTS_BYTES:
        raise BeadDataError(f"points file {path} is larger than {MAX_POINTS_BYTES >> 20} MB: not a list of bead "
                            "centres")
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        names = next((pair for pair in COLUMNS if set(pair) <= set(header)), None)
        if names is None or "axis-2" in header:
            raise BeadDataError(f"points file {path} has columns {header}: it needs y,x (or napari's axis-0,axis-1 of "
                                "a 2-D points layer)")
        points: list[list[float]] = []
        for line, row in enumerate(reader, start=2):
            if len(points) == MAX_POINTS:
                raise BeadDataError(f"points file {path} holds more than {MAX_POINTS} rows")
            try:
                point = [float(row[name]) for name in names]
            except (TypeError, ValueError):
                raise BeadDataError(f"points file {path}, line {line}: {names} must be numbers, got "
                                    f"{[row.get(name) for name in names]}") from None
            if not all(math.isfinite(value) for value in point):
                raise BeadDataError(f"points file {path}, line {line}: {point} is not a position")
            if shape is not None and not all(-0.5 <= value < size - 0.5 for value, size in zip(point, shape)):
                raise BeadDataError(f"points file {path}, line {line}: (y, x) = {tuple(point)} lies outside its "
                                    f"image of {shape[0]}x{shape[1]} px")
            points.append(point)
    return np.asarray(points, float).reshape(-1, 2)


def write_points(path: str | Path, points: np.ndarray) -> Path:
    """Bead centres ``(N, 2)`` as ``(y, x)`` to the CSV :func:`read_points` reads (columns ``y,x``, 0.01 px; its
    folder made).

    Examples
    --------
    >>> import tempfile
    >>> path = write_points(Path(tempfile.mkdtemp()) / "a.csv", np.array([[3.0, 4.5]]))
    >>> path.read_text()
    'y,x\\n3.00,4.50\\n'
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("y,x\n" + "".join(f"{y:.2f},{x:.2f}\n" for y, x in np.reshape(points, (-1, 2))))
    return Path(path)


def disks_at(points: np.ndarray, shape: tuple[int, int], diameter: float) -> np.ndarray:
    """Instance labels of one disk of ``diameter`` px per point (label ``i + 1`` for point ``i``); where disks
    overlap, each pixel goes to the nearest centre. Two points on one pixel are one bead.

    Examples
    --------
    >>> labels = disks_at(np.array([[5.0, 5.0], [5.0, 11.0]]), (12, 18), 8.0)
    >>> [int(value) for value in (labels.max(), labels[5, 8], labels[5, 9], (labels == 1).sum(), (labels == 2).sum())]
    [2, 1, 2, 48, 43]
    """
    markers = np.zeros(shape, np.int32)
    pixels = np.clip(np.rint(points).astype(int), 0, np.array(shape) - 1)
    markers[pixels[:, 0], pixels[:, 1]] = np.arange(1, len(pixels) + 1)
    if not len(pixels):
        return markers
    distance, (rows, cols) = ndi.distance_transform_edt(markers == 0, return_indices=True)
    labels = np.where(distance <= diameter / 2, markers[rows, cols], 0)
    kept = np.unique(labels[labels > 0])  # a point another one overwrote has no label: renumber the rest
    lookup = np.zeros(len(pixels) + 1, np.int32)
    lookup[kept] = np.arange(1, len(kept) + 1)
    return lookup[labels]


def load_points_pair(image_path: Path, points_path: Path, diameter: float | str,
                     sizing: BeadSizing | None = None, plane: PlaneChoice = DEFAULT_PLANE) -> BeadSample:
    """One frame and the disks at its points, of ``diameter`` px or the size estimated from the frame (refused,
    naming the points file, where the estimate cannot be trusted), resized by ``sizing``'s zoom where it binds
    frames to a model's size (one estimate serves both)."""
    image = open_image(image_path, plane)
    points = read_points(points_path, image.shape[:2])
    estimate = estimate_diameter(image) if diameter == "auto" and (len(points) or sizing is not None) else None
    size = 0.0
    if len(points):
        size = BeadSizing(diameter).for_frame(image, estimate=estimate).diameter or 0.0
        if not size:
            reason = estimate.reason if estimate is not None else f"image.bead_diameter={diameter} names no size"
            raise BeadDataError(f"{points_path}: the bead size cannot be taken from its image ({reason}); give "
                                "it: image.bead_diameter=PX")
    zoom = sizing.for_frame(image, estimate=estimate).zoom if sizing is not None else 1.0
    if zoom != 1:
        image, points, size = rescaled_image(image, zoom), (points + 0.5) * zoom - 0.5, size * zoom
    labels = disks_at(points, image.shape[:2], size)
    return BeadSample(image_name(image_path), image, labels)


def measure_points(item: dict, diameter: float | str, plane: PlaneChoice = DEFAULT_PLANE) -> dict:
    """Manifest statistics of one image and its points (checked as training reads them)."""
    sample = load_points_pair(Path(item["files"]["image"]), Path(item["files"]["points"]), diameter, plane=plane)
    return {**image_stats(sample.image), "bead_count": sample.bead_count}


class PointsSource:
    """Every image of ``root/images`` with its bead centres in ``root/points/<stem>.csv`` (:func:`read_points`),
    a disk of ``bead_diameter`` px at each (a number, or ``auto``: estimated from each frame); indexed by a cached
    manifest and read on demand. ``sizing``, as for :class:`~beadseg.data.folder.FolderSource`, reads each frame
    at a model's bead size; ``plane`` as for it."""

    def __init__(self, root: str | Path, images: str = "images", points: str = "points",
                 bead_diameter: float | str = "auto", workers: int | None = None, plane=None) -> None:
        self.root, self.images, self.points, self.workers = Path(root), images, points, workers
        self.plane = PlaneChoice.from_config(plane)
        self.bead_diameter = bead_diameter
        self.sizing: BeadSizing | None = None

    def pairs(self) -> list[tuple[Path, Path]]:
        image_dir, points_dir = self.root / self.images, self.root / self.points
        for folder in (image_dir, points_dir):
            if not folder.is_dir():
                raise BeadDataError(f"data folder {folder} does not exist: data.root must hold {self.images}/ and "
                                    f"{self.points}/ (one CSV of bead centres per image)")
        points = {path.stem: path for path in sorted(points_dir.glob("*.csv"))}
        return pair_by_stem({image_name(path): path for path in list_images(image_dir)}, points, "points file",
                            image_dir, points_dir)

    def entries(self) -> list[dict]:
        """The manifest: one row per image (name, files, stamps, height, width, dtype, vmin, vmax, bead_count)."""
        items = [{"name": image_name(image), "files": {"image": image, "points": points}}
                 for image, points in self.pairs()]
        key = f"points-{self.images}-{self.points}-{self.bead_diameter}{self.plane.key()}"
        rows = build_manifest(items, partial(measure_points, diameter=self.bead_diameter, plane=self.plane),
                              manifest_path(self.root, key), self.workers, f"indexing {self.root.name}")
        if not any(row["bead_count"] for row in rows):
            raise BeadDataError(f"every points file in {self.root / self.points} is empty: there is nothing to learn")
        return rows

    def read(self, row: dict) -> BeadSample:
        check_unchanged(row)
        return load_points_pair(Path(row["files"]["image"]), Path(row["files"]["points"]), self.bead_diameter,
                                self.sizing, self.plane)

    def load(self) -> list[BeadSample]:
        """Every sample in memory (small data sets); training reads them on demand instead."""
        return [self.read(row) for row in self.entries()]


def annotated_folder(root: str | Path, annotations: str = "masks", images: str = "images",
                     bead_diameter: float | str = "auto", plane=None) -> FolderSource | PointsSource:
    """The folder source of a data set annotated by ``masks`` (``root/masks/``) or by ``points``
    (``root/points/``, disks of ``bead_diameter``): what ``data.annotations`` chooses for the folder presets.

    Examples
    --------
    >>> type(annotated_folder("data", "points")).__name__
    'PointsSource'
    """
    if annotations == "points":
        return PointsSource(root, images, "points", bead_diameter, plane=plane)
    if annotations == "masks":
        return FolderSource(root, images, "masks", plane=plane)
    raise ValueError(f"data.annotations={annotations!r}: masks or points")
