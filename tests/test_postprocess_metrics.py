"""Post-processing and metrics on hand-made cases with known answers."""

import numpy as np
import pytest
from skimage.draw import disk

from beadseg.beads.instances import deep_maxima, split_touching
from beadseg.beads.postprocess import PostProcess
from beadseg.metrics.objects import iou_matrix, match_by_centroid, match_by_iou
from beadseg.metrics.pixel import confusion, scores


def two_touching_disks() -> np.ndarray:
    mask = np.zeros((40, 60), bool)
    mask[disk((20, 20), 7)] = True
    mask[disk((20, 33), 7)] = True  # centres 13 px apart: the disks overlap in a neck
    return mask


def test_watershed_splits_two_touching_disks_and_leaves_one_whole():
    assert split_touching(two_touching_disks()).max() == 2
    one = np.zeros((40, 40), bool)
    one[disk((20, 20), 7)] = True
    labels = split_touching(one)
    assert labels.max() == 1 and (labels > 0).sum() == one.sum()


def test_deep_maxima_equal_skimage_h_maxima_object_by_object():
    from scipy import ndimage as ndi
    from skimage.morphology import h_maxima

    rng = np.random.default_rng(7)
    for smooth in (1.5, 2.5, 4.0):  # blobs of one peak, and merged ones of several
        mask = ndi.gaussian_filter(rng.random((160, 160)), smooth) > 0.52
        distance = ndi.distance_transform_edt(mask)
        objects = ndi.label(mask, structure=np.ones((3, 3)))[0]
        expected = np.zeros(mask.shape, bool)
        for number, box in enumerate(ndi.find_objects(objects), start=1):
            mine = objects[box] == number
            expected[box] |= h_maxima(np.pad(np.where(mine, distance[box], 0), 1), 0.7)[1:-1, 1:-1].astype(bool) & mine
        assert ndi.label(expected)[1] > 10  # many maxima: the comparison is not vacuous
        np.testing.assert_array_equal(deep_maxima(distance, 0.7), expected)


def test_postprocess_threshold_holes_size_and_shape():
    probability = np.zeros((60, 60), np.float32)
    probability[disk((15, 15), 6)] = 0.9
    probability[15, 15] = 0.1                 # a hole
    probability[40:42, 5:55] = 0.9            # a thin line (not round)
    probability[50, 50] = 0.9                 # a speck
    mask, labels = PostProcess(min_area=4, min_circularity=0.3)(probability)
    assert labels.max() == 1 and mask[15, 15] and not mask[41, 30] and not mask[50, 50]
    _, none = PostProcess(threshold=0.95)(probability)
    assert none.max() == 0
    _, kept = PostProcess(min_circularity=0.0, min_area=1, watershed=False, debris_area_fraction=None)(probability)
    assert kept.max() == 3


def test_pixel_scores_from_counts():
    truth = np.array([[1, 1, 0, 0]], bool)
    predicted = np.array([[1, 0, 1, 0]], bool)
    counts = confusion(truth, predicted)
    assert counts.tolist() == [1, 1, 1, 1]
    got = scores(counts)
    assert got == pytest.approx({"iou": 1 / 3, "dice": 0.5, "precision": 0.5, "recall": 0.5, "f1": 0.5, "accuracy": 0.5})
    assert scores(confusion(np.zeros((2, 2), bool), np.zeros((2, 2), bool)))["iou"] == 1.0


def test_centroid_matching_is_one_to_one_within_tolerance():
    truth = np.zeros((50, 50), np.int32)
    truth[disk((10, 10), 3)] = 1
    truth[disk((30, 30), 3)] = 2
    predicted = np.zeros_like(truth)
    predicted[disk((11, 12), 3)] = 1   # 2.2 px from bead 1: found
    predicted[disk((12, 9), 2)] = 2    # also near bead 1: a duplicate, a false positive
    predicted[disk((30, 37), 3)] = 3   # 7 px from bead 2: too far
    match = match_by_centroid(truth, predicted, max_distance=5)
    assert (match.true_positives, match.false_positives, match.false_negatives) == (1, 2, 1)
    assert match.precision == pytest.approx(1 / 3) and match.recall == 0.5 and match.f1 == pytest.approx(0.4)
    assert match_by_centroid(truth, predicted, max_distance=8).true_positives == 2


def test_iou_matching_and_matrix():
    truth = np.zeros((10, 10), np.int32)
    truth[0:4, 0:4] = 1                 # 16 px
    predicted = np.zeros_like(truth)
    predicted[0:4, 1:5] = 1             # overlap 12, union 20
    predicted[8:10, 8:10] = 2
    assert iou_matrix(truth, predicted)[0].tolist() == pytest.approx([0.6, 0.0])
    match = match_by_iou(truth, predicted, 0.5)
    assert (match.true_positives, match.false_positives, match.false_negatives) == (1, 1, 0)
    assert match_by_iou(truth, predicted, 0.7).true_positives == 0
    empty = match_by_centroid(np.zeros((5, 5), int), np.zeros((5, 5), int))
    assert empty.f1 == 1.0


def test_circularity_of_small_disks_is_close_to_one():
    from skimage.draw import disk

    from beadseg.beads.measure import object_table

    labels = np.zeros((60, 90), np.int32)
    for index, (centre, radius) in enumerate((((15, 15), 2.5), ((15, 45), 3.8), ((40, 30), 5.0), ((40, 70), 7.5)), start=1):
        labels[disk(centre, radius, shape=labels.shape)] = index
    rows = object_table(labels, np.ones(labels.shape), np.ones(labels.shape))
    assert all(0.95 <= row["circularity"] <= 1.0 for row in rows), [row["circularity"] for row in rows]
    assert rows[0]["circularity"] == 1.0  # a 5 px disk: 1.05-1.08 before the cap, as ImageJ caps its Circ. at 1
    square = np.zeros((20, 40), np.int32)
    square[5:15, 5:35] = 1  # a 10 x 30 bar: clearly not round
    assert object_table(square, np.ones(square.shape), np.ones(square.shape))[0]["circularity"] < 0.75


def test_prediction_and_evaluation_find_the_same_instances():
    """beadseg-predict (chunked, with the object table) and beadseg-eval (whole frame) post-process alike."""
    from scipy.ndimage import gaussian_filter

    from beadseg.data.synthetic import render_beads

    _, truth = render_beads(np.random.default_rng(2), 256, 150, "brightfield", bit_depth=8)
    probability = gaussian_filter((truth > 0).astype(np.float32), 0.8)
    post = PostProcess(min_circularity=0.5, min_area=20)
    _, whole = post(probability)
    chunked, rows, _ = post.instances(probability, probability, labels_out=None)
    assert whole.max() > 100 and np.array_equal(whole, chunked) and len(rows) == whole.max()
    assert min(row["area"] for row in rows) >= 20 and min(row["circularity"] for row in rows) >= 0.5


def test_object_counts_metric_gives_hand_computed_f1_and_count_error():
    from beadseg.metrics.objects import ObjectCounts

    truth = np.zeros((40, 60), np.int32)
    predicted = np.zeros_like(truth)
    for index, (y, x) in enumerate(((10, 10), (10, 30), (30, 20)), start=1):
        truth[y - 2 : y + 3, x - 2 : x + 3] = index
    predicted[8:13, 8:13], predicted[9:14, 29:34], predicted[30:35, 50:55] = 1, 2, 3  # 2 found, 1 false, 1 missed
    metric = ObjectCounts(max_distance=5.0)
    metric.update(truth, predicted)  # counts 3 vs 3: no count error, yet one bead wrong
    second = np.zeros((20, 20), np.int32)
    second[2:5, 2:5], second[10:13, 10:13], second[2:5, 12:15], second[14:17, 3:6] = 1, 2, 3, 4
    metric.update(second, (second == 1) + 2 * (second == 2))  # 2 of 4 found: count error 0.5
    values = metric.compute()
    assert float(values["object_f1"]) == pytest.approx(2 * 4 / (2 * 4 + 1 + 3))  # TP 4, FP 1, FN 3
    assert float(values["count_error"]) == pytest.approx(0.25)  # median of 0.0 and 0.5


def test_vectorised_measurements_equal_skimage_regionprops_on_touching_beads():
    """The object table measures all beads at once; skimage's per-region regionprops is the independent truth."""
    from scipy import ndimage as ndi
    from skimage.measure import regionprops_table

    from beadseg.beads.instances import fill_holes
    from beadseg.beads.measure import object_table
    from beadseg.data.io import percentiles

    rng = np.random.default_rng(3)
    mask = ndi.gaussian_filter(rng.random((120, 150)), 2.0) > 0.52
    labels = split_touching(mask)  # touching beads share edges: each must keep its own perimeter
    labels[labels == 5] = 0  # a missing label number
    image = rng.integers(0, 4000, labels.shape).astype(np.uint16)
    probability = rng.random(labels.shape).astype(np.float32)
    rows = object_table(labels, image, probability, offset=(7, 11))
    truth = regionprops_table(labels, intensity_image=np.stack([image.astype(np.float32), probability], -1),
                              properties=("label", "centroid", "area", "perimeter_crofton", "intensity_mean", "bbox"))
    assert [row["bead_id"] for row in rows] == truth["label"].tolist() and len(rows) > 20
    for i, row in enumerate(rows):
        assert row["area"] == truth["area"][i]
        assert row["centroid_y"] == pytest.approx(truth["centroid-0"][i] + 7, abs=0.006)
        assert row["centroid_x"] == pytest.approx(truth["centroid-1"][i] + 11, abs=0.006)
        expected = min(4 * np.pi * truth["area"][i] / max(truth["perimeter_crofton"][i], 1.0) ** 2, 1.0)
        assert row["circularity"] == pytest.approx(expected, abs=0.0006)
        assert row["mean_intensity"] == pytest.approx(truth["intensity_mean-0"][i], abs=0.002)
        assert row["mean_probability"] == pytest.approx(truth["intensity_mean-1"][i], abs=0.0001)
        assert row["at_edge"] == (truth["bbox-0"][i] == 0 or truth["bbox-1"][i] == 0 or
                                  truth["bbox-2"][i] == labels.shape[0] or truth["bbox-3"][i] == labels.shape[1])
    assert any(row["at_edge"] for row in rows) and not all(row["at_edge"] for row in rows)
    # a piece of a larger frame, at (7, 11) of a frame whose right edge it shares: only that edge counts
    piece = object_table(labels, image, probability, (7, 11), frame=(labels.shape[0] + 20, labels.shape[1] + 11))
    assert [row["at_edge"] for row in piece] == (truth["bbox-3"] == labels.shape[1]).tolist()
    for _ in range(10):
        blobs = ndi.gaussian_filter(rng.random((60, 70)), 1.5) > 0.5
        assert (fill_holes(blobs) == ndi.binary_fill_holes(blobs)).all()
    stack = ndi.gaussian_filter(rng.random((6, 30, 40)), (0, 1.5, 1.5)) > 0.5  # each frame filled on its own
    assert (fill_holes(stack) == np.stack([ndi.binary_fill_holes(frame) for frame in stack])).all()
    for values in (image, image.astype(np.uint8), rng.integers(0, 9, (3, 1)).astype(np.uint8)):
        expected = np.percentile(values.astype(np.float64), (0, 0.5, 1, 50, 99.8, 100))
        assert percentiles(values, (0, 0.5, 1, 50, 99.8, 100)) == pytest.approx(expected, abs=1e-9)
