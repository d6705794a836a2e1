"""Frame classification data: class folders, a CSV of labels, or built-in synthetic frames, read on demand."""

from __future__ import annotations

import csv
from abc import ABC, abstractmethod
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from beadseg.data.folder import check_unchanged
from beadseg.data.io import BeadDataError, Normalization, image_name, list_images, open_image
from beadseg.data.manifest import build_manifest, image_stats, manifest_path
from beadseg.data.split import stratified_split
from beadseg.data.synthetic import render_beads
from beadseg.datasets.reader import OnDemand, SeededTransforms, worker_count
from beadseg.tables import write_csv


def measure_frame(item: dict) -> dict:
    return image_stats(open_image(item["files"]["image"]))


class FileFrames(ABC):
    """Frames listed as files with a class label each, indexed by a cached manifest."""

    classes: list[str]
    root: Path
    manifest_key: str

    @abstractmethod
    def labelled_files(self) -> list[tuple[str, Path, int]]:
        """(name, file, class index) of every frame."""

    def entries(self) -> list[dict]:
        items = [
            {"name": name, "files": {"image": path}, "label": label} for name, path, label in self.labelled_files()
        ]
        return build_manifest(
            items, measure_frame, manifest_path(self.root, self.manifest_key), description="indexing frames"
        )

    def read(self, row: dict) -> np.ndarray:
        check_unchanged(row)
        return open_image(row["files"]["image"])


class ClassFolderSource(FileFrames):
    """``root/<class>/*.tif|png``: one sub-folder per class (sorted names give the class indices)."""

    manifest_key = "class-folders"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise BeadDataError(f"data.root={self.root} does not exist (expected one sub-folder per class)")
        self.classes = sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if len(self.classes) < 2:
            raise BeadDataError(f"{self.root} needs at least two class sub-folders, found {self.classes}")

    def labelled_files(self) -> list[tuple[str, Path, int]]:
        return [(f"{name}/{image_name(path)}", path, index) for index, name in enumerate(self.classes)
                for path in list_images(self.root / name)]


class CsvSource(FileFrames):
    """A CSV with ``path`` and ``label`` columns (paths relative to the CSV's folder)."""

    def __init__(self, csv_file: str | Path) -> None:
        self.csv_file = Path(csv_file)
        if not self.csv_file.is_file():
            raise BeadDataError(f"data.csv_file={self.csv_file} does not exist")
        with open(self.csv_file, newline="") as handle:
            self.table = list(csv.DictReader(handle))
        if not self.table or not {"path", "label"} <= set(self.table[0]):
            raise BeadDataError(f"{self.csv_file} needs 'path' and 'label' columns")
        self.root, self.manifest_key = self.csv_file.parent, f"csv-{self.csv_file.stem}"
        self.classes = sorted({row["label"] for row in self.table})

    def labelled_files(self) -> list[tuple[str, Path, int]]:
        return [(row["path"], self.root / row["path"], self.classes.index(row["label"])) for row in self.table]


class SyntheticClassSource:
    """Frames without beads (class ``empty``) and with 3-40 beads (class ``beads``), from a seed."""

    classes = ["empty", "beads"]

    def __init__(self, n_images: int = 200, image_size: int = 64, seed: int = 0, modality: str = "fluorescence",
                 bit_depth: int = 16) -> None:
        self.n_images, self.image_size, self.seed = n_images, image_size, seed
        self.modality, self.bit_depth = modality, bit_depth
        self._rows: list[dict] | None = None

    def render(self, index: int) -> tuple[str, np.ndarray, int, np.ndarray]:
        """Name, frame, class index and instance labels of frame ``index``."""
        rng = np.random.default_rng([self.seed, index])
        label = index % 2
        beads = int(rng.integers(3, 41)) * label
        image, labels = render_beads(rng, self.image_size, beads, self.modality, bit_depth=self.bit_depth)
        return f"{self.classes[label]}_{index:05d}", image, label, labels

    def entries(self) -> list[dict]:
        if self._rows is None:
            self._rows = []
            for index in range(self.n_images):
                name, image, label, _ = self.render(index)
                self._rows.append({"name": name, "index": index, "label": label, **image_stats(image)})
        return self._rows

    def read(self, row: dict) -> np.ndarray:
        return self.render(row["index"])[1]


def frame_source(root: str | None = None, csv_file: str | None = None, synthetic: dict | None = None):
    """Class folders (``data.root``), a CSV of labels (``data.csv_file``), or else the built-in synthetic frames."""
    if root and csv_file:
        raise ValueError("give data.root (class folders) or data.csv_file (a CSV of labels), not both")
    if root:
        return ClassFolderSource(root)
    if csv_file:
        return CsvSource(csv_file)
    return SyntheticClassSource(**(synthetic or {}))


def crop_window(shape: tuple[int, int], size: int, rng: np.random.Generator | None) -> tuple[slice, slice]:
    """A ``size`` window of an image: random (``rng``) or central; the whole side where the image is smaller."""
    window: list[slice] = []
    for side in shape[:2]:
        spare = max(side - size, 0)
        start = int(rng.integers(spare + 1)) if rng is not None else spare // 2
        window.append(slice(start, start + size))
    return window[0], window[1]


class FrameDataset(Dataset):
    """Frames read on demand; a ``patch_size`` window (random for training, central otherwise) is cut from the
    raw frame (from a memory map where the file allows), normalised with the whole frame's bounds, padded."""

    def __init__(self, items: OnDemand, normalization: Normalization, patch_size: int, augmentation: A.Compose | None,
                 *, train: bool, seed: int = 0):
        self.items, self.normalization, self.patch_size, self.train = items, normalization, patch_size, train
        self.pad = A.PadIfNeeded(patch_size, patch_size, border_mode=cv2.BORDER_REFLECT_101)
        self.augmentation = augmentation if train else None
        self.seeding = SeededTransforms(seed, self.augmentation)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        self.seeding.ensure()
        image, label = self.items[index]
        crop = image[crop_window(image.shape, self.patch_size, self.seeding.rng if self.train else None)]
        frame = self.pad(image=self.normalization.apply(crop, self.normalization.bounds(image)))["image"]
        if self.augmentation is not None:
            frame = self.augmentation(image=frame)["image"]
        return {"image": torch.from_numpy(np.ascontiguousarray(frame, np.float32))[None], "label": torch.tensor(label)}


def frame_item(image: np.ndarray, row: dict) -> tuple[np.ndarray, int]:
    return image, row["label"]


class ClassifyDataModule(pl.LightningDataModule):
    """Frames split by class (stratified, seeded) from the manifest, normalised (fitted on the training rows),
    cut to ``patch_size``, read by the loaders on demand."""

    def __init__(
        self,
        source,
        normalization: Normalization | None = None,
        augmentation: A.Compose | None = None,
        patch_size: int = 64,
        *,
        batch_size: int = 32,
        val_fraction: float = 0.2,
        test_fraction: float = 0.0,
        num_workers: int | str = 0,
        cache_mb: float = 512,
        seed: int = 0,
        output_dir: str | None = None,
    ) -> None:
        super().__init__()
        self.source, self.normalization = source, normalization or Normalization()
        self.augmentation, self.patch_size, self.batch_size = augmentation, patch_size, batch_size
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.num_workers, self.cache_mb = worker_count(num_workers), cache_mb
        self.seed, self.output_dir = seed, output_dir
        self.datasets: dict[str, Dataset] = {}
        self.split_table: list[dict] = []
        self.class_names: list[str] = []

    def prepare_data(self) -> None:
        self.source.entries()

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        rows, self.class_names = self.source.entries(), list(self.source.classes)
        labels = [row["label"] for row in rows]
        splits = stratified_split(labels, [row["name"] for row in rows], self.val_fraction, self.test_fraction,
                                  edges=tuple(range(len(self.class_names) - 1)), seed=self.seed)
        self.split_table = [{"name": row["name"], "label": self.class_names[row["label"]], "split": s}
                            for row, s in zip(rows, splits)]
        chosen = {split: [row for row, s in zip(rows, splits) if s == split] for split in ("train", "val", "test")}
        if not chosen["train"] or not chosen["val"]:
            raise ValueError("the split left no training or no validation frames: change data.val_fraction")
        self.normalization.fit([row["vmax"] for row in chosen["train"]])
        errors = Path(self.output_dir) / "errors.csv" if self.output_dir else None
        for split, rows_in_split in chosen.items():
            items = OnDemand(self.source, rows_in_split, frame_item, self.cache_mb, errors)
            self.datasets[split] = FrameDataset(items, self.normalization, self.patch_size, self.augmentation,
                                                train=split == "train", seed=self.seed)
        if self.output_dir and (self.trainer is None or self.trainer.is_global_zero):
            write_csv(self.split_table, Path(self.output_dir) / "split.csv")

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(
            self.datasets[split],
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)
