"""Augmentation moves image and mask together; patches come out at the configured size."""

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from skimage.draw import disk

from beadseg.datasets.datamodule import PatchDataset, patch_sampler


def _beads(seed: int, size: int = 96) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mask = np.zeros((size, size), np.uint8)
    for _ in range(25):
        mask[disk(tuple(rng.uniform(5, size - 5, 2)), rng.uniform(2, 6), shape=mask.shape)] = 1
    return mask


def _items(image: np.ndarray, mask: np.ndarray) -> list:
    """What PatchDataset reads: (name, normalised image, labels, pixels left out of the loss) per image."""
    return [("beads", image, mask, None)]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return np.logical_and(a, b).sum() / max(np.logical_or(a, b).sum(), 1)


@pytest.mark.parametrize("name", ["none", "light", "heavy", "microscope"])
def test_augmented_image_still_matches_its_mask(compose_config, name):
    # The image *is* the mask (beads bright), so after any augmentation thresholding it must give the mask back.
    augmentation = instantiate(compose_config("train", [f"augmentation={name}"]).augmentation)
    dataset = PatchDataset(_items(_beads(0).astype(np.float32), _beads(0)), patch_sampler(64, 0.5), augmentation, 40)
    ious, shifted = [], []
    for index in range(40):
        item = dataset[index]
        image, mask = item["image"][0].numpy(), item["mask"][0].numpy() > 0.5
        assert item["image"].shape == item["mask"].shape == (1, 64, 64)
        assert set(np.unique(item["mask"].numpy())) <= {0.0, 1.0}
        if mask.sum() < 20:
            continue
        level = (np.percentile(image[mask], 50) + np.percentile(image[~mask], 50)) / 2
        ious.append(_iou(image > level, mask))
        shifted.append(_iou(image > level, np.roll(mask, 3, axis=1)))
    assert len(ious) >= 10
    assert np.median(ious) > 0.85, ious
    assert np.median(shifted) < 0.6  # the check would notice a 3-pixel misalignment


@pytest.mark.parametrize(("name", "least", "most"), [("light", 0, 0), ("microscope", 8, 32)])
def test_the_microscope_augmentation_lights_a_field_unevenly(compose_config, name, least, most):
    """A flat field gains a gradient or a dark corner in about half of the microscope augmentation's patches
    (each of its two illumination steps at p=0.3), in none of light's (its brightness and contrast are uniform)."""
    augmentation = instantiate(compose_config("train", [f"augmentation={name}"]).augmentation)
    flat = np.full((96, 96), 0.6, np.float32)
    dataset = PatchDataset(_items(flat, np.zeros((96, 96), np.uint8)), patch_sampler(64, 0.0), augmentation, 40)
    uneven = 0
    for index in range(40):
        image = dataset[index]["image"][0].numpy()
        corners = [image[:16, :16].mean(), image[:16, -16:].mean(), image[-16:, :16].mean(), image[-16:, -16:].mean()]
        uneven += bool(np.ptp(corners) > 0.01)
    assert least <= uneven <= most


def test_foreground_oversampling_finds_sparse_beads():
    mask = np.zeros((256, 256), np.uint8)
    mask[200:206, 30:36] = 1
    image = mask.astype(np.float32)
    always = PatchDataset(_items(image, mask), patch_sampler(32, 1.0), None, 20)
    never = PatchDataset(_items(image, mask), patch_sampler(32, 0.0), None, 200)
    assert all(always[i]["mask"].sum() > 0 for i in range(20))
    assert np.mean([never[i]["mask"].sum() > 0 for i in range(200)]) < 0.3


def test_small_images_are_padded_to_the_patch_size():
    mask = _beads(1, size=40)
    item = PatchDataset(_items(mask.astype(np.float32), mask), patch_sampler(64, 0.0), None, 1)[0]
    assert item["image"].shape == (1, 64, 64) and torch.equal(item["image"] > 0.5, item["mask"] > 0.5)
