"""Label-aware training: visible beads that no mask covers are left out of the loss, not taught as background."""

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from beadseg.beads.classical import unlabelled_regions
from beadseg.data.folder import FolderSource
from beadseg.data.sample import IGNORE_INDEX
from beadseg.data.synthetic import render_beads
from beadseg.datasets.datamodule import BeadDataModule
from tests.helpers import write_pair


def sparse_beads(seed: int = 3):
    """A synthetic image, its labels, the labels with three isolated beads left out (missed by the annotator)."""
    from scipy import ndimage as ndi

    image, labels = render_beads(np.random.default_rng(seed), 192, 25, "brightfield", bit_depth=8)
    isolated = [b for b in range(1, labels.max() + 1)
                if not np.isin(labels[ndi.binary_dilation(labels == b, iterations=4)], [0, b], invert=True).any()]
    dropped = isolated[:3]
    partial = np.where(np.isin(labels, dropped), 0, labels)
    return image, labels, partial, dropped


def test_unlabelled_regions_cover_the_missed_beads_and_no_labelled_pixel():
    image, labels, partial, dropped = sparse_beads()
    region = unlabelled_regions(image, partial)
    assert len(dropped) == 3
    for bead in dropped:
        assert region[labels == bead].mean() > 0.8, bead  # the missed bead is left out of the loss
    assert not (region & (partial > 0)).any()  # never a labelled pixel
    others = (labels > 0) & ~np.isin(labels, dropped)
    assert region.sum() < 3 * sum((labels == b).sum() for b in dropped) and not (region & others).any()
    assert not unlabelled_regions(image, labels).any()  # complete labels: nothing to leave out


@pytest.mark.parametrize("loss", ["bce_dice", "dice_focal", "tversky", "bce"])
def test_ignored_pixels_give_no_gradient(compose_config, loss):
    loss_fn = instantiate(compose_config("train", [f"loss={loss}"]).loss)
    logits = torch.randn(2, 1, 16, 16, requires_grad=True)
    target = (torch.rand(2, 1, 16, 16) > 0.7).float()
    target[:, :, :6, :6] = IGNORE_INDEX
    loss_fn(logits, target).backward()
    assert torch.all(logits.grad[:, :, :6, :6] == 0) and logits.grad[:, :, 6:, 6:].abs().sum() > 0
    with torch.no_grad():  # what the ignored pixels predict does not change the loss
        changed = logits.detach().clone()
        changed[:, :, :6, :6] = 50.0
        assert loss_fn(changed, target) == pytest.approx(loss_fn(logits.detach(), target).item(), rel=1e-5)


def test_training_patches_mark_exactly_the_flagged_regions(tmp_path):
    image, labels, partial, dropped = sparse_beads()
    write_pair(tmp_path / "d", "a", image, partial.astype(np.uint16))
    write_pair(tmp_path / "d", "b", *render_beads(np.random.default_rng(4), 192, 25, "brightfield", bit_depth=8))
    datamodule = BeadDataModule(FolderSource(tmp_path / "d"), patch_size=192, val_fraction=0.5, num_workers=0,
                                foreground_oversample=0.0, ignore_unlabelled=True, seed=1)
    datamodule.setup()
    dataset = datamodule.datasets["train"]
    name, _, stored_labels, ignore = dataset.items[0]
    assert ignore is not None and np.array_equal(ignore, unlabelled_regions(dataset.items.source.read(
        dataset.items.rows[0]).image, stored_labels))
    target = dataset[0]["mask"][0].numpy()
    if name == "a":  # the image with missed beads: the patch (the whole image) carries them as ignored
        assert np.array_equal(target == IGNORE_INDEX, ignore) and ignore.any()
        assert np.array_equal(target == 1, partial > 0)
    assert datamodule.datasets["val"][0]["mask"].min() >= 0  # validation keeps the labels as they are
