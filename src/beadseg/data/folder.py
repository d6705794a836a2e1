"""Bead data sets as folders: ``images/`` and ``masks/`` paired by file stem."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from skimage.measure import label

from beadseg.data.io import IMAGE_SUFFIXES, BeadDataError, read_image, read_mask


@dataclass
class BeadSample:
    """One raw image (native intensity scale) with its boolean bead mask.

    ``bead_count`` defaults to the mask's connected components (touching beads count once).
    """

    name: str
    image: np.ndarray
    mask: np.ndarray
    bead_count: int | None = None

    def __post_init__(self) -> None:
        if self.bead_count is None:
            self.bead_count = int(label(self.mask, connectivity=1).max())


def _files_by_stem(folder: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            if path.stem in files:
                raise BeadDataError(f"two files share the stem {path.stem!r} in {folder}: {files[path.stem].name}, {path.name}")
            files[path.stem] = path
    return files


def pair_folder(root: str | Path, images: str = "images", masks: str = "masks") -> list[tuple[Path, Path]]:
    """Pair ``root/images/X.*`` with ``root/masks/X.*``; every image needs exactly one mask and vice versa."""
    root = Path(root)
    image_dir, mask_dir = root / images, root / masks
    for folder in (image_dir, mask_dir):
        if not folder.is_dir():
            raise BeadDataError(f"data folder {folder} does not exist: data.root must hold {images}/ and {masks}/")
    image_files, mask_files = _files_by_stem(image_dir), _files_by_stem(mask_dir)
    if not image_files:
        raise BeadDataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {image_dir}")
    missing = sorted(set(image_files) - set(mask_files))
    extra = sorted(set(mask_files) - set(image_files))
    problems = [f"image {image_files[s]} has no mask in {mask_dir}" for s in missing]
    problems += [f"mask {mask_files[s]} has no image in {image_dir}" for s in extra]
    if problems:
        raise BeadDataError("images and masks do not pair up by file stem:\n  " + "\n  ".join(problems))
    return [(image_files[stem], mask_files[stem]) for stem in sorted(image_files)]


def load_pair(image_path: Path, mask_path: Path) -> BeadSample:
    image, mask = read_image(image_path), read_mask(mask_path)
    if image.shape != mask.shape:
        raise BeadDataError(f"size mismatch: image {image_path} is {image.shape}, mask {mask_path} is {mask.shape}")
    return BeadSample(image_path.stem, image, mask)


class FolderSource:
    """Loads every image/mask pair of ``root``; checks pairing, sizes and that some mask holds beads."""

    def __init__(self, root: str | Path, images: str = "images", masks: str = "masks") -> None:
        self.root, self.images, self.masks = Path(root), images, masks

    def pairs(self) -> list[tuple[Path, Path]]:
        return pair_folder(self.root, self.images, self.masks)

    def require_beads(self, any_beads: bool) -> None:
        if not any_beads:
            raise BeadDataError(f"every mask in {self.root / self.masks} is empty: there is nothing to learn")

    def load(self) -> list[BeadSample]:
        samples = [load_pair(i, m) for i, m in self.pairs()]
        self.require_beads(any(sample.mask.any() for sample in samples))
        return samples
