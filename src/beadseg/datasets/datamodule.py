"""The Lightning DataModule: index a source, split it, and serve patches (train) or whole images, read on demand."""

from __future__ import annotations

from collections.abc import Sized
from pathlib import Path
from typing import cast

import albumentations as A
import cv2
import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from beadseg.beads.classical import unlabelled_regions
from beadseg.beads.instances import centre_heatmap, split_by_area
from beadseg.data.io import Normalization
from beadseg.data.sample import IGNORE_INDEX, BeadSample
from beadseg.data.split import DENSITY_EDGES, density_bins, group_names, stratified_split
from beadseg.datasets.reader import OnDemand, SeededTransforms, worker_count
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


class NormalizedItem:
    """What a segmentation dataset keeps of a sample: the name, the normalised image, the bead instance labels and,
    with ``ignore_unlabelled``, the pixels of visible beads no label covers (else None). ``bead_truth`` says how
    the beads of a binary mask are counted: ``area`` (a merged component of area A holds round(A / one bead's
    area) beads, :func:`split_by_area`: the centres convention) or ``watershed`` (the distance-transform split).
    A class, not a closure: loader workers started by spawn or forkserver must pickle it."""

    def __init__(self, normalization: Normalization, ignore_unlabelled: bool = False, ignore_margin: int = 2,
                 bead_truth: str = "area") -> None:
        if bead_truth not in ("area", "watershed"):
            raise ValueError(f"data.bead_truth={bead_truth}: choose area or watershed")
        self.normalization, self.ignore_unlabelled, self.ignore_margin = normalization, ignore_unlabelled, ignore_margin
        self.bead_truth = bead_truth

    def __call__(self, sample: BeadSample, row: dict) -> tuple[str, np.ndarray, np.ndarray, np.ndarray | None]:
        beads = split_by_area(sample.mask) if sample.binary_mask and self.bead_truth == "area" else sample.labels
        labels = beads.astype(np.uint16 if beads.max() < 2**16 else np.int32)
        ignore = unlabelled_regions(sample.image, labels, self.ignore_margin) if self.ignore_unlabelled else None
        return sample.name, self.normalization(sample.image), labels, ignore


def targets(mask: np.ndarray, labels: np.ndarray, centre_sigma: float | None) -> dict[str, torch.Tensor]:
    """The training targets of one image or patch: the mask (1 bead, 0 background, IGNORE_INDEX left out) and,
    with ``centre_sigma``, the bead-centre heat-map of the instance labels (left out where the mask is)."""
    out = {"mask": torch.from_numpy(np.ascontiguousarray(mask, np.float32))[None]}
    if centre_sigma:
        heat = centre_heatmap(labels, centre_sigma)
        heat[mask == IGNORE_INDEX] = IGNORE_INDEX
        out["centres"] = torch.from_numpy(heat)[None]
    return out


class PatchDataset(Dataset):
    """``patches_per_image`` random patches of every image per epoch, augmented with the mask (and the instance
    labels, from which the centre heat-map is drawn after augmentation, when ``centre_sigma`` is set)."""

    def __init__(self, items: OnDemand, sampler: A.Compose, augmentation: A.Compose | None, patches_per_image: int,
                 *, seed: int = 0, centre_sigma: float | None = None):
        self.items, self.sampler, self.augmentation = items, sampler, augmentation
        self.patches_per_image, self.centre_sigma = patches_per_image, centre_sigma
        if centre_sigma:
            for transform in (sampler, augmentation):
                if transform is not None:
                    transform.add_targets({"labels": "mask"})
        self.seeding = SeededTransforms(seed, sampler, augmentation)

    def __len__(self) -> int:
        return len(self.items) * self.patches_per_image

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        self.seeding.ensure()
        _, image, labels, ignore = self.items[index % len(self.items)]
        classes = (labels > 0).astype(np.uint8)  # 0 background, 1 bead, 2 left out of the loss
        if ignore is not None:
            classes[ignore] = 2
        patch = self.sampler(image=image, mask=classes, **({"labels": labels} if self.centre_sigma else {}))
        if self.augmentation is not None:
            patch = self.augmentation(**patch)
        target = np.asarray(patch["mask"], np.float32)
        target[target == 2] = IGNORE_INDEX
        image = torch.from_numpy(np.ascontiguousarray(patch["image"], np.float32))[None]
        return {"image": image, **targets(target, patch.get("labels"), self.centre_sigma)}


class WholeImageDataset(Dataset):
    """Whole normalised images with their masks, bead labels and names (validation and test), read on demand."""

    def __init__(self, items: OnDemand, centre_sigma: float | None = None):
        self.items, self.centre_sigma = items, centre_sigma

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        name, image, labels, _ = self.items[index]
        return {"image": torch.from_numpy(image)[None], **targets(labels > 0, labels, self.centre_sigma),
                "labels": torch.from_numpy(labels.astype(np.int32))[None], "name": name}


class BeadDataModule(pl.LightningDataModule):
    """Bead images from any source (``entries()`` -> manifest rows, ``read(row)`` -> :class:`BeadSample`),
    split by density and capture from the manifest alone; images are read when a loader asks for them.

    The split is written to ``output_dir/split.csv``; normalisation is fitted on the training rows only. A source
    with ``training_entries`` (:class:`~beadseg.data.sources.ConcatSource`) adds frames to training alone, drawn
    after the split without the captures validation and test hold.
    ``test_groups`` (names produced by ``group_by``) are held out whole as the test split. ``cache_mb`` bounds
    the normalised images each loader process keeps (0: read every time). ``ignore_unlabelled`` leaves out of the
    training loss the pixels of clearly visible beads that no label covers (instead of teaching "background").
    ``centre_sigma`` (set by ``target=centres``) adds the bead-centre heat-map to every sample. ``bead_truth``:
    how the beads of binary masks are counted for the centre target and the object metrics (:class:`NormalizedItem`).
    """

    def __init__(
        self,
        source,
        normalization: Normalization | None = None,
        augmentation: A.Compose | None = None,
        patch_size: int = 256,
        *, patches_per_image: int = 4,
        foreground_oversample: float = 0.33,
        batch_size: int = 8,
        val_batch_size: int = 1,
        val_fraction: float = 0.15,
        test_fraction: float = 0.0,
        train_fraction: float = 1.0,
        group_by: str | None = None,
        test_groups: list[str] | None = None,
        density_edges: tuple[int, ...] = DENSITY_EDGES,
        num_workers: int | str = "auto",
        cache_mb: float = 512,
        ignore_unlabelled: bool = False,
        centre_sigma: float | None = None,
        bead_truth: str = "area",
        seed: int = 0,
        output_dir: str | None = None,
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
        self.num_workers, self.cache_mb = worker_count(num_workers), cache_mb
        self.ignore_unlabelled, self.centre_sigma, self.bead_truth = ignore_unlabelled, centre_sigma, bead_truth
        self.seed, self.output_dir = seed, output_dir
        self.datasets: dict[str, Dataset] = {}
        self.split_table: list[dict] = []

    def prepare_data(self) -> None:
        """Index the data once (one process per node) so that every DDP rank finds the manifest warm."""
        self.source.entries()

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        rows = self.source.entries()
        names = [row["name"] for row in rows]
        groups = group_names(names, self.group_by, "data.group_by")
        counts = [row["bead_count"] for row in rows]
        splits = stratified_split(
            counts,
            groups,
            self.val_fraction,
            self.test_fraction,
            edges=self.density_edges,
            train_fraction=self.train_fraction,
            seed=self.seed,
            test_groups=self.test_groups,
        )
        if hasattr(self.source, "training_entries"):  # drawn frames for training alone, none from a held-out capture
            extra = self.source.training_entries({g for g, s in zip(groups, splits) if s in ("val", "test")})
            rows, names = rows + extra, names + [row["name"] for row in extra]
            groups, counts = groups + [row["name"] for row in extra], counts + [row["bead_count"] for row in extra]
            splits = splits + ["train"] * len(extra)
        bins = density_bins(counts, list(self.density_edges))
        self.split_table = [
            {"name": n, "group": g, "bead_count": c, "density_bin": int(b), "split": s}
            for n, g, c, b, s in zip(names, groups, counts, bins, splits)
        ]
        by_split = {split: [r for r, s in zip(rows, splits) if s == split] for split in ("train", "val", "test")}
        if not by_split["train"]:
            raise ValueError("the split left no training images: lower data.val_fraction / data.test_fraction")
        if not by_split["val"]:
            raise ValueError(
                "the split left no validation images (checkpoints and early stopping watch val/jaccard): "
                "raise data.val_fraction"
            )
        self.normalization.fit([row["vmax"] for row in by_split["train"]])
        errors = Path(self.output_dir) / "errors.csv" if self.output_dir else None
        items = {split: OnDemand(self.source, chosen,
                                 NormalizedItem(self.normalization, self.ignore_unlabelled and split == "train",
                                                bead_truth=self.bead_truth),
                                 self.cache_mb, errors)
                 for split, chosen in by_split.items()}
        self.datasets["train"] = PatchDataset(
            items["train"], patch_sampler(self.patch_size, self.foreground_oversample), self.augmentation,
            self.patches_per_image, seed=self.seed, centre_sigma=self.centre_sigma,
        )
        for split in ("val", "test"):
            self.datasets[split] = WholeImageDataset(items[split], self.centre_sigma)
        if self.output_dir and (self.trainer is None or self.trainer.is_global_zero):
            write_csv(self.split_table, Path(self.output_dir) / "split.csv")

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        return DataLoader(
            self.datasets[split],
            batch_size=batch_size,
            shuffle=shuffle,
            drop_last=shuffle and len(cast(Sized, self.datasets[split])) > batch_size,
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
