"""Open a ``beadseg-predict`` output folder in napari as stacks a slider pages through: for the frames of one size,
the input images (where their files are still there), the bead instance labels, a points layer of bead centres
carrying every ``objects.csv`` column, each frame's count as text, and with ``rois=geojson`` the bead outlines as
shapes; at the pixel size when it is known (the scale bar then says µm, else pixel). From 64 frames on, images
and labels are read lazily (dask), a page when it is shown.

A table or outline file that cannot be read (missing, empty, not text, a broken row or a missing column) is named
in the log and left out; the rest of the folder still opens. Outlines (GeoJSON: pixel corners) are drawn on napari's
pixel centres, half a pixel up and left of the file's numbers, so that they sit on the labels.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from beadseg.data.io import BeadDataError, read_image
from beadseg.files import file_stem
from beadseg.formats.images import LABEL_FORMATS
from beadseg.tables import read_csv

NUMERIC = ("bead_id", "centroid_y", "centroid_x", "area", "equivalent_diameter", "circularity", "mean_intensity",
           "mean_probability", "contrast_snr", "area_um2", "equivalent_diameter_um")
log = logging.getLogger(__name__)


def is_prediction_folder(path: Path) -> bool:
    return path.is_dir() and (path / "counts.csv").is_file() and (path / "instances").is_dir()


def get_reader(path):
    """napari's reader hook: :func:`read_predictions` for a beadseg-predict output folder, else None."""
    if isinstance(path, list):
        path = path[0] if len(path) == 1 else None
    return read_predictions if path is not None and is_prediction_folder(Path(path)) else None


def _instances(folder: Path, name: str) -> Path | None:
    stem = file_stem(name)  # as beadseg-predict names a frame's files
    return next((folder / "instances" / f"{stem}{suffix}" for suffix in LABEL_FORMATS.values()
                 if (folder / "instances" / f"{stem}{suffix}").exists()), None)


def _number(value: str | None) -> float:
    """A table cell as a number; empty or not a number: NaN."""
    try:
        return float(value) if value not in ("", None) else np.nan
    except (TypeError, ValueError):
        return np.nan


def _table(path: Path, needs: tuple[str, ...]) -> list[dict]:
    """The rows of ``path`` holding the columns ``needs``, or none when it cannot be read (named in the log)."""
    try:
        rows = read_csv(path)
    except (OSError, UnicodeDecodeError, ValueError, csv.Error) as error:
        log.warning("beadseg reader: skipped %s: %s", path, error)
        return []
    missing = [column for column in needs if rows and column not in rows[0]]
    if missing:
        log.warning("beadseg reader: skipped %s: it has no column %s", path, ", ".join(missing))
        return []
    return rows


def _lazy_stack(files: list[Path], shape: tuple[int, int], dtype) -> object:
    """A (frames, H, W) dask array reading each frame when napari shows it."""
    import dask
    import dask.array as da

    return da.stack([da.from_delayed(dask.delayed(read_image)(file), shape, dtype) for file in files])


def _header(file: Path | None) -> tuple[tuple[int, int], np.dtype] | None:
    """A label file's size and type, from its header where it is a TIFF (the pixels are read when shown); None
    when it cannot be read (named in the log)."""
    if file is None:
        return None
    if file.suffix.lower() in (".tif", ".tiff"):
        try:
            with tifffile.TiffFile(file) as tif:
                page = tif.pages[0]
                height, width = page.shape[:2]
                return (height, width), np.dtype(page.dtype)
        except (OSError, ValueError, IndexError, tifffile.TiffFileError) as error:
            log.warning("beadseg reader: skipped %s: %s", file, error)
            return None
    data = _readable(file)
    return None if data is None else (data.shape, data.dtype)


def _readable(file: Path | None, shape: tuple[int, int] | None = None) -> np.ndarray | None:
    """The frame in ``file`` when it reads (and has the size ``shape``), else None (named in the log)."""
    if file is None:
        return None
    try:
        data = read_image(file)
    except BeadDataError as error:  # one unreadable file does not hide the folder's other images
        log.warning("beadseg reader: skipped %s: %s", file, error)
        return None
    if shape is not None and data.shape != shape:
        log.warning("beadseg reader: skipped %s: its size %s is not the frame's %s", file, data.shape, shape)
        return None
    return data


def read_predictions(path) -> list[tuple]:
    """Layer data tuples ``(data, kwargs, kind)``: per frame size, stacks of images, labels, centres (frame index
    first), counts and outlines; a frame whose input file is gone shows as a blank image page."""
    folder = Path(path if not isinstance(path, list) else path[0])
    counts = _table(folder / "counts.csv", ("image",))
    if not counts:
        log.warning("beadseg reader: %s lists no frame: nothing to show", folder / "counts.csv")
    objects: dict[str, list[dict]] = {}
    for row in _table(folder / "objects.csv", ("image", "centroid_y", "centroid_x")):
        objects.setdefault(row["image"], []).append(row)
    groups: dict[tuple, list[tuple[dict, Path, np.dtype]]] = {}
    for row in counts:  # frames grouped by size (the label files' headers say it), in the tables' order
        labels_file = _instances(folder, row["image"])
        header = _header(labels_file)
        if labels_file is not None and header is not None:
            groups.setdefault(header[0], []).append((row, labels_file, header[1]))
    layers: list[tuple[Any, dict[str, Any], str]] = []
    for shape, frames in groups.items():
        suffix = "" if len(groups) == 1 else f" {shape[0]}x{shape[1]}"
        size = _number(frames[0][0].get("pixel_size_um", ""))
        calibrated = bool(np.isfinite(size) and size > 0)
        common = {
            "scale": (1.0, size, size) if calibrated else (1.0, 1.0, 1.0),
            "units": ("pixel", "µm", "µm") if calibrated else ("pixel", "pixel", "pixel"),
            "metadata": {"beadseg_folder": str(folder), "frames": [r for r, _, _ in frames]},
        }
        images = [_readable(Path(row["path"]), shape) if row.get("path") and Path(row["path"]).exists() else None
                  for row, _, _ in frames]
        if any(image is not None for image in images):
            dtype = next(image.dtype for image in images if image is not None)
            pages = [image if image is not None else np.zeros(shape, dtype) for image in images]
            layers.append(
                (
                    np.stack(pages)
                    if len(pages) < 64
                    else _lazy_stack([Path(row["path"]) for row, _, _ in frames], shape, dtype),
                    {"name": f"images{suffix}", **common},
                    "image",
                )
            )
        label_files = [file for _, file, _ in frames]
        labels = (np.stack([read_image(file).astype(np.int32) for file in label_files]) if len(frames) < 64 else
                  _lazy_stack(label_files, shape, frames[0][2]))
        layers.append((labels, {"name": f"beads{suffix}", **common}, "labels"))
        beads = [(index, b) for index, (row, _, _) in enumerate(frames) for b in objects.get(row["image"], [])]
        features: dict[str, np.ndarray] = {
            column: np.array([_number(b[column]) for _, b in beads])
            for column in NUMERIC
            if beads and column in beads[0][1]
        }
        features["image"] = np.array([b["image"] for _, b in beads], dtype=object)
        centres = np.array([[index, _number(b["centroid_y"]), _number(b["centroid_x"])] for index, b in beads])
        layers.append((centres.reshape(-1, 3), {"name": f"bead centres{suffix}", "features": features, "size": 4,
                                                "face_color": "yellow", **common}, "points"))
        layers.append((np.array([[index, 0, 0] for index in range(len(frames))], float),
                       {"name": f"counts{suffix}", "size": 0, "features": {
                           "label": [f"{row['image']}: {row.get('count') or '?'} beads" for row, _, _ in frames]},
                        "text": {"string": "{label}", "anchor": "upper_left", "size": 14, "color": "yellow"},
                        **common}, "points"))
        outlines = _outlines(folder, [row["image"] for row, _, _ in frames])
        if outlines:
            layers.append((outlines, {"name": f"bead outlines{suffix}", "shape_type": "polygon", "edge_color": "cyan",
                                      "face_color": "transparent", "edge_width": 0.5, **common}, "shapes"))
    return layers


MAX_OUTLINE_BYTES = 512 * 2**20  # a GeoJSON file of outlines larger than this is skipped, said in the log


def _outlines(folder: Path, names: list[str]) -> list[np.ndarray]:
    """The beads' outlines of ``rois/<name>.geojson`` (``rois=geojson``) as (frame, y, x) polygons in napari's
    coordinates: GeoJSON counts from the top-left pixel's corner, napari from its centre (half a pixel less)."""
    polygons = []
    for index, name in enumerate(names):
        path = folder / "rois" / f"{file_stem(name)}.geojson"
        if not path.is_file():
            continue
        try:
            if path.stat().st_size > MAX_OUTLINE_BYTES:
                raise ValueError(f"{path.stat().st_size / 2**20:.0f} MB, more than {MAX_OUTLINE_BYTES / 2**20:.0f} MB")
            rings = [np.asarray(feature["geometry"]["coordinates"][0][:-1], float)  # (x, y), closed
                     for feature in json.loads(path.read_text())["features"]]
            polygons += [np.column_stack([np.full(len(ring), index), ring[:, 1] - 0.5, ring[:, 0] - 0.5])
                         for ring in rings if ring.ndim == 2 and ring.shape[1] == 2 and len(ring) >= 3]
        except (OSError, UnicodeDecodeError, ValueError, KeyError, IndexError, TypeError, RecursionError) as error:
            log.warning("beadseg reader: skipped the outlines of %s: %s", path, str(error)[:200])
    return polygons
