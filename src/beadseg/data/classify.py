"""Frame classification data: class folders, a CSV of labels, or built-in synthetic frames."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from beadseg.data.io import IMAGE_SUFFIXES, BeadDataError, Normalization, read_image
from beadseg.data.split import stratified_split
from beadseg.data.synthetic import render_beads
from beadseg.tables import write_csv


@dataclass
class Frame:
    name: str
    image: np.ndarray
    label: int


class ClassFolderSource:
    """``root/<class>/*.tif|png``: one sub-folder per class (sorted names give the class indices)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def load(self) -> tuple[list[Frame], list[str]]:
        if not self.root.is_dir():
            raise BeadDataError(f"data.root={self.root} does not exist (expected one sub-folder per class)")
        classes = sorted(p.name for p in self.root.iterdir() if p.is_dir())
        if len(classes) < 2:
            raise BeadDataError(f"{self.root} needs at least two class sub-folders, found {classes}")
        frames = [Frame(f"{name}/{path.stem}", read_image(path), index)
                  for index, name in enumerate(classes)
                  for path in sorted((self.root / name).iterdir()) if path.suffix.lower() in IMAGE_SUFFIXES]
        return frames, classes


class CsvSource:
    """A CSV with ``path`` and ``label`` columns (paths relative to the CSV's folder)."""

    def __init__(self, csv_file: str | Path) -> None:
        self.csv_file = Path(csv_file)

    def load(self) -> tuple[list[Frame], list[str]]:
        rows = list(csv.DictReader(open(self.csv_file)))
        if not rows or not {"path", "label"} <= set(rows[0]):
            raise BeadDataError(f"{self.csv_file} needs 'path' and 'label' columns")
        classes = sorted({row["label"] for row in rows})
        return [Frame(row["path"], read_image(self.csv_file.parent / row["path"]), classes.index(row["label"]))
                for row in rows], classes


class SyntheticClassSource:
    """Frames without beads (class ``empty``) and with 3-40 beads (class ``beads``), from a seed."""

    def __init__(self, n_images: int = 200, image_size: int = 64, seed: int = 0, modality: str = "fluorescence",
                 bit_depth: int = 16) -> None:
        self.n_images, self.image_size, self.seed = n_images, image_size, seed
        self.modality, self.bit_depth = modality, bit_depth

    def render(self, index: int) -> tuple[Frame, np.ndarray]:
        """Frame ``index`` and its instance labels."""
        rng = np.random.default_rng([self.seed, index])
        label = index % 2
        beads = int(rng.integers(3, 41)) * label
        image, labels = render_beads(rng, self.image_size, beads, self.modality, self.bit_depth)
        return Frame(f"{('empty', 'beads')[label]}_{index:05d}", image, label), labels

    def load(self) -> tuple[list[Frame], list[str]]:
        return [self.render(i)[0] for i in range(self.n_images)], ["empty", "beads"]


def frame_source(root: str | None = None, csv_file: str | None = None, synthetic: dict | None = None):
    """Class folders (``data.root``), a CSV of labels (``data.csv_file``), or else the built-in synthetic frames."""
    if root and csv_file:
        raise ValueError("give data.root (class folders) or data.csv_file (a CSV of labels), not both")
    if root:
        return ClassFolderSource(root)
    if csv_file:
        return CsvSource(csv_file)
    return SyntheticClassSource(**(synthetic or {}))


class FrameDataset(Dataset):
    def __init__(self, images: list[np.ndarray], labels: list[int], transform: A.Compose):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        image = self.transform(image=self.images[index])["image"]
        return {"image": torch.from_numpy(np.ascontiguousarray(image, np.float32))[None],
                "label": torch.tensor(self.labels[index])}


class ClassifyDataModule(pl.LightningDataModule):
    """Frames split by class (stratified, seeded), normalised (fitted on training frames), cropped to ``image_size``.

    ``root`` and ``csv_file`` only record what the source config reads (``data.root``, ``data.csv_file``)."""

    def __init__(self, source, normalization: Normalization | None = None, augmentation: A.Compose | None = None,
                 image_size: int = 64, batch_size: int = 32, val_fraction: float = 0.2, test_fraction: float = 0.0,
                 num_workers: int = 0, seed: int = 0, output_dir: str | None = None, root: str | None = None,
                 csv_file: str | None = None) -> None:
        super().__init__()
        self.source, self.normalization = source, normalization or Normalization()
        self.augmentation, self.image_size, self.batch_size = augmentation, image_size, batch_size
        self.val_fraction, self.test_fraction, self.num_workers = val_fraction, test_fraction, num_workers
        self.seed, self.output_dir, self.root, self.csv_file = seed, output_dir, root, csv_file
        self.datasets: dict[str, Dataset] = {}
        self.split_table: list[dict] = []
        self.class_names: list[str] = []

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        frames, self.class_names = self.source.load()
        labels = [f.label for f in frames]
        splits = stratified_split(labels, [f.name for f in frames], self.val_fraction, self.test_fraction,
                                  edges=tuple(range(len(self.class_names) - 1)), seed=self.seed)
        self.split_table = [{"name": f.name, "label": self.class_names[f.label], "split": s} for f, s in zip(frames, splits)]
        chosen = {split: [f for f, s in zip(frames, splits) if s == split] for split in ("train", "val", "test")}
        if not chosen["train"] or not chosen["val"]:
            raise ValueError("the split left no training or no validation frames: change data.val_fraction")
        self.normalization.fit([f.image for f in chosen["train"]])
        size = self.image_size
        fit = [A.PadIfNeeded(size, size, border_mode=cv2.BORDER_REFLECT_101)]
        train = A.Compose([*fit, A.RandomCrop(size, size), *(self.augmentation.transforms if self.augmentation else [])])
        evaluate = A.Compose([*fit, A.CenterCrop(size, size)])
        for split, frames_in_split in chosen.items():
            self.datasets[split] = FrameDataset([self.normalization(f.image) for f in frames_in_split],
                                                [f.label for f in frames_in_split], train if split == "train" else evaluate)
        if self.output_dir and (self.trainer is None or self.trainer.is_global_zero):
            write_csv(self.split_table, Path(self.output_dir) / "split.csv")

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(self.datasets[split], batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0, pin_memory=torch.cuda.is_available())

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)
