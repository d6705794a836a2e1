"""Pixel metrics over a whole epoch or data set (micro-averaged over all pixels)."""

from __future__ import annotations

from torchmetrics import MetricCollection
from torchmetrics.classification import BinaryF1Score, BinaryJaccardIndex, BinaryPrecision, BinaryRecall


def pixel_metrics(threshold: float = 0.5) -> MetricCollection:
    """Jaccard (IoU), Dice (= pixel F1), precision and recall of ``probabilities > threshold``."""
    return MetricCollection(
        {
            "jaccard": BinaryJaccardIndex(threshold=threshold),
            "dice": BinaryF1Score(threshold=threshold),
            "precision": BinaryPrecision(threshold=threshold),
            "recall": BinaryRecall(threshold=threshold),
        }
    )
