"""Scores of predicted bead instances against reference ones: pixels, objects (matched one-to-one), counts."""

from __future__ import annotations

import numpy as np

from beadseg.metrics.objects import ObjectMatch, match_by_centroid, match_by_iou
from beadseg.metrics.pixel import confusion, scores


def best_threshold(sweep: list[dict], stored: float, tolerance: float = 0.005) -> float:
    """The threshold with the best object F1; among those within ``tolerance`` of it, the one nearest the stored
    threshold (a noise-level gain in F1 does not move it)."""
    top = max(s["object_f1"] for s in sweep)
    near = [s for s in sweep if s["object_f1"] >= top - tolerance]
    return min(near, key=lambda s: (abs(s["threshold"] - stored), -s["object_f1"]))["threshold"]


class Evaluation:
    """Accumulates pixel counts, object matches and counts per image at one threshold."""

    def __init__(self, match_distance: float, min_iou: float) -> None:
        self.match_distance, self.min_iou = match_distance, min_iou
        self.pixels = np.zeros(4, np.int64)
        self.by_centroid, self.by_iou = ObjectMatch(0, 0, 0), ObjectMatch(0, 0, 0)
        self.rows: list[dict] = []

    def add(self, name: str, truth_mask, truth_labels, mask, labels) -> dict:
        pixels = confusion(truth_mask, mask)
        centroid = match_by_centroid(truth_labels, labels, self.match_distance)
        overlap = match_by_iou(truth_labels, labels, self.min_iou)
        self.pixels += pixels
        self.by_centroid, self.by_iou = self.by_centroid + centroid, self.by_iou + overlap
        true_count, found = int(truth_labels.max()), int(labels.max())
        row = {"image": name, **{k: round(v, 4) for k, v in scores(pixels).items()},
               "object_precision": round(centroid.precision, 4), "object_recall": round(centroid.recall, 4),
               "object_f1": round(centroid.f1, 4), "object_f1_iou": round(overlap.f1, 4),
               "true_count": true_count, "predicted_count": found, "count_error": found - true_count,
               "relative_count_error": round((found - true_count) / true_count, 4) if true_count else ""}
        self.rows.append(row)
        return row

    def summary(self) -> dict:
        relative = [abs(r["relative_count_error"]) for r in self.rows if r["relative_count_error"] != ""]
        errors = [abs(r["count_error"]) for r in self.rows]
        objects = {
            name: {"precision": m.precision, "recall": m.recall, "f1": m.f1, "true_positives": m.true_positives,
                   "false_positives": m.false_positives, "false_negatives": m.false_negatives}
            for name, m in (("centroid", self.by_centroid), ("iou", self.by_iou))
        }
        true_total = sum(r["true_count"] for r in self.rows)
        found_total = sum(r["predicted_count"] for r in self.rows)
        return {
            "images": len(self.rows),
            "pixel": scores(self.pixels),
            "pixel_counts": {k: int(v) for k, v in zip(("tp", "fp", "fn", "tn"), self.pixels)},
            "objects": objects,
            "count": {"mean_absolute_error": float(np.mean(errors)) if errors else 0.0,
                      "mean_relative_error": float(np.mean(relative)) if relative else None,
                      "median_relative_error": float(np.median(relative)) if relative else None,
                      "total_true": true_total, "total_predicted": found_total,
                      "total_relative_error": (found_total - true_total) / true_total if true_total else None},
        }
