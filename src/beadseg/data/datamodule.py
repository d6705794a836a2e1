"""The Lightning DataModule: load a source, split it, normalise, and serve patches (train) or whole images."""

from __future__ import annotations

import os
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from beadseg.data.folder import BeadSample
from beadseg.data.io import Normalization
from beadseg.data.split import density_bins, group_names, stratified_split
from beadseg.tables import write_csv


def patch_sampler(patch_size: int, foreground_oversample: float) -> A.Compose:
    """Pad small images, then crop a patch: random, or (with ``foreground_oversample`` odds) holding beads."""
    crop = A.RandomCrop(patch_size, patch_size)
    if foreground_oversample > 0:
        crop = A.OneOf(
            [
                A.RandomCrop(patch_size, patch_size, p=1 - foreground_oversample),
                A.CropNonEmptyMaskIfExists(patch_size, patch_size, p=foreground_oversample),
            ],
            p=1.0,
        )
    return A.Compose([A.PadIfNeeded(patch_size, patch_size, border_mode=cv2.BORDER_REFLECT_101), crop])


class PatchDataset(Dataset):
    """``patches_per_image`` random patches of every image per epoch, augmented with the mask."""

    def __init__(self, images, masks, sampler: A.Compose, augmentation: A.Compose | None, patches_per_image: int):
        self.images, self.masks = images, masks
        self.sampler, self.augmentation = sampler, augmentation
        self.patches_per_image = patches_per_image

    def __len__(self) -> int:
        return len(self.images) * self.patches_per_image

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image, mask = self.images[index % len(self.images)], self.masks[index % len(self.images)]
        patch = self.sampler(image=image, mask=mask)
        if self.augmentation is not None:
            patch = self.augmentation(**patch)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(patch["image"], np.float32))[None],
            "mask": torch.from_numpy(np.ascontiguousarray(patch["mask"], np.float32))[None],
        }


class WholeImageDataset(Dataset):
    """Whole normalised images with their masks and names (validation and test)."""

    def __init__(self, images, masks, names):
        self.images, self.masks, self.names = images, masks, names

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        return {
            "image": torch.from_numpy(self.images[index])[None],
            "mask": torch.from_numpy(self.masks[index].astype(np.float32))[None],
            "name": self.names[index],
        }


class BeadDataModule(pl.LightningDataModule):
    """Bead images from any source (``load() -> list[BeadSample]``), split by density and capture.

    The split is written to ``output_dir/split.csv``; normalisation is fitted on the training images only.
    ``test_groups`` (names produced by ``group_by``) are held out whole as the test split.
    ``root`` and ``synthetic_images`` only record what the source configs read (``data.root``, ...).
    """

    def __init__(
        self,
        source,
        normalization: Normalization | None = None,
        augmentation: A.Compose | None = None,
        patch_size: int = 256,
        patches_per_image: int = 4,
        foreground_oversample: float = 0.33,
        batch_size: int = 8,
        val_batch_size: int = 1,
        val_fraction: float = 0.15,
        test_fraction: float = 0.0,
        train_fraction: float = 1.0,
        group_by: str | None = None,
        test_groups: list[str] | None = None,
        density_edges: tuple[int, ...] = (5, 15, 30, 100),
        num_workers: int | str = "auto",
        seed: int = 0,
        output_dir: str | None = None,
        root: str | None = None,
        synthetic_images: int | None = None,
    ) -> None:
        super().__init__()
        self.source = source
        self.normalization = normalization or Normalization()
        self.augmentation = augmentation
        self.patch_size, self.patches_per_image = patch_size, patches_per_image
        self.foreground_oversample = foreground_oversample
        self.batch_size, self.val_batch_size = batch_size, val_batch_size
        self.val_fraction, self.test_fraction, self.train_fraction = val_fraction, test_fraction, train_fraction
        self.group_by, self.density_edges = group_by, tuple(density_edges)
        self.test_groups = tuple(test_groups or ())
        self.num_workers = self._resolve_workers(num_workers)
        self.seed, self.output_dir, self.root = seed, output_dir, root
        self.datasets: dict[str, Dataset] = {}
        self.split_table: list[dict] = []

    @staticmethod
    def _resolve_workers(num_workers: int | str) -> int:
        if num_workers != "auto":
            return int(num_workers)
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        # On a GPU, workers keep it fed; on a small CPU box they would steal cores from the model.
        return min(8, cpus - 1) if torch.cuda.is_available() else 0

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        samples: list[BeadSample] = self.source.load()
        names = [s.name for s in samples]
        groups = group_names(names, self.group_by)
        counts = [s.bead_count for s in samples]
        splits = stratified_split(
            counts, groups, self.val_fraction, self.test_fraction, self.density_edges, self.train_fraction, self.seed,
            self.test_groups,
        )
        bins = density_bins(counts, list(self.density_edges))
        self.split_table = [
            {"name": n, "group": g, "bead_count": c, "density_bin": int(b), "split": s}
            for n, g, c, b, s in zip(names, groups, counts, bins, splits)
        ]
        by_split = {split: [s for s, t in zip(samples, splits) if t == split] for split in ("train", "val", "test")}
        if not by_split["train"]:
            raise ValueError("the split left no training images: lower data.val_fraction / data.test_fraction")
        if not by_split["val"]:
            raise ValueError(
                "the split left no validation images (checkpoints and early stopping watch val/jaccard): "
                "raise data.val_fraction"
            )
        self.normalization.fit([s.image for s in by_split["train"]])
        norm = {split: [self.normalization(s.image) for s in chosen] for split, chosen in by_split.items()}
        self.datasets["train"] = PatchDataset(
            norm["train"],
            [s.mask.astype(np.uint8) for s in by_split["train"]],
            patch_sampler(self.patch_size, self.foreground_oversample),
            self.augmentation,
            self.patches_per_image,
        )
        for split in ("val", "test"):
            chosen = by_split[split]
            self.datasets[split] = WholeImageDataset(norm[split], [s.mask for s in chosen], [s.name for s in chosen])
        if self.output_dir and (self.trainer is None or self.trainer.is_global_zero):
            write_csv(self.split_table, Path(self.output_dir) / "split.csv")

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        return DataLoader(
            self.datasets[split],
            batch_size=batch_size,
            shuffle=shuffle,
            drop_last=shuffle and len(self.datasets[split]) > batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.val_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.val_batch_size, shuffle=False)
