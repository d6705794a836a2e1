"""Scores of predicted bead instances against reference ones: pixels, objects (matched one-to-one), counts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from skimage.measure import label

from beadseg.beads.instances import centres_by_area, centroids
from beadseg.beads.measure import image_noise
from beadseg.metrics.objects import ObjectMatch, match_by_iou, match_points
from beadseg.metrics.pixel import confusion, scores


def best_setting(sweep: list[dict], stored: dict, tolerance: float = 0.005) -> dict:
    """The sweep row with the best object F1; among those within ``tolerance`` of it, the one nearest the stored
    setting (``stored``: its threshold, and peak threshold for a centre-map model), so that a noise-level gain in
    F1 does not move it."""
    top = max(s["object_f1"] for s in sweep)
    near = [s for s in sweep if s["object_f1"] >= top - tolerance]
    return min(near, key=lambda s: (sum(abs(s[k] - v) for k, v in stored.items()), -s["object_f1"]))


def sweep_settings(threshold: float, peak: float | None, thresholds, peak_thresholds) -> list[tuple]:
    """A cross through the stored (threshold, peak threshold): every mask threshold at the stored peak threshold
    and every peak threshold (``peak_thresholds``: empty for a mask-only model) at the stored mask threshold."""
    return sorted({*((float(t), peak) for t in thresholds), (threshold, peak),
                   *((threshold, float(p)) for p in peak_thresholds)})


# The two conventions a merged mask can be counted by: each connected component is one bead (the lab's), or a
# component holds round(area / single-bead area) beads, placed by k-means (bead centres).
CONVENTIONS = ("components", "centres")


@dataclass
class Truth:
    """The reference beads of one image, in every form the scores need (computed once, reused per threshold):
    instances (beadseg's bead definition), connected components, and bead centres with merged components split
    by area."""

    mask: np.ndarray
    labels: np.ndarray
    instances: np.ndarray  # centroids of ``labels``
    components: np.ndarray
    centres: np.ndarray

    @classmethod
    def of(cls, mask: np.ndarray, labels: np.ndarray) -> Truth:
        mask = np.asarray(mask) > 0
        return cls(mask, labels, centroids(labels), centroids(label(mask, connectivity=1)), centres_by_area(mask))


def _relative(found: int, true: int) -> float | str:
    return round((found - true) / true, 4) if true else ""


class Scored(NamedTuple):
    """One image scored at one setting: pixel counts (tp, fp, fn, tn), object matches, its ``per_image.csv`` row."""

    pixels: np.ndarray
    matches: dict[str, ObjectMatch]
    row: dict


def score_settings(name: str, maps: np.ndarray, image: np.ndarray, truth: Truth, posts: dict, *,
                   match_distance: float, min_iou: float, keep=None) -> tuple[dict, np.ndarray | None]:
    """One image post-processed and scored at every setting (``posts``: setting -> PostProcess), the image's noise
    measured once; and the mask at the setting ``keep`` (for the worst-images figure). Runs in a worker of a pool."""
    noise, kept = image_noise(image), None
    scorer, scored = Evaluation(match_distance, min_iou), {}
    for setting, post in posts.items():
        mask, labels = post(maps, image=image, noise=noise)
        scored[setting] = scorer.score(name, truth, mask, labels)
        kept = mask if setting == keep else kept
    return scored, kept


class Evaluation:
    """Accumulates pixel counts, object matches and counts per image at one threshold. Objects are matched
    against beadseg's instances (``centroid``, ``iou``) and against both counting conventions."""

    def __init__(self, match_distance: float, min_iou: float) -> None:
        self.match_distance, self.min_iou = match_distance, min_iou
        self.pixels = np.zeros(4, np.int64)
        self.matches = {name: ObjectMatch(0, 0, 0) for name in ("centroid", "iou", *CONVENTIONS)}
        self.rows: list[dict] = []

    def add(self, name: str, truth: Truth, mask, labels) -> dict:
        """Score one image and add it: its row of ``per_image.csv``."""
        return self.record(self.score(name, truth, mask, labels))

    def score(self, name: str, truth: Truth, mask, labels) -> Scored:
        """One image's pixel counts, object matches and row, not yet added (a worker process can compute it)."""
        pixels = confusion(truth.mask, mask)
        found_points = centroids(labels)
        matches = {"centroid": match_points(truth.instances, found_points, self.match_distance),
                   "iou": match_by_iou(truth.labels, labels, self.min_iou),
                   **{c: match_points(getattr(truth, c), found_points, self.match_distance) for c in CONVENTIONS}}
        centroid = matches["centroid"]
        true_count, found = int(truth.labels.max()), int(labels.max())
        row = {"image": name, **{k: round(v, 4) for k, v in scores(pixels).items()},
               "object_precision": round(centroid.precision, 4), "object_recall": round(centroid.recall, 4),
               "object_f1": round(centroid.f1, 4), "object_f1_iou": round(matches["iou"].f1, 4),
               "true_count": true_count, "predicted_count": found, "count_error": found - true_count,
               "relative_count_error": _relative(found, true_count)}
        for convention in CONVENTIONS:
            true = len(getattr(truth, convention))
            row |= {f"object_f1_{convention}": round(matches[convention].f1, 4), f"true_count_{convention}": true,
                    f"relative_count_error_{convention}": _relative(found, true)}
        return Scored(pixels, matches, row)

    def record(self, scored: Scored) -> dict:
        """Add a scored image to the totals; its row."""
        self.pixels += scored.pixels
        self.matches = {key: self.matches[key] + match for key, match in scored.matches.items()}
        self.rows.append(scored.row)
        return scored.row

    def summary(self) -> dict:
        relative = [abs(r["relative_count_error"]) for r in self.rows if r["relative_count_error"] != ""]
        errors = [abs(r["count_error"]) for r in self.rows]
        objects: dict[str, dict[str, Any]] = {
            name: {"precision": m.precision, "recall": m.recall, "f1": m.f1, "true_positives": m.true_positives,
                   "false_positives": m.false_positives, "false_negatives": m.false_negatives}
            for name, m in self.matches.items()
        }
        for convention in CONVENTIONS:
            errors_by = [abs(r[f"relative_count_error_{convention}"]) for r in self.rows
                         if r[f"relative_count_error_{convention}"] != ""]
            objects[convention]["median_relative_count_error"] = float(np.median(errors_by)) if errors_by else None
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
