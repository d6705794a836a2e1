"""Object-level metrics: beads matched one-to-one (Hungarian) by centroid distance or by overlap."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from beadseg.beads.instances import centroids


@dataclass
class ObjectMatch:
    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        present = self.true_positives + self.false_negatives
        return self.true_positives / present if present else 1.0

    @property
    def f1(self) -> float:
        total = 2 * self.true_positives + self.false_positives + self.false_negatives
        return 2 * self.true_positives / total if total else 1.0

    def __add__(self, other: ObjectMatch) -> ObjectMatch:
        return ObjectMatch(self.true_positives + other.true_positives, self.false_positives + other.false_positives,
                           self.false_negatives + other.false_negatives)


def _assigned(cost: np.ndarray, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The allowed pairs (rows, columns) of the one-to-one assignment of least total ``cost``."""
    if not allowed.any():
        return np.zeros(0, int), np.zeros(0, int)
    rows, cols = linear_sum_assignment(np.where(allowed, cost, cost.max() + 1e6))
    keep = allowed[rows, cols]
    return rows[keep], cols[keep]


def matched_pairs(truth: np.ndarray, predicted: np.ndarray, max_distance: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(truth_rows, predicted_rows)`` of the one-to-one matches of (N, 2) points lying within
    ``max_distance`` pixels (minimising total distance): the points of neither are the misses and the false beads.

    Examples
    --------
    >>> matched_pairs(np.array([[0, 0], [10, 10]]), np.array([[10, 11], [40, 40]]))
    (array([1]), array([0]))
    """
    if not len(truth) or not len(predicted):
        return np.zeros(0, int), np.zeros(0, int)
    distance = cdist(truth, predicted)
    return _assigned(distance, distance <= max_distance)


def match_points(truth: np.ndarray, predicted: np.ndarray, max_distance: float = 5.0) -> ObjectMatch:
    """One-to-one matches of (N, 2) points lying within ``max_distance`` pixels (minimising total distance)."""
    matched = len(matched_pairs(truth, predicted, max_distance)[0])
    return ObjectMatch(matched, len(predicted) - matched, len(truth) - matched)


def match_by_centroid(truth: np.ndarray, predicted: np.ndarray, max_distance: float = 5.0) -> ObjectMatch:
    """One-to-one matches of instances whose centroids lie within ``max_distance`` pixels."""
    return match_points(centroids(truth), centroids(predicted), max_distance)


def iou_matrix(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """IoU of every truth instance (rows) with every predicted one (columns)."""
    n_true, n_pred = int(truth.max()), int(predicted.max())
    overlap = np.zeros((n_true + 1, n_pred + 1), np.int64)
    np.add.at(overlap, (truth.ravel(), predicted.ravel()), 1)
    area_true, area_pred = overlap.sum(1, keepdims=True), overlap.sum(0, keepdims=True)
    union = area_true + area_pred - overlap
    return (overlap / np.maximum(union, 1))[1:, 1:]


def match_by_iou(truth: np.ndarray, predicted: np.ndarray, min_iou: float = 0.5) -> ObjectMatch:
    """One-to-one matches with IoU ≥ ``min_iou`` (maximising total IoU)."""
    iou = iou_matrix(truth, predicted)
    matched = len(_assigned(-iou, iou >= min_iou)[0]) if iou.size else 0
    return ObjectMatch(matched, int(predicted.max()) - matched, int(truth.max()) - matched)


class ObjectCounts(Metric):
    """Object F1 (centroid matching) and the median relative count error over images, accumulated across
    batches and synchronised across DDP processes. ``update`` takes per-image true and predicted labels."""

    full_state_update = False

    true_positives: torch.Tensor  # states, added below (torchmetrics sums them over processes)
    false_positives: torch.Tensor
    false_negatives: torch.Tensor
    count_errors: list[torch.Tensor]

    def __init__(self, max_distance: float = 5.0) -> None:
        super().__init__()
        self.max_distance = max_distance
        for name in ("true_positives", "false_positives", "false_negatives"):
            self.add_state(name, default=torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("count_errors", default=[], dist_reduce_fx="cat")

    def update(self, truth: np.ndarray, predicted: np.ndarray) -> None:
        match = match_by_centroid(truth, predicted, self.max_distance)
        self.true_positives += match.true_positives
        self.false_positives += match.false_positives
        self.false_negatives += match.false_negatives
        true_count = int(truth.max())
        if true_count:
            self.count_errors.append(torch.tensor([abs(int(predicted.max()) - true_count) / true_count]))

    def compute(self) -> dict[str, torch.Tensor]:
        match = ObjectMatch(int(self.true_positives), int(self.false_positives), int(self.false_negatives))
        errors = dim_zero_cat(self.count_errors) if len(self.count_errors) else torch.zeros(1)
        return {"object_f1": torch.tensor(match.f1), "count_error": torch.quantile(errors.float(), 0.5)}
