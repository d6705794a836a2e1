"""Microscope files through bioio (OME-TIFF and OME-Zarr in the base install; ND2, CZI, LIF with their extras):
one 2-D plane chosen by scene, channel, z and time, and the pixel size in µm from the metadata.

Which plane to read (and the pixel size of files that carry none) is set once per command from its ``image``
config (:func:`configure`) and kept in environment variables, so that loader workers and DDP processes,
however they are started, read the same plane.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

log = logging.getLogger(__name__)

# suffix: the pip extra whose bioio plugin reads it
MICROSCOPE_FORMATS = {".ome.tif": "bioio-ome-tiff", ".ome.tiff": "bioio-ome-tiff", ".ome.zarr": "bioio-ome-zarr",
                      ".zarr": "bioio-ome-zarr",
                      ".nd2": "bioio-nd2", ".czi": "bioio-czi", ".lif": "bioio-lif"}
EXTRAS = {"bioio-nd2": "nd2", "bioio-czi": "czi", "bioio-lif": "lif"}
ENV_PREFIX = "BEADSEG_IMAGE_"


class MicroscopeError(ValueError):
    """A microscope file that cannot give one plane (or a pixel size); the message names the file and the fix."""


class InvalidMetadata(MicroscopeError):
    """A microscope file its installed reader refuses: the metadata break the format, or there is no image."""


def microscope_format(path: str | Path) -> str | None:
    """The microscope suffix of ``path`` (``.ome.tif``, ``.nd2``, ...), or None for a plain image."""
    name = Path(path).name.lower()
    return next((suffix for suffix in MICROSCOPE_FORMATS if name.endswith(suffix)), None)


def ome_tiff(path: str | Path) -> bool:
    """An OME-TIFF: a plain TIFF reader still reads its pixels when its OME metadata are refused."""
    return microscope_format(path) in (".ome.tif", ".ome.tiff")


@dataclass
class PlaneChoice:
    """Which plane of a microscope file to read: ``scene`` and ``channel`` by name or index, ``z`` and ``t`` by
    index. None is fine where the file has one; where it has several, the message lists them. ``pixel_size_um``
    is used for files whose metadata has none; ``require_pixel_size`` makes its absence an error."""

    scene: str | int | None = None
    channel: str | int | None = None
    z: int | None = None
    t: int | None = None
    pixel_size_um: float | None = None
    require_pixel_size: bool = False

    def to_environment(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            key = ENV_PREFIX + field.name.upper()
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = str(value)

    @classmethod
    def from_config(cls, image_config) -> PlaneChoice:
        """The reading settings of a command's ``image`` config (its bead size settings are not the reader's)."""
        names = {field.name for field in fields(cls)}
        return cls(**{key: value for key, value in dict(image_config or {}).items() if key in names})

    @classmethod
    def from_environment(cls) -> PlaneChoice:
        values: dict[str, Any] = {}
        for field in fields(cls):
            raw = os.environ.get(ENV_PREFIX + field.name.upper())
            if raw is None:
                continue
            if field.name == "pixel_size_um":
                values[field.name] = float(raw)
            elif field.name == "require_pixel_size":
                values[field.name] = raw == "True"
            elif field.name in ("z", "t") or raw.lstrip("-").isdigit():
                values[field.name] = int(raw)
            else:
                values[field.name] = raw
        return cls(**values)


def usable_size(size) -> bool:
    """A pixel size that can scale areas: a finite number above 0."""
    return isinstance(size, (int, float)) and math.isfinite(size) and size > 0


def configure(image_config) -> PlaneChoice:
    """Set the plane choice of this process and its children from a command's ``image`` config."""
    choice = PlaneChoice.from_config(image_config)
    if choice.pixel_size_um is not None and not usable_size(choice.pixel_size_um):
        raise MicroscopeError(f"image.pixel_size_um={choice.pixel_size_um}: give the pixel size in µm, a finite "
                              "number > 0")
    choice.to_environment()
    return choice


def _pick(kind: str, wanted, available: list, path: Path, key: str):
    """The index of ``wanted`` (a name or an index) among ``available``; a clear error when ambiguous or absent."""
    names = [str(a) for a in available]
    if wanted is None:
        if len(available) == 1:
            return 0
        raise MicroscopeError(f"{path} holds {len(available)} {kind}s ({', '.join(names)}): choose one with "
                              f"{key}=NAME or {key}=INDEX")
    if str(wanted) in names:
        return names.index(str(wanted))
    if isinstance(wanted, int) and -len(available) <= wanted < len(available):
        return wanted % len(available)
    raise MicroscopeError(f"{path} has no {kind} {wanted!r}; it holds {', '.join(names)} ({key}=NAME or INDEX)")


def _bioimage(path: Path):
    suffix = microscope_format(path) or ".ome.tif"
    try:
        from bioio import BioImage
        from bioio_base.exceptions import UnsupportedFileFormatError
    except ImportError as error:
        raise ImportError(f"reading {path} needs bioio: pip install bioio {MICROSCOPE_FORMATS[suffix]}") from error
    try:
        return BioImage(path)
    except UnsupportedFileFormatError as error:
        plugin = MICROSCOPE_FORMATS[suffix]
        if importlib.util.find_spec(plugin.replace("-", "_")) is not None:  # installed: the file is the problem
            raise InvalidMetadata(f"{plugin} (installed) cannot open {path}: its metadata break the format (e.g. "
                                  "a pixel size of 0 or below) or it holds no image") from error
        extra = f"pip install 'beadseg[{EXTRAS[plugin]}]' (or {plugin})" if plugin in EXTRAS else f"pip install {plugin}"
        raise MicroscopeError(f"no installed bioio reader opens {path}: {extra}, or check that the file is "
                              f"a {suffix} file at all") from error
    except Exception as error:  # each reader raises its own type: name the file whatever it was
        raise MicroscopeError(f"cannot read microscope file {path}: {str(error).splitlines()[0] if str(error) else type(error).__name__}") from error


def _scene(path: Path, choice: PlaneChoice):
    image = _bioimage(path)
    image.set_scene(_pick("scene", choice.scene, list(image.scenes), path, "image.scene"))
    return image


def read_plane(path: str | Path, choice: PlaneChoice | None = None) -> np.ndarray:
    """One 2-D plane (Y, X) of a microscope file, as ``choice`` (default: this command's ``image`` config) picks."""
    path = Path(path)
    choice = choice or PlaneChoice.from_environment()
    image = _scene(path, choice)
    dims = image.dims
    channel = _pick("channel", choice.channel, list(image.channel_names or range(dims.C)), path, "image.channel")
    z = _pick("z-plane", choice.z, list(range(dims.Z)), path, "image.z")
    t = _pick("time point", choice.t, list(range(dims.T)), path, "image.t")
    return np.asarray(image.get_image_data("YX", C=channel, Z=z, T=t))


def metadata_pixel_size(path: Path, choice: PlaneChoice) -> float | None:
    """The pixel size (µm) in a microscope file's metadata (read lazily: no pixel data is loaded); None, with a
    warning, for an OME-TIFF whose metadata its reader refuses (its pixels are read as a plain TIFF)."""
    try:
        size = _scene(path, choice).physical_pixel_sizes.X
    except InvalidMetadata as error:
        if not ome_tiff(path):
            raise
        log.warning("%s: using image.pixel_size_um (%s)", error, choice.pixel_size_um)
        return None
    return float(size) if size else None


def tiff_pixel_size(path: Path) -> float | None:
    """The pixel size in µm a plain TIFF records: ImageJ's ``unit`` with the resolution tags (as Fiji writes)."""
    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            unit = (tif.imagej_metadata or {}).get("unit", "")
            resolution = page.tags.get("XResolution")
            unit_tag = page.tags.get("ResolutionUnit")
            if resolution is None:
                return None
            numerator, denominator = resolution.value
            per_unit = numerator / denominator if denominator else 0
            if not per_unit:
                return None
            if unit in ("micron", "µm", "um", "\\u00B5m"):
                return 1.0 / per_unit
            if unit_tag is not None and int(unit_tag.value) == 3:  # pixels per centimetre
                return 1e4 / per_unit if per_unit > 1 else None  # 1 px/cm: no real resolution written
    except (OSError, tifffile.TiffFileError, KeyError, ValueError):
        return None
    return None


def pixel_size_um(path: str | Path, choice: PlaneChoice | None = None) -> float | None:
    """The pixel size of an image file in µm: from its metadata, else ``image.pixel_size_um``; None when neither
    says (an error naming the file when ``image.require_pixel_size`` is set)."""
    path = Path(path)
    choice = choice or PlaneChoice.from_environment()
    if microscope_format(path):
        found = metadata_pixel_size(path, choice)
    elif path.suffix.lower() in (".tif", ".tiff"):
        found = tiff_pixel_size(path)
    else:
        found = None
    if found is not None and not usable_size(found):
        log.warning("%s records a pixel size of %s µm, which cannot be one: using image.pixel_size_um (%s) instead",
                    path, found, choice.pixel_size_um)
        found = None
    size = found or choice.pixel_size_um
    if size is None and choice.require_pixel_size:
        raise MicroscopeError(f"{path} records no pixel size and none was given: pass image.pixel_size_um=MICRONS "
                              "(or image.require_pixel_size=false for sizes in pixels only)")
    return size
