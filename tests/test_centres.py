"""The object-aware target (target=centres): heat-maps drawn from labels and masks, decoding by peaks, its loss,
the scoring conventions, and a run from training through predict, eval and export."""

import math
from dataclasses import replace

import albumentations as A
import numpy as np
import pytest
import torch
from skimage.draw import disk
from skimage.measure import label

from beadseg.beads.instances import (
    bead_instances,
    centre_heatmap,
    centres_by_area,
    single_bead_area,
    split_at_peaks,
    split_by_area,
    split_touching,
)
from beadseg.beads.postprocess import PostProcess
from beadseg.data.sample import IGNORE_INDEX
from beadseg.data.synthetic import SyntheticSource
from beadseg.datasets.datamodule import PatchDataset, WholeImageDataset, patch_sampler
from beadseg.evaluation.scores import Evaluation, Truth
from beadseg.losses import CentreFocalLoss
from beadseg.metrics.objects import match_by_iou

# three disks of radius 4: two touching (centres 7 px apart), one alone
CENTRES = [(10, 10), (10, 17), (30, 30)]


def disks(shape=(40, 40), centres=CENTRES, radius=4) -> np.ndarray:
    labels = np.zeros(shape, np.int32)
    for index, centre in enumerate(centres, start=1):
        rr, cc = disk(centre, radius, shape=shape)
        free = labels[rr, cc] == 0
        labels[rr[free], cc[free]] = index
    return labels


def test_heatmap_from_instance_labels_peaks_at_each_centre():
    heat = centre_heatmap(disks(), sigma=1.5)
    assert heat.dtype == np.float32 and heat.max() == 1.0
    assert sorted(map(tuple, np.argwhere(heat == 1.0))) == CENTRES
    assert heat[10, 12] == pytest.approx(math.exp(-4 / (2 * 1.5**2)), rel=1e-6)  # 2 px from a centre
    assert heat[0, 39] == 0.0  # far from every bead


def test_heatmap_from_a_merged_binary_mask_finds_both_touching_beads():
    mask = disks() > 0
    assert label(mask, connectivity=1).max() == 2  # the touching pair is one component
    heat = centre_heatmap(bead_instances(mask.astype(np.uint8)), sigma=1.5)
    peaks = np.argwhere(heat == 1.0)
    assert len(peaks) == 3
    assert np.abs(peaks - np.array(CENTRES)).max() <= 1


def test_centres_by_area_split_merged_components_by_the_single_bead_area():
    mask = disks() > 0
    assert single_bead_area(mask) == pytest.approx((disks() == 3).sum())  # the lone bead's area, not the pair's
    found = centres_by_area(mask)
    assert len(found) == 3
    nearest = np.sort(np.hypot(*(found[:, None] - np.array(CENTRES)[None]).transpose(2, 0, 1)).min(0))
    assert nearest.max() < 1.5


def test_split_by_area_gives_one_instance_per_bead_in_a_chain_and_training_uses_it():
    from beadseg.data.io import Normalization
    from beadseg.data.sample import BeadSample
    from beadseg.datasets.datamodule import NormalizedItem

    mask = np.zeros((60, 100), bool)
    for x in (15, 26, 37, 48):  # a chain of four touching beads, radius 6, 11 px apart: one component
        mask[disk((20, x), 6)] = True
    for centre in ((45, 20), (45, 60), (45, 85)):  # three lone beads give the single-bead area
        mask[disk(centre, 6)] = True
    assert label(mask).max() == 4
    labels = split_by_area(mask)
    assert labels.max() == 7 and np.array_equal(labels > 0, mask)
    chain = np.unique(labels[20, 10:55])
    assert len(chain[chain > 0]) == 4  # the chain holds four beads, each about one bead's area
    areas = np.bincount(labels.ravel())[1:]
    assert areas.min() > 0.7 * areas.max()
    sample = BeadSample("chain", mask.astype(np.float32), label(mask).astype(np.int32), binary_mask=True)
    normalization = Normalization()
    normalization.fit([1.0])
    assert NormalizedItem(normalization)(sample, {})[2].max() == 7  # the area convention (default)
    assert NormalizedItem(normalization, bead_truth="watershed")(sample, {})[2].max() == 4  # labels as given


def test_peak_decoding_counts_clusters_a_distance_watershed_gets_wrong():
    """Dense synthetic clusters: with the exact heat-map, the peaks find every bead; the distance-transform
    watershed of the same exact mask merges or splits some."""
    source = SyntheticSource(n_images=3, image_size=256, seed=7, min_beads=300, max_beads=700, cluster_fraction=0.5)
    watershed_errors = 0
    for _, _, labels in map(source.render, range(3)):
        assert labels.max() > 50
        decoded = split_at_peaks(labels > 0, centre_heatmap(labels, 1.5), min_peak=0.3, min_distance=2)
        assert decoded.max() == labels.max()
        assert match_by_iou(labels, decoded, 0.5).f1 == 1.0
        watershed = match_by_iou(labels, split_touching(labels > 0), 0.5)
        watershed_errors += watershed.false_negatives + watershed.false_positives
    assert watershed_errors > 0
    # disks of radius 4 with centres 5 px apart: one distance-transform peak, two heat-map peaks
    overlapping = disks(centres=[(20, 16), (20, 21)])
    assert split_touching(overlapping > 0).max() == 1
    assert split_at_peaks(overlapping > 0, centre_heatmap(overlapping, 1.5)).max() == 2


def test_postprocess_uses_the_centre_map_and_drops_components_without_a_peak():
    labels = disks()
    probability = (labels > 0).astype(np.float32)
    probability[35:39, 2:6] = 1.0  # a blob the heat-map does not call a bead
    heat = centre_heatmap(labels, 1.5)
    post = PostProcess(min_area=1, min_circularity=0.0, debris_area_fraction=None)  # the blob is bead-sized here
    mask_only = post(probability)[1]
    both = post(np.stack([probability, heat]))[1]
    assert mask_only.max() == 4  # watershed: 3 beads + the blob
    assert both.max() == 3
    chunked, rows, _ = replace(post, chunk=16, halo=12).instances(
        np.stack([probability, heat]), probability)
    assert chunked.max() == 3 and len(rows) == 3


def test_centre_focal_loss_matches_hand_computed_value_and_ignores_flagged_pixels():
    # a peak predicted 0.8, a near pixel (target 0.5) predicted 0.3, a far one (target 0) predicted 0.1
    target = torch.tensor([1.0, 0.5, 0.0]).reshape(1, 1, 1, 3)
    logits = torch.logit(torch.tensor([0.8, 0.3, 0.1])).reshape(1, 1, 1, 3)
    expected = -(0.2**2 * math.log(0.8) + 0.5**4 * 0.3**2 * math.log(0.7) + 0.1**2 * math.log(0.9))
    loss = CentreFocalLoss(alpha=2, beta=4)
    assert loss(logits, target).item() == pytest.approx(expected, rel=1e-5)
    flagged = target.clone()
    flagged[..., 1] = IGNORE_INDEX
    without = -(0.2**2 * math.log(0.8) + 0.1**2 * math.log(0.9))
    assert loss(logits, flagged).item() == pytest.approx(without, rel=1e-5)


def test_datasets_serve_the_heatmap_of_the_augmented_labels():
    source = SyntheticSource(n_images=1, image_size=64, seed=3, min_beads=40, max_beads=41)
    _, image, labels = source.render(0)

    class Items(list):  # what OnDemand serves: name, normalised image, labels, ignore
        def __getitem__(self, index):
            return "a", image.astype(np.float32) / image.max(), labels.astype(np.uint16), None

    flips = A.Compose([A.HorizontalFlip(p=1.0)])
    patch = PatchDataset(Items([0]), patch_sampler(64, 0.0), flips, 1, centre_sigma=1.5)[0]
    flipped = labels[:, ::-1]
    assert torch.equal(patch["centres"][0], torch.from_numpy(centre_heatmap(np.ascontiguousarray(flipped), 1.5)))
    assert torch.equal(patch["mask"][0], torch.from_numpy((flipped > 0).astype(np.float32)))
    whole = WholeImageDataset(Items([0]), centre_sigma=1.5)[0]
    assert int((whole["centres"] == 1.0).sum()) == len(np.unique(labels)) - 1


def test_both_conventions_are_scored():
    labels = disks()
    truth = Truth.of(labels > 0, bead_instances((labels > 0).astype(np.uint8)))
    run = Evaluation(match_distance=3, min_iou=0.5)
    row = run.add("pair", truth, labels > 0, labels)  # a perfect split of the touching pair
    assert row["true_count_components"] == 2 and row["true_count_centres"] == 3
    assert row["object_f1_centres"] == 1.0
    assert row["object_f1_components"] == pytest.approx(2 * 1 / (2 + 3))  # the lone bead only
    assert row["relative_count_error_components"] == 0.5 and row["relative_count_error_centres"] == 0.0
