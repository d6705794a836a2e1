"""Counts inside drawn regions: rectangles and polygons a user drew in QuPath (GeoJSON) or Fiji (an ImageJ ROI
set), or as a napari shapes layer, each bead counted in the first region that holds its centre; each region's
area (µm² with a pixel size), beads per mm², and with a counting chamber's depth beads per µL."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from skimage.measure import points_in_poly

from beadseg.data.io import BeadDataError, image_name, open_image
from beadseg.data.readers import DEFAULT_PLANE, PlaneChoice
from beadseg.files import atomic_write
from beadseg.formats.rois import ROI_FORMATS, polygon_area

MAX_REGION_BYTES = 64 << 20  # one region file
MAX_REGIONS = 10_000  # regions in one file
COLUMNS = ["image", "region", "count", "area_px", "area_um2", "beads_per_mm2", "beads_per_ul"]


@dataclass
class Region:
    """A named closed polygon, its vertices ``(x, y)`` in pixel-corner coordinates (Fiji's and QuPath's)."""

    name: str
    vertices: np.ndarray

    @property
    def area(self) -> float:
        """Its area in px² (shoelace)."""
        return abs(polygon_area(self.vertices[:, ::-1]))


def read_regions(path: str | Path) -> list[Region]:
    """The regions of a GeoJSON file (``.geojson``: polygons and rectangles, a multipolygon's parts each a region;
    holes are not subtracted) or an ImageJ ROI set (``_rois.zip`` or ``.roi``), named as the file names them.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "a.geojson"
    >>> square = [[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]]
    >>> _ = path.write_text(json.dumps({"type": "FeatureCollection", "features": [{"type": "Feature",
    ...     "geometry": {"type": "Polygon", "coordinates": [square]}, "properties": {"name": "left"}}]}))
    >>> [(region.name, region.area) for region in read_regions(path)]
    [('left', 100.0)]
    """
    path = Path(path)
    if path.stat().st_size > MAX_REGION_BYTES:
        raise BeadDataError(f"region file {path} is larger than {MAX_REGION_BYTES >> 20} MB")
    try:
        regions = _geojson_regions(path) if path.suffix.lower() in (".geojson", ".json") else _imagej_regions(path)
    except (ValueError, KeyError, TypeError, IndexError, OSError) as error:
        raise BeadDataError(f"region file {path} cannot be read as regions: {error}") from None
    if len(regions) > MAX_REGIONS:
        raise BeadDataError(f"region file {path} holds {len(regions)} regions, more than {MAX_REGIONS}")
    for region in regions:
        if len(region.vertices) < 3 or not np.isfinite(region.vertices).all():
            raise BeadDataError(f"region file {path}: region {region.name!r} is no polygon")
    return regions


def _geojson_regions(path: Path) -> list[Region]:
    data = json.loads(path.read_text())
    features = data["features"] if data.get("type") == "FeatureCollection" else [data]
    regions = []
    for index, feature in enumerate(features, start=1):
        geometry, properties = feature["geometry"], feature.get("properties") or {}
        name = str(properties.get("name") or (properties.get("classification") or {}).get("name") or f"region {index}")
        polygons = {"Polygon": [geometry["coordinates"]],
                    "MultiPolygon": geometry["coordinates"]}.get(geometry["type"], [])
        for part, rings in enumerate(polygons, start=1):
            regions.append(Region(name if len(polygons) == 1 else f"{name} {part}", np.asarray(rings[0], float)))
    return regions


def _imagej_regions(path: Path) -> list[Region]:
    from roifile import roiread

    rois = roiread(path)
    rois = rois if isinstance(rois, list) else [rois]
    return [Region(roi.name or f"region {index}", np.asarray(roi.coordinates(), float).reshape(-1, 2))
            for index, roi in enumerate(rois, start=1)]


def region_file(folder: Path, name: str) -> Path | None:
    """The region file of image ``name`` in ``folder``: ``<name>.geojson`` or ``<name>_rois.zip``."""
    found = [folder / f"{name}{suffix}" for suffix in ROI_FORMATS.values() if (folder / f"{name}{suffix}").is_file()]
    if len(found) > 1:
        raise BeadDataError(f"{found[0]} and {found[1]} both give regions for {name}: keep one")
    return found[0] if found else None


def frame_regions(folder: str | Path, files: list[Path], plane: PlaneChoice = DEFAULT_PLANE) -> dict[str, list[Region]]:
    """The regions of every image in ``files`` that has a region file in ``folder``, each checked against its
    image's size (a region reaching outside is refused: a file for another image), before any work.

    Raises
    ------
    BeadDataError
        ``folder`` is missing, or a region file is unreadable, holds no region or does not fit its image.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise BeadDataError(f"regions={folder}: no such folder (it holds <image>.geojson or <image>_rois.zip)")
    by_image = {}
    for path in files:
        name = image_name(path)
        found = region_file(folder, name)
        if found is None:
            continue
        regions = read_regions(found)
        if not regions:
            raise BeadDataError(f"region file {found} holds no region")
        height, width = open_image(path, plane).shape[:2]
        for region in regions:
            x, y = region.vertices.T
            if x.min() < -0.5 or y.min() < -0.5 or x.max() > width + 0.5 or y.max() > height + 0.5:
                raise BeadDataError(f"region file {found}: region {region.name!r} reaches ({x.max():g}, {y.max():g})"
                                    f" (x, y), outside its image {path.name} of {width}x{height} px: a region file "
                                    "for another image?")
        by_image[name] = regions
    return by_image


def region_counts(regions: list[Region], centres: np.ndarray) -> list[int]:
    """How many of the bead ``centres`` (``(y, x)``, pixel centres) each region holds; a bead in several regions
    counts in the first.

    Examples
    --------
    >>> halves = [Region("left", np.array([[0, 0], [5, 0], [5, 10], [0, 10]], float)),
    ...           Region("right", np.array([[5, 0], [10, 0], [10, 10], [5, 10]], float))]
    >>> region_counts(halves, np.array([[2.0, 1.0], [3.0, 3.6], [7.0, 5.2], [9.0, 9.0]]))
    [2, 2]
    """
    corners = np.rint(np.asarray(centres, float).reshape(-1, 2))[:, ::-1] + 0.5  # (x, y) of the pixel's centre
    unclaimed = np.ones(len(corners), bool)
    counts = []
    for region in regions:
        inside = unclaimed & points_in_poly(corners, region.vertices) if len(corners) else unclaimed
        counts.append(int(inside.sum()))
        unclaimed &= ~inside
    return counts


def region_rows(name: str, regions: list[Region], centres: np.ndarray, pixel_size_um: float | None,
                depth_um: float | None) -> list[dict]:
    """``regions.csv``'s rows of one image: its counted beads' ``centres`` per region, with areas and densities."""
    rows = []
    for region, count in zip(regions, region_counts(regions, centres)):
        area_um2 = region.area * pixel_size_um**2 if pixel_size_um else None
        per_mm2 = count / area_um2 * 1e6 if area_um2 else None
        per_ul = count / (area_um2 * depth_um) * 1e9 if area_um2 and depth_um else None
        rows.append({"image": name, "region": region.name, "count": count, "area_px": round(region.area, 2),
                     "area_um2": "" if area_um2 is None else round(area_um2, 3),
                     "beads_per_mm2": "" if per_mm2 is None else round(per_mm2, 2),
                     "beads_per_ul": "" if per_ul is None else round(per_ul, 1)})
    return rows


def write_region_counts(out: Path, regions: dict[str, list[Region]], depth_um: float | None = None) -> Path:
    """``regions.csv`` of a prediction folder: each region's counted beads (``objects.csv``'s ``counted``), from
    the pixel size ``counts.csv`` states."""
    with open(out / "counts.csv", newline="") as handle:
        sizes = {row["image"]: float(row["pixel_size_um"]) if row.get("pixel_size_um") else None
                 for row in csv.DictReader(handle)}
    centres: dict[str, list[tuple[float, float]]] = {name: [] for name in regions}
    with open(out / "objects.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["image"] in centres and row["counted"] == "True":
                centres[row["image"]].append((float(row["centroid_y"]), float(row["centroid_x"])))
    rows = [row for name in regions if name in sizes
            for row in region_rows(name, regions[name], np.asarray(centres[name]), sizes[name], depth_um)]
    with atomic_write(out / "regions.csv") as partial, open(partial, "w", newline="") as handle:
        writer = csv.DictWriter(handle, COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return out / "regions.csv"
