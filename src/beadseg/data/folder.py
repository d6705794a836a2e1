"""Bead data sets as folders: ``images/`` and ``masks/`` paired by file stem, indexed by a manifest."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from beadseg.beads.instances import bead_instances
from beadseg.beads.size import BeadSizing
from beadseg.data.io import BeadDataError, file_stamp, image_name, list_images, open_image, read_mask
from beadseg.data.manifest import build_manifest, image_stats, manifest_path
from beadseg.data.readers import DEFAULT_PLANE, PlaneChoice
from beadseg.data.sample import BeadSample


def pair_by_stem(images: dict[str, Path], others: dict[str, Path], what: str, image_dir: Path,
                 other_dir: Path) -> list[tuple[Path, Path]]:
    """Pair images with the files of another kind (``what``: "mask", "points file") by stem; every image needs
    exactly one and every one an image, or all that fails is named at once."""
    problems = [f"image {images[stem]} has no {what} in {other_dir}" for stem in sorted(set(images) - set(others))]
    problems += [f"{what} {others[stem]} has no image in {image_dir}" for stem in sorted(set(others) - set(images))]
    if problems:
        raise BeadDataError(f"images and {what}s do not pair up by file stem:\n  " + "\n  ".join(problems))
    return [(images[stem], others[stem]) for stem in sorted(images)]


def pair_folder(root: str | Path, images: str = "images", masks: str = "masks") -> list[tuple[Path, Path]]:
    """Pair ``root/images/X.*`` with ``root/masks/X.*``; every image needs exactly one mask and vice versa."""
    root = Path(root)
    image_dir, mask_dir = root / images, root / masks
    for folder in (image_dir, mask_dir):
        if not folder.is_dir():
            raise BeadDataError(f"data folder {folder} does not exist: data.root must hold {images}/ and {masks}/")
    return pair_by_stem({image_name(path): path for path in list_images(image_dir)},
                        {image_name(path): path for path in list_images(mask_dir)}, "mask", image_dir, mask_dir)


def load_pair(image_path: Path, mask_path: Path, plane: PlaneChoice = DEFAULT_PLANE) -> BeadSample:
    """An image (its plane as ``plane`` picks it) and its mask's beads; a size mismatch is refused by name."""
    image, raw_mask = open_image(image_path, plane), read_mask(mask_path)
    if image.shape != raw_mask.shape:
        raise BeadDataError(f"size mismatch: image {image_path} is {image.shape}, mask {mask_path} is {raw_mask.shape}")
    return BeadSample(image_name(image_path), image, partial(bead_instances, raw_mask), len(np.unique(raw_mask)) <= 2,
                      raw_mask > 0)


def rescaled_image(image: np.ndarray, zoom: float) -> np.ndarray:
    """The image resized by ``zoom`` with bicubic interpolation (antialiased when it shrinks), in its own dtype.

    Examples
    --------
    >>> rescaled_image(np.full((20, 20), 9, np.uint8), 0.5).shape
    (10, 10)
    """
    from skimage.transform import rescale

    resampled = rescale(np.asarray(image, np.float32), zoom, order=3, preserve_range=True, anti_aliasing=zoom < 1)
    if image.dtype.kind in "ui":
        limits = np.iinfo(image.dtype)
        return np.clip(np.round(resampled), limits.min, limits.max).astype(image.dtype)
    return resampled


def resized(sample: BeadSample, raw_mask: np.ndarray, zoom: float) -> BeadSample:
    """The sample resized by ``zoom``: the image by :func:`rescaled_image`, the mask by nearest neighbour, its
    beads found again.

    Examples
    --------
    >>> mask = np.zeros((20, 20), np.uint8); mask[4:10, 4:10] = 255
    >>> half = resized(BeadSample("a", np.full((20, 20), 9, np.uint8), mask > 0), mask, 0.5)
    >>> half.image.shape, half.image.dtype, int(half.mask.sum())
    ((10, 10), dtype('uint8'), 9)
    """
    from skimage.transform import rescale

    mask = rescale(raw_mask, zoom, order=0, preserve_range=True, anti_aliasing=False).astype(raw_mask.dtype)
    return BeadSample(sample.name, rescaled_image(sample.image, zoom), partial(bead_instances, mask),
                      sample.binary_mask, mask > 0)


def measure_pair(item: dict, plane: PlaneChoice = DEFAULT_PLANE) -> dict:
    """Manifest statistics of one image/mask pair (checked like training reads it)."""
    sample = load_pair(Path(item["files"]["image"]), Path(item["files"]["mask"]), plane)
    return {**image_stats(sample.image), "bead_count": sample.bead_count}


def check_unchanged(row: dict) -> None:
    """Refuse, by name, a file that disappeared or changed since its manifest row was measured."""
    for role, file in row["files"].items():
        try:
            stamp = file_stamp(file)
        except FileNotFoundError:
            raise BeadDataError(f"{role} file {file} disappeared after the data set was indexed") from None
        if stamp != row["stamps"][role]:
            raise BeadDataError(f"{role} file {file} changed after the data set was indexed (size or time); "
                                "start again to index it anew")


class FolderSource:
    """Every image/mask pair of ``root``, indexed by a cached manifest and read on demand. With ``sizing`` (set
    when a run fine-tunes a model that stores its bead size), each frame is read at the model's bead size: its
    beads' diameter given or estimated (``image.bead_diameter``), the frame and its mask resized by the zoom that
    prediction would use. ``plane`` (a :class:`~beadseg.data.readers.PlaneChoice` or a command's ``image`` config)
    says what to read of microscope files."""

    def __init__(self, root: str | Path, images: str = "images", masks: str = "masks", workers: int | None = None,
                 plane=None) -> None:
        self.root, self.images, self.masks, self.workers = Path(root), images, masks, workers
        self.plane = PlaneChoice.from_config(plane)
        self.sizing: BeadSizing | None = None

    def pairs(self) -> list[tuple[Path, Path]]:
        return pair_folder(self.root, self.images, self.masks)

    def require_beads(self, any_beads: bool) -> None:
        if not any_beads:
            raise BeadDataError(f"every mask in {self.root / self.masks} is empty: there is nothing to learn")

    def entries(self) -> list[dict]:
        """The manifest: one row per pair (name, files, stamps, height, width, dtype, vmin, vmax, bead_count)."""
        items = [{"name": image_name(image), "files": {"image": image, "mask": mask}} for image, mask in self.pairs()]
        rows = build_manifest(
            items,
            partial(measure_pair, plane=self.plane),
            manifest_path(self.root, f"pairs-{self.images}-{self.masks}{self.plane.key()}"),
            self.workers,
            f"indexing {self.root.name}",
        )
        self.require_beads(any(row["bead_count"] for row in rows))
        return rows

    def read(self, row: dict) -> BeadSample:
        check_unchanged(row)
        sample = load_pair(Path(row["files"]["image"]), Path(row["files"]["mask"]), self.plane)
        zoom = self.sizing.for_frame(sample.image).zoom if self.sizing is not None else 1.0
        return sample if zoom == 1 else resized(sample, read_mask(Path(row["files"]["mask"])), zoom)

    def load(self) -> list[BeadSample]:
        """Every sample in memory (small data sets, analysis); training reads them on demand instead."""
        return [self.read(row) for row in self.entries()]
