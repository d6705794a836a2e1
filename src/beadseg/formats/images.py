"""What prediction writes per image: masks, instance labels, maps and overlays, each written whole or not at all.

Every file is written under a temporary name and renamed into place, so an interrupted run never leaves a file
that a resumed run would trust. Arrays larger than ``LARGE`` pixels (memory maps) are written tile by tile.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from beadseg import plots
from beadseg.files import atomic_write
from beadseg.settings import chosen
from beadseg.system import release_pages

LARGE = 4096 * 4096  # pixels: above this, maps live in memory maps and are written tile by tile
TIFF_TILE = 512


def _tiles(array: np.ndarray, convert: Callable[[np.ndarray], np.ndarray], dtype) -> Iterator[np.ndarray]:
    for top in range(0, array.shape[0], TIFF_TILE):
        for left in range(0, array.shape[1], TIFF_TILE):
            tile = np.zeros((TIFF_TILE, TIFF_TILE), dtype)
            block = convert(np.asarray(array[top : top + TIFF_TILE, left : left + TIFF_TILE]))
            tile[: block.shape[0], : block.shape[1]] = block
            yield tile
        release_pages(array)


# label_format: the suffix of the mask and instance files (the one list of label formats)
LABEL_FORMATS = {"tiff": ".tif", "ome-tiff": ".ome.tif", "ome-zarr": ".ome.zarr"}


def label_suffix(label_format: object) -> str:
    """The file suffix of ``label_format``, a name of :data:`LABEL_FORMATS` (else refused naming the key).

    Examples
    --------
    >>> label_suffix("ome-tiff")
    '.ome.tif'
    """
    return chosen(LABEL_FORMATS, label_format, "label_format")


def write_tiff(array: np.ndarray, path: Path, convert: Callable[[np.ndarray], np.ndarray], dtype,
               *, pixel_size_um: float | None = None, compression: str | None = "zlib") -> Path:
    """``convert(array)`` as a TIFF of ``dtype`` (``compression``: zlib, Fiji reads it; ``none``); large arrays go
    tile by tile (bounded memory). With a pixel size, Fiji opens it calibrated in µm: a ``.ome.tif`` name gets OME
    metadata, a plain ``.tif`` ImageJ's own (resolution and ``unit=um``), or where ImageJ's format cannot hold it
    (tiles, 32-bit integers) resolution tags in centimetres. Without a pixel size a plain ``.tif`` says its unit is
    ``pixel`` (ImageJ shows a blank unit otherwise)."""
    ome = path.name.endswith(".ome.tif")
    options: dict[str, Any] = {"compression": None if compression in (None, "none") else compression, "ome": ome}
    if ome:
        options["metadata"] = {"axes": "YX", **({"PhysicalSizeX": pixel_size_um, "PhysicalSizeY": pixel_size_um,
                                                 "PhysicalSizeXUnit": "µm", "PhysicalSizeYUnit": "µm"}
                                                if pixel_size_um else {})}
    elif array.size <= LARGE and np.dtype(dtype) in (np.uint8, np.uint16, np.float32):
        options |= {"imagej": True, "resolution": (1 / (pixel_size_um or 1), 1 / (pixel_size_um or 1)),
                    "metadata": {"unit": "um" if pixel_size_um else "pixel", "axes": "YX"}}
    elif pixel_size_um:
        options |= {"resolution": (1e4 / pixel_size_um, 1e4 / pixel_size_um), "resolutionunit": "CENTIMETER"}
    with atomic_write(path) as partial:
        if array.size > LARGE:
            tifffile.imwrite(partial, _tiles(array, convert, dtype), shape=array.shape, dtype=dtype,
                             tile=(TIFF_TILE, TIFF_TILE), **options)
        else:
            tifffile.imwrite(partial, convert(np.asarray(array)).astype(dtype), **options)
    return path


def write_ome_zarr(array: np.ndarray, path: Path, convert: Callable[[np.ndarray], np.ndarray], dtype,
                   *, pixel_size_um: float | None = None, compression: str | None = None, chunk: int = 1024) -> Path:
    """``convert(array)`` as an OME-Zarr image (axes y, x; pixel size in µm when known; the writer's own
    compression), written band by band (frames of any size, bounded memory) into a temporary folder renamed into
    place."""
    from bioio_ome_zarr.writers import OMEZarrWriter

    size = [pixel_size_um, pixel_size_um] if pixel_size_um else None
    with atomic_write(path) as partial:
        writer = OMEZarrWriter(str(partial), level_shapes=array.shape, dtype=np.dtype(dtype),
                               chunk_shape=(min(chunk, array.shape[0]), min(chunk, array.shape[1])), zarr_format=2,
                               axes_names=["y", "x"], axes_types=["space", "space"],
                               axes_units=["micrometer", "micrometer"] if size else None, physical_pixel_size=size)
        for top in range(0, array.shape[0], chunk):
            band = convert(np.asarray(array[top : top + chunk])).astype(dtype)
            writer.write_region(band, (slice(top, top + len(band)), slice(0, array.shape[1])))
            release_pages(array)
    return path



LABEL_WRITERS = {".tif": write_tiff, ".ome.tif": write_tiff, ".ome.zarr": write_ome_zarr}  # by the suffix written

def write_labelled(array: np.ndarray, path: Path, convert: Callable[[np.ndarray], np.ndarray], dtype,
                   *, pixel_size_um: float | None = None, compression: str | None = "zlib") -> Path:
    """A label-like image in the format its name says (:data:`LABEL_WRITERS`: ``.ome.zarr``, ``.ome.tif`` or plain
    ``.tif``)."""
    suffix = max((suffix for suffix in LABEL_WRITERS if path.name.endswith(suffix)), key=len, default=".tif")
    return LABEL_WRITERS[suffix](array, path, convert, dtype, pixel_size_um=pixel_size_um, compression=compression)


def label_dtype(bead_count: int):
    return np.uint16 if bead_count < 2**16 else np.uint32


def write_labels(labels: np.ndarray, path: Path, bead_count: int, pixel_size_um: float | None = None,
                 compression: str | None = "zlib") -> Path:
    dtype = label_dtype(bead_count)
    return write_labelled(
        labels, path, lambda block: block.astype(dtype), dtype, pixel_size_um=pixel_size_um, compression=compression
    )


def write_mask(
    labels: np.ndarray, path: Path, pixel_size_um: float | None = None, compression: str | None = "zlib"
) -> Path:
    """0/255 bead mask from instance labels."""
    return write_labelled(
        labels,
        path,
        lambda block: (block > 0).astype(np.uint8) * 255,
        np.uint8,
        pixel_size_um=pixel_size_um,
        compression=compression,
    )


def write_map(values: np.ndarray, path: Path) -> Path:
    return write_tiff(values, path, lambda block: block.astype(np.float16), np.float16)


def overlay_png(image: np.ndarray, labels: np.ndarray, path: Path, max_side: int = 4096, *, count: int | None = None,
                compress_level: int = 0, rejected: list[dict] | None = None) -> Path:
    """The image in gray with every bead's outline in yellow and each ``rejected`` object (debris, particles: rows
    with a centroid and an equivalent diameter) circled in magenta, under a banner with the bead count and a
    legend, as a palette PNG (``compress_level`` 0: about 13 ms for a 1440x1080 frame, 1: 45 ms; huge frames: every
    k-th pixel)."""
    picture = plots.count_overlay(image, labels, int(labels.max()) if count is None else count, max_side, rejected)
    release_pages(image, labels)
    with atomic_write(path) as partial:
        picture.save(partial, format="PNG", compress_level=compress_level)
    return path


def masked_mean(values: np.ndarray | None, labels: np.ndarray, band: int = 1024) -> tuple[float | None, float]:
    """Mean of ``values`` over the beads, and the fraction of pixels that are bead, in row bands."""
    total, count = 0.0, 0
    for top in range(0, labels.shape[0], band):
        beads = np.asarray(labels[top : top + band]) > 0
        count += int(beads.sum())
        if values is not None:
            total += float(np.asarray(values[top : top + band], np.float64)[beads].sum())
        release_pages(values, labels)
    mean = total / count if values is not None and count else None
    return mean, count / labels.size
