"""Open a ``beadseg-predict`` output folder in napari: per image, the input image, its bead instance labels and a
points layer of bead centres carrying every ``objects.csv`` column, at the pixel size when it is known."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np

from beadseg.data.io import BeadDataError, read_image
from beadseg.inference.outputs import LABEL_FORMATS

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
    return next((folder / "instances" / f"{name}{suffix}" for suffix in LABEL_FORMATS.values()
                 if (folder / "instances" / f"{name}{suffix}").exists()), None)


def _number(value: str) -> float:
    return float(value) if value not in ("", None) else np.nan


def read_predictions(path) -> list[tuple]:
    """Layer data tuples ``(data, kwargs, kind)``: for every image of the folder, image (when its input file is
    still there), labels and bead centres; only the first image's layers are visible."""
    folder = Path(path if not isinstance(path, list) else path[0])
    counts = list(csv.DictReader(open(folder / "counts.csv", newline="")))
    objects: dict[str, list[dict]] = {}
    with open(folder / "objects.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            objects.setdefault(row["image"], []).append(row)
    layers = []
    for index, row in enumerate(counts):
        name, visible = row["image"], index == 0
        size = _number(row.get("pixel_size_um", ""))
        scale = (size, size) if np.isfinite(size) else (1.0, 1.0)
        common = {"scale": scale, "visible": visible, "metadata": {"beadseg_folder": str(folder), **row}}
        source = Path(row.get("path") or "")
        for file, kind, layer_name in ((source if row.get("path") and source.exists() else None, "image", name),
                                       (_instances(folder, name), "labels", f"{name} beads")):
            if file is None:
                continue
            try:
                data = read_image(file)
            except BeadDataError as error:  # one unreadable file does not hide the folder's other images
                log.warning("beadseg reader: skipped %s: %s", file, error)
                continue
            layers.append((data.astype(np.int32) if kind == "labels" else data, {"name": layer_name, **common}, kind))
        beads = objects.get(name, [])
        features = {column: np.array([_number(b[column]) for b in beads]) for column in NUMERIC if beads and column in beads[0]}
        centres = np.array([[_number(b["centroid_y"]), _number(b["centroid_x"])] for b in beads]).reshape(-1, 2)
        layers.append((centres, {"name": f"{name} centres", "features": features, "size": 4, "face_color": "yellow",
                                 **common}, "points"))
    return layers
