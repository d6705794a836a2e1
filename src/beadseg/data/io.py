"""Read bead images and masks, and normalise images by a recipe a checkpoint can remember."""

from __future__ import annotations

import os
import stat
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from skimage.measure import label as measure_label

from beadseg.data.readers import (
    DEFAULT_PLANE,
    SUFFIXES,
    MicroscopeError,
    PlainImage,
    PlaneChoice,
    matched_suffix,
    microscope_suffix,
    reader_for,
)

ANY_CONTENT = PlainImage()  # the reader of a file whose suffix no reader takes


class BeadDataError(ValueError):
    """Bad input data; the message names the file (or folder) and what to do."""


def image_name(path: str | Path) -> str:
    """What outputs and pairings call an image: its file name without the suffix, and without the ``.ome`` of
    ``.ome.tif`` / ``.ome.zarr`` (``a.ome.tif`` and ``a.png`` are both ``a``)."""
    path = Path(path)
    suffix = microscope_suffix(path)
    return path.name[: -len(suffix)] if suffix else path.stem


def list_images(target: str | Path, recursive: bool = False, unique_stems: bool = True) -> list[Path]:
    """The image files a command works on: ``target`` itself, or the images in the folder ``target``
    (sorted; with ``recursive`` also in its sub-folders, hidden ones skipped).

    Outputs are named by file stem, so two files of one folder sharing a stem (``a.png``, ``a.tif``) are refused.
    """
    target = Path(target)
    if not target.is_dir():
        if not target.exists():
            raise BeadDataError(f"{target} does not exist")
        return [target]
    if microscope_suffix(target):  # an OME-Zarr folder is one image
        return [target]
    candidates = target.rglob("*") if recursive else target.iterdir()
    files = sorted(
        path
        for path in candidates
        # a link that leads nowhere (broken, looping) stays in, so that reading it names it like any unreadable input
        if (
            ((path.is_file() or path.is_symlink()) and matched_suffix(path))
            or (path.is_dir() and path.suffix.lower() == ".zarr")
        )
        and not any(
            part.startswith(".") or part.lower().endswith(".zarr") for part in path.relative_to(target).parts[:-1]
        )
        and not path.name.startswith(".")
    )
    if not files:
        raise BeadDataError(f"{target} holds no image ({', '.join(sorted(SUFFIXES))})")
    if unique_stems:
        seen: dict[tuple[Path, str], Path] = {}
        for path in files:
            key = (path.parent, image_name(path))
            if key in seen:
                raise BeadDataError(f"two files share the stem {image_name(path)!r} in {path.parent}: "
                                    f"{seen[key].name}, {path.name} (their outputs would overwrite each other)")
            seen[key] = path
    return files


def file_stamp(path: str | Path) -> list[int]:
    """Size and modification time (ns) of a file: what tells a manifest row that the file is unchanged."""
    stat = os.stat(path)
    return [stat.st_size, stat.st_mtime_ns]


MAGIC = {b"\x89PNG": "PNG", b"II*\x00": "TIFF", b"MM\x00*": "TIFF", b"II+\x00": "TIFF", b"MM\x00+": "TIFF",
         b"\xff\xd8": "JPEG", b"BM": "BMP"}
MIN_SIDE = 2


def _unreadable(path: Path, error: Exception) -> BeadDataError:
    """Why a file could not be read, in words: missing, empty, not an image at all, or a damaged image."""
    if path.is_symlink() and not path.exists():
        return BeadDataError(f"image file {path} is a link that leads nowhere (broken or looping)")
    if not path.exists():
        return BeadDataError(f"image file {path} does not exist")
    if path.is_dir():
        return BeadDataError(f"cannot read image folder {path} ({type(error).__name__}: {error})")
    head = path.read_bytes()[:8] if path.is_file() else b""
    if not head:
        return BeadDataError(f"image file {path} is empty (0 bytes)")
    kind = next((name for magic, name in MAGIC.items() if head.startswith(magic)), None)
    if kind is None:
        return BeadDataError(
            f"image file {path} is not an image (not PNG, TIFF, JPEG or BMP data; it starts with {head!r})"
        )
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return BeadDataError(f"cannot read image file {path}: a damaged or truncated {kind} ({reason})")


def as_gray(array, source: str) -> np.ndarray:
    """A 2-D gray array from a gray or RGB(A) one (leading axes of one dropped; integer RGB averaged and rounded
    back to its dtype); an error naming ``source`` for anything else."""
    array = array if isinstance(array, np.ndarray) else np.asarray(array)  # a memory map stays one
    while array.ndim > 2 and array.shape[0] == 1:  # leading page/plane axes of one
        array = array[0]
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        gray = array[..., :3].astype(np.float32).mean(axis=-1)
        array = np.round(gray).astype(array.dtype) if array.dtype.kind in "ui" else gray
    if array.ndim != 2:
        raise BeadDataError(f"{source}: expected a 2-D gray or RGB image, got an array of shape {array.shape}")
    return array


def read_image(path: str | Path, plane: PlaneChoice | None = None) -> np.ndarray:
    """Read an image file as a 2-D array through its reader (:func:`beadseg.data.readers.reader_for`): PNG/TIFF
    (8/16-bit, gray or RGB; RGB is averaged to gray), or of a microscope file (OME-TIFF, OME-Zarr, ND2, CZI, LIF)
    the plane ``plane`` picks (a command's ``image`` config; default: the only one).

    The dtype is kept (so the bit depth stays known): integer RGB is averaged and rounded back to it.

    Examples
    --------
    >>> import tempfile, tifffile
    >>> path = Path(tempfile.mkdtemp()) / "frame.tif"
    >>> tifffile.imwrite(path, np.zeros((4, 6), np.uint16))
    >>> read_image(path).shape, read_image(path).dtype
    ((4, 6), dtype('uint16'))
    """
    return _through_reader(Path(path), plane, memory_map=False)


SPECIAL = {stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
           stat.S_IFSOCK: "a socket"}


def refuse_special(path: Path) -> None:
    """Refuse, by name, what is neither a regular file nor a folder once links are followed (a FIFO, a device, a
    socket): reading one could wait for ever or never end.

    Examples
    --------
    >>> import os, tempfile
    >>> fifo = Path(tempfile.mkdtemp()) / "frame.tif"
    >>> os.mkfifo(fifo)
    >>> refuse_special(fifo)
    Traceback (most recent call last):
    ...
    beadseg.data.io.BeadDataError: image file ... is a FIFO (named pipe), not a file: skipped
    """
    try:
        kind = stat.S_IFMT(os.stat(path).st_mode)
    except OSError:
        return  # missing or a broken link: the reader names it
    if kind in SPECIAL:
        raise BeadDataError(f"image file {path} is {SPECIAL[kind]}, not a file: skipped")


def _through_reader(path: Path, plane: PlaneChoice | None, memory_map: bool) -> np.ndarray:
    """The one road of every image read: its reader's plane (or memory map), errors named by file, checked."""
    refuse_special(path)
    reader = reader_for(path) or ANY_CONTENT  # another suffix: imageio reads what the content is
    try:
        read = reader.open if memory_map else reader.read
        array = read(path, plane or DEFAULT_PLANE)
    except MicroscopeError as error:
        raise BeadDataError(str(error)) from error
    except Exception as error:  # every reader raises its own type: name the file whatever it was
        raise _unreadable(path, error) from error
    return checked(as_gray(array, str(path)), path)


def checked(array: np.ndarray, path: Path) -> np.ndarray:
    """The one check every read path makes: big enough to hold a bead, and (floats) finite, read band by band."""
    if min(array.shape) < MIN_SIDE:
        raise BeadDataError(f"image file {path} is {array.shape[0]}x{array.shape[1]} px: too small to hold a bead")
    if array.dtype.kind == "f" and not all(np.isfinite(array[i : i + 1024]).all() for i in range(0, len(array), 1024)):
        raise BeadDataError(f"image file {path} holds NaN or infinite values")
    return array


def read_mask(path: str | Path) -> np.ndarray:
    """Read a mask as it is stored, after checking it: binary (0/1, 0/255, 0/any single value) or integer
    instance labels (>0 is bead). Rejected: anti-aliased or lossy masks (8-bit values between 0 and 255 next to 255)
    and fractional values.
    """
    path = Path(path)
    mask = read_image(path)
    if mask.size and mask.min() > 0:
        raise BeadDataError(f"mask {path} marks every pixel as bead (an inverted mask? background must be 0)")
    kind = mask_kind(mask)
    if kind == "classes":
        values = ", ".join(str(v) for v in np.unique(mask))
        raise BeadDataError(f"mask {path} is a class map (values {values}, each in many places: one value per class, "
                            "not per bead). Save bead masks as 0/255 (or 0/1), or as integer instance labels.")
    if kind == "anti-aliased":
        levels = np.unique(mask)
        raise BeadDataError(
            f"mask {path} is neither binary nor instance labels: it holds {len(levels)} distinct values between "
            f"{levels[0]} and {levels[-1]} that ramp at bead edges (anti-aliased, blurred, resized or "
            "JPEG-compressed?). "
            "Save masks as 0/1 or 0/255, or as integer instance labels."
        )
    return mask


def mask_kind(mask: np.ndarray) -> str:
    """``binary`` (0 and one value), ``labels`` (integer instance labels: each value one compact region),
    ``classes`` (a class map: a few consecutive values, each in many places) or ``anti-aliased`` (fractional values, or
    values that recur in many separate places, like the ramps of
    blurred edges: 128 on the rim of every bead)."""
    values = np.unique(mask)
    if len(values) <= 2:
        return "binary"
    if not np.allclose(values, np.round(values)):
        return "anti-aliased"
    regions = measure_label(mask.astype(np.int64), background=0, connectivity=1).max()  # equal-valued connected regions
    if regions <= 1.5 * (len(values) - (values[0] == 0)):
        return "labels"
    # a few consecutive small values, each in many places: one value per class, not per bead
    return "classes" if len(values) <= 8 and values[-1] - values[0] == len(values) - 1 else "anti-aliased"


def open_image(path: str | Path, plane: PlaneChoice | None = None) -> np.ndarray:
    """Like :func:`read_image`, but a file whose reader can map it (an uncompressed gray TIFF) comes back as a
    read-only memory map."""
    return _through_reader(Path(path), plane, memory_map=True)


def bit_depth(array: np.ndarray) -> int:
    """Bits per pixel of an image as stored (8 or 16; 32 for floats)."""
    return {1: 8, 2: 16}.get(array.dtype.itemsize, 32) if array.dtype.kind in "ui" else 32


def percentiles(image: np.ndarray, qs: tuple[float, ...]) -> tuple[float, ...]:
    """``np.percentile`` (linear interpolation) of an image's intensities; 8/16-bit images from their histogram,
    several times faster than sorting their pixels."""
    image = np.asarray(image)
    if image.dtype not in (np.uint8, np.uint16):
        return tuple(float(v) for v in np.percentile(np.asarray(image, np.float32), qs))
    cumulative = np.cumsum(np.bincount(image.ravel()))
    position = np.asarray(qs, float) / 100 * (image.size - 1)
    below, above = (np.searchsorted(cumulative, np.floor(position), side="right"),
                    np.searchsorted(cumulative, np.ceil(position), side="right"))
    return tuple(float(v) for v in below + (above - below) * (position - np.floor(position)))


@dataclass
class Normalization:
    """How raw intensities become model input; stored with every checkpoint.

    - ``percentile`` (default): per image, the ``low`` percentile maps to 0 and the ``high`` one to 1.
    - ``dataset_max``: divide by the training set's maximum (``vmax``, filled in by :meth:`fit`), for 16-bit
      fluorescence where absolute brightness matters.
    - ``fixed``: ``vmin`` maps to 0 and ``vmax`` to 1 for every image.
    """

    method: str = "percentile"
    low: float = 1.0
    high: float = 99.8
    vmin: float = 0.0
    vmax: float | None = None

    def __post_init__(self) -> None:
        if self.method not in ("percentile", "dataset_max", "fixed"):
            raise ValueError(
                f"normalization.method={self.method!r}: choose percentile, dataset_max or fixed"
            )
        if self.method == "fixed" and self.vmax is None:
            raise ValueError("normalization.method=fixed needs normalization.vmax (the value that maps to 1)")

    def fit(self, maxima: list[float]) -> Normalization:
        """Learn what the recipe needs from the training images' maxima (a manifest holds them): the data-set
        maximum."""
        if self.method == "dataset_max" and self.vmax is None:
            self.vmax = float(max(maxima))
        return self

    def bounds(self, image: np.ndarray, max_samples: int = 4_000_000) -> tuple[float, float]:
        """The intensities that map to 0 and 1 for this image (percentiles of a strided sample when it is huge)."""
        if self.method == "percentile":
            step = int(np.ceil(np.sqrt(image.size / max_samples))) if image.size > max_samples else 1
            low, high = percentiles(image[::step, ::step], (self.low, self.high))
            return low, high
        if self.vmax is None:
            raise ValueError("normalization.method=dataset_max was never fitted: call fit() on the training images")
        return float(self.vmin), float(self.vmax)

    def apply(self, image: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
        """Map ``bounds`` to 0 and 1 (for tiles of a larger image, with that image's bounds)."""
        low, high = bounds
        return (np.asarray(image, np.float32) - np.float32(low)) / np.float32(max(high - low, 1e-6))

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return self.apply(image, self.bounds(image))

    def to_dict(self) -> dict:
        return asdict(self)
