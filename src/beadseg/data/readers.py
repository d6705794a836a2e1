"""Image readers: one class per input kind, registered in :data:`READERS`, and :func:`reader_for`, the one place
that picks a file's reader (as ``beadseg.formats.images`` and ``beadseg.inference.writers`` pick writers): plain
images (PNG, JPEG, BMP), TIFF, and through bioio OME-TIFF and OME-Zarr (in the base install) and ND2, CZI, LIF
(with their extras): one 2-D plane chosen by scene, channel, z and time, and the pixel size in µm from the
metadata.

What to read of a microscope file, and the pixel size of files that record none, travel with each call as a
:class:`PlaneChoice` (built from a command's ``image`` config), never through the environment: the loader
workers and DDP processes that read frames get it with the data set or the frame list they are handed.
"""

from __future__ import annotations

import importlib.util
import logging
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, fields
from pathlib import Path
from typing import ClassVar

import imageio.v3 as iio
import numpy as np
import tifffile

log = logging.getLogger(__name__)


class MicroscopeError(ValueError):
    """A microscope file that cannot give one plane (or a pixel size); the message names the file and the fix."""


class InvalidMetadata(MicroscopeError):
    """A microscope file its installed reader refuses: the metadata break the format, or there is no image."""


@dataclass(frozen=True)
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

    @classmethod
    def from_config(cls, image_config) -> PlaneChoice:
        """The reading settings of a command's ``image`` config (its bead size settings are not the reader's);
        a :class:`PlaneChoice` as it is.

        Examples
        --------
        >>> PlaneChoice.from_config({"channel": "DAPI", "bead_diameter": "auto"})
        PlaneChoice(scene=None, channel='DAPI', z=None, t=None, pixel_size_um=None, require_pixel_size=False)
        """
        if isinstance(image_config, PlaneChoice):
            return image_config
        names = {field.name for field in fields(cls)}
        return cls(**{key: value for key, value in dict(image_config or {}).items() if key in names})

    def key(self) -> str:
        """What a cached index of frames read with this choice adds to its name ("" for the default choice).

        Examples
        --------
        >>> PlaneChoice().key(), PlaneChoice(channel="DAPI", z=3).key()
        ('', '-channel=DAPI-z=3')
        """
        chosen = [f"{field.name}={getattr(self, field.name)}" for field in fields(self)
                  if field.name in ("scene", "channel", "z", "t") and getattr(self, field.name) is not None]
        return "".join(f"-{part}" for part in chosen)


DEFAULT_PLANE = PlaneChoice()  # the only plane of a file that has one; no pixel size beyond what files record


def usable_size(size) -> bool:
    """A pixel size that can scale areas: a finite number above 0."""
    return isinstance(size, (int, float)) and math.isfinite(size) and size > 0


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


class ImageReader(ABC):
    """One input kind: the file suffixes it reads (``name`` is how messages call it), a file's 2-D plane as
    ``plane`` picks it, the same as a memory map where the kind allows, and the pixel size (µm) the file records."""

    name: ClassVar[str] = ""
    suffixes: ClassVar[tuple[str, ...]] = ()
    microscope: ClassVar[bool] = False  # a microscope format: outputs drop its full suffix (``a.ome.tif``: ``a``)

    @abstractmethod
    def read(self, path: Path, plane: PlaneChoice) -> np.ndarray:
        """The file's 2-D plane as ``plane`` picks it."""

    def open(self, path: Path, plane: PlaneChoice) -> np.ndarray:
        return self.read(path, plane)

    def recorded_pixel_size(self, path: Path, plane: PlaneChoice) -> float | None:
        return None


READERS: list[ImageReader] = []


def register(reader: type[ImageReader]) -> type[ImageReader]:
    """Add a reader to :data:`READERS` (a class decorator)."""
    READERS.append(reader())
    return reader


@register
class PlainImage(ImageReader):
    """PNG, JPEG and BMP through imageio."""

    name, suffixes = "image", (".png", ".jpg", ".jpeg", ".bmp")

    def read(self, path: Path, plane: PlaneChoice) -> np.ndarray:
        return iio.imread(path)


@register
class Tiff(ImageReader):
    """TIFF through tifffile; an uncompressed gray one opens as a read-only memory map; the pixel size Fiji
    records (ImageJ's ``unit`` with the resolution tags)."""

    name, suffixes = "TIFF", (".tif", ".tiff")

    def read(self, path: Path, plane: PlaneChoice) -> np.ndarray:
        return tifffile.imread(path)

    def open(self, path: Path, plane: PlaneChoice) -> np.ndarray:
        try:
            array = tifffile.memmap(path, mode="r")
        except Exception:  # compressed, tiled or odd layouts: read it whole (read names the file on failure)
            return self.read(path, plane)
        return array if array.ndim == 2 else self.read(path, plane)

    def recorded_pixel_size(self, path: Path, plane: PlaneChoice) -> float | None:
        return tiff_pixel_size(path)


class Microscope(ImageReader):
    """A microscope format through bioio and its plugin ``plugin`` (pip extra ``extra``, if beadseg has one)."""

    microscope = True
    plugin: ClassVar[str] = ""
    extra: ClassVar[str | None] = None

    def bioimage(self, path: Path):
        try:
            from bioio import BioImage
            from bioio_base.exceptions import UnsupportedFileFormatError
        except ImportError as error:
            raise ImportError(f"reading {path} needs bioio: pip install bioio {self.plugin}") from error
        try:
            return BioImage(path)
        except UnsupportedFileFormatError as error:
            if importlib.util.find_spec(self.plugin.replace("-", "_")) is not None:  # installed: the file is wrong
                raise InvalidMetadata(f"{self.plugin} (installed) cannot open {path}: its metadata break the format "
                                      "(e.g. a pixel size of 0 or below) or it holds no image") from error
            install = f"pip install 'beadseg[{self.extra}]' (or {self.plugin})" if self.extra else \
                f"pip install {self.plugin}"
            raise MicroscopeError(f"no installed bioio reader opens {path}: {install}, or check that the file is "
                                  f"a {self.name} file at all") from error
        except Exception as error:  # each reader raises its own type: name the file whatever it was
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise MicroscopeError(f"cannot read microscope file {path}: {reason}") from error

    def scene(self, path: Path, plane: PlaneChoice):
        image = self.bioimage(path)
        image.set_scene(_pick("scene", plane.scene, list(image.scenes), path, "image.scene"))
        return image

    def read(self, path: Path, plane: PlaneChoice) -> np.ndarray:
        image = self.scene(path, plane)
        dims = image.dims
        channel = _pick("channel", plane.channel, list(image.channel_names or range(dims.C)), path, "image.channel")
        z = _pick("z-plane", plane.z, list(range(dims.Z)), path, "image.z")
        t = _pick("time point", plane.t, list(range(dims.T)), path, "image.t")
        return np.asarray(image.get_image_data("YX", C=channel, Z=z, T=t))

    def recorded_pixel_size(self, path: Path, plane: PlaneChoice) -> float | None:
        size = self.scene(path, plane).physical_pixel_sizes.X  # metadata only: no pixel data is loaded
        return float(size) if size else None


@register
class OmeTiff(Microscope):
    """OME-TIFF; one whose OME metadata its reader refuses is read as a plain TIFF (named in the log)."""

    name, suffixes, plugin = "OME-TIFF", (".ome.tif", ".ome.tiff"), "bioio-ome-tiff"

    def read(self, path: Path, plane: PlaneChoice) -> np.ndarray:
        try:
            return super().read(path, plane)
        except InvalidMetadata:
            return tifffile.imread(path)  # the pixels are fine; the OME metadata are not

    def recorded_pixel_size(self, path: Path, plane: PlaneChoice) -> float | None:
        try:
            return super().recorded_pixel_size(path, plane)
        except InvalidMetadata as error:
            log.warning("%s: using image.pixel_size_um (%s)", error, plane.pixel_size_um)
            return None


@register
class OmeZarr(Microscope):
    name, suffixes, plugin = "OME-Zarr", (".ome.zarr", ".zarr"), "bioio-ome-zarr"


@register
class Nd2(Microscope):
    name, suffixes, plugin, extra = "ND2", (".nd2",), "bioio-nd2", "nd2"


@register
class Czi(Microscope):
    name, suffixes, plugin, extra = "CZI", (".czi",), "bioio-czi", "czi"


@register
class Lif(Microscope):
    name, suffixes, plugin, extra = "LIF", (".lif",), "bioio-lif", "lif"


SUFFIXES = sorted((suffix for reader in READERS for suffix in reader.suffixes), key=len, reverse=True)


def matched_suffix(path: str | Path) -> str | None:
    """The longest reader suffix ``path``'s name ends with (``.ome.tif`` before ``.tif``), or None.

    Examples
    --------
    >>> matched_suffix("a.OME.TIF"), matched_suffix("a.tif"), matched_suffix("notes.txt")
    ('.ome.tif', '.tif', None)
    """
    name = Path(path).name.lower()
    return next((suffix for suffix in SUFFIXES if name.endswith(suffix)), None)


def reader_for(path: str | Path) -> ImageReader | None:
    """The reader of ``path`` by its suffix, or None where no reader takes it.

    Examples
    --------
    >>> reader_for("plate.nd2").name, reader_for("a.ome.tif").name, reader_for("a.tif").name
    ('ND2', 'OME-TIFF', 'TIFF')
    """
    suffix = matched_suffix(path)
    return next((reader for reader in READERS if suffix in reader.suffixes), None) if suffix else None


def microscope_suffix(path: str | Path) -> str | None:
    """The suffix of a microscope file (``.ome.tif``, ``.nd2``, ...), or None for a plain image or anything else."""
    reader = reader_for(path)
    return matched_suffix(path) if reader is not None and reader.microscope else None


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


def pixel_size_um(path: str | Path, plane: PlaneChoice) -> float | None:
    """The pixel size of an image file in µm: what the file records, else ``plane.pixel_size_um``
    (``image.pixel_size_um``); None when neither says (an error naming the file when ``image.require_pixel_size``
    is set)."""
    path = Path(path)
    reader = reader_for(path)
    found = reader.recorded_pixel_size(path, plane) if reader is not None else None
    if found is not None and not usable_size(found):
        log.warning("%s records a pixel size of %s µm, which cannot be one: using image.pixel_size_um (%s) instead",
                    path, found, plane.pixel_size_um)
        found = None
    size = found or plane.pixel_size_um
    if size is None and plane.require_pixel_size:
        raise MicroscopeError(f"{path} records no pixel size and none was given: pass image.pixel_size_um=MICRONS "
                              "(or image.require_pixel_size=false for sizes in pixels only)")
    return size
