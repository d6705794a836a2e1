"""Pixel metrics: torchmetrics collections for training, and the same quantities from counts for evaluation."""

from __future__ import annotations

import numpy as np
from torchmetrics import MetricCollection
from torchmetrics.classification import BinaryF1Score, BinaryJaccardIndex, BinaryPrecision, BinaryRecall

from beadseg.data.sample import IGNORE_INDEX


def pixel_metrics(threshold: float = 0.5) -> MetricCollection:
    """Jaccard (IoU), Dice (= pixel F1), precision and recall of ``probabilities > threshold``, over all pixels
    but those the target leaves out (``IGNORE_INDEX``)."""
    return MetricCollection(
        {
            "jaccard": BinaryJaccardIndex(threshold=threshold, ignore_index=IGNORE_INDEX),
            "dice": BinaryF1Score(threshold=threshold, ignore_index=IGNORE_INDEX),
            "precision": BinaryPrecision(threshold=threshold, ignore_index=IGNORE_INDEX),
            "recall": BinaryRecall(threshold=threshold, ignore_index=IGNORE_INDEX),
        }
    )


def confusion(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Pixel counts ``[tp, fp, fn, tn]`` of two boolean masks."""
    tp = int(np.count_nonzero(truth & predicted))
    fp = int(np.count_nonzero(predicted)) - tp
    fn = int(np.count_nonzero(truth)) - tp
    return np.array([tp, fp, fn, truth.size - tp - fp - fn], np.int64)


def scores(counts: np.ndarray) -> dict[str, float]:
    """IoU, Dice, precision, recall, F1 and accuracy from ``[tp, fp, fn, tn]`` (empty-vs-empty scores 1)."""
    tp, fp, fn, tn = (float(c) for c in counts)

    def ratio(num: float, den: float) -> float:
        return num / den if den else 1.0

    dice = ratio(2 * tp, 2 * tp + fp + fn)
    return {
        "iou": ratio(tp, tp + fp + fn),
        "dice": dice,
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "f1": dice,
        "accuracy": ratio(tp + tn, tp + fp + fn + tn),
    }
