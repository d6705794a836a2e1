"""The evaluation task: pixel and object metrics against reference masks, a threshold sweep, worst images."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from rich.progress import track

from beadseg import plots
from beadseg.checkpoint import module_settings, read_checkpoint
from beadseg.data.folder import FolderSource, load_pair
from beadseg.inference.postprocess import PostProcess
from beadseg.inference.predictor import is_classical, load_predictor, resolve_checkpoint
from beadseg.metrics.objects import ObjectMatch, match_by_centroid, match_by_iou
from beadseg.metrics.pixel import confusion, scores
from beadseg.tables import write_csv

log = logging.getLogger(__name__)


def checkpoint_split(ckpt: str | None) -> dict[str, str]:
    """Which image the checkpoint's training run put in which split (empty for the classical model)."""
    return (module_settings(ckpt)[0].get("beadseg_split") or {}) if ckpt else {}


def best_threshold(sweep: list[dict], stored: float, tolerance: float = 0.005) -> float:
    """The threshold with the best object F1; among those within ``tolerance`` of it, the one nearest the stored
    threshold (a noise-level gain in F1 does not move it)."""
    top = max(s["object_f1"] for s in sweep)
    near = [s for s in sweep if s["object_f1"] >= top - tolerance]
    return min(near, key=lambda s: (abs(s["threshold"] - stored), -s["object_f1"]))["threshold"]


def select_pairs(source: FolderSource, split: str, ckpt: str | None) -> list[tuple[Path, Path]]:
    pairs = source.pairs()
    if split == "all":
        return pairs
    if not ckpt:
        raise ValueError(f"split={split} needs the checkpoint's split (ckpt=PATH); use split=all otherwise")
    assignment = checkpoint_split(ckpt)
    chosen = [pair for pair in pairs if assignment.get(pair[0].stem) == split]
    if not chosen:
        raise ValueError(f"no image of {source.root} is in the {split} split of {ckpt}; use split=all")
    return chosen


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


def evaluate(cfg) -> dict:
    """Run the whole evaluation; writes metrics.json, per_image.csv and figures into ``cfg.output``."""
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    predictor = load_predictor(cfg.get("model"), cfg.ckpt, dict(cfg.detector), dict(cfg.inference))
    post = PostProcess(**cfg.postprocess)
    classical = is_classical(cfg.get("model"))
    source = FolderSource(cfg.data.root, cfg.data.images, cfg.data.masks)
    ckpt = resolve_checkpoint(cfg.get("model"), cfg.ckpt)
    pairs = select_pairs(source, cfg.split, ckpt)  # model=classical may borrow a checkpoint's split
    threshold = predictor.threshold if post.threshold is None else post.threshold
    thresholds = sorted({*map(float, cfg.thresholds), threshold})
    runs = {t: Evaluation(cfg.match_distance, cfg.min_iou) for t in thresholds}
    at_threshold = {t: replace(post, threshold=t) for t in thresholds}
    kept = []
    for image_path, mask_path in track(pairs, description="evaluating"):
        sample = load_pair(image_path, mask_path)
        probability, _ = predictor.predict(sample.image)
        for t, run in runs.items():
            mask, labels = at_threshold[t](probability)
            row = run.add(sample.name, sample.mask, sample.labels, mask, labels)
            if t == threshold:
                kept.append((row, sample.image, sample.mask, mask))
    summaries = {t: run.summary() for t, run in runs.items()}
    sweep = [{"threshold": t, "iou": s["pixel"]["iou"], "object_f1": s["objects"]["centroid"]["f1"]} for t, s in summaries.items()]
    best = best_threshold(sweep, threshold)
    seen = sorted(p[0].stem for p in pairs if not classical and checkpoint_split(ckpt).get(p[0].stem) == "train")
    if seen:
        log.warning("%d of the %d images were training images of this checkpoint (%s...): these scores are not "
                    "a test of generalisation; use split=val or split=test", len(seen), len(pairs), ", ".join(seen[:3]))
    metrics = {"model": "classical" if classical else "checkpoint", "ckpt": None if classical else ckpt,
               "data": str(source.root), "split": cfg.split, "threshold": threshold,
               "training_images": len(seen), "training_image_names": seen,
               **summaries[threshold], "threshold_sweep": sweep, "best_threshold": best,
               "best_threshold_iou": max(sweep, key=lambda s: s["iou"])["threshold"]}
    written = {"metrics": out / "metrics.json", "per_image": write_csv(runs[threshold].rows, out / "per_image.csv",
                                                                       list(runs[threshold].rows[0]))}
    written["metrics"].write_text(json.dumps(metrics, indent=2))
    worst = sorted(kept, key=lambda case: (case[0]["object_f1"], case[0]["iou"]))[: cfg.worst_images]
    written["worst"] = plots.worst_figure(worst, out / "worst_images.png")
    written["sweep"] = plots.sweep_figure(sweep, best, out / "threshold_sweep.png")
    if cfg.write_threshold and not classical:
        written["tuned_checkpoint"] = write_tuned_checkpoint(Path(ckpt), best, out)
    return {"metrics": metrics, "written": written}


def write_tuned_checkpoint(ckpt: Path, threshold: float, out: Path) -> Path:
    """A copy of the checkpoint whose stored threshold is ``threshold`` (the original stays as it was),
    beside it, or in ``out`` for the shipped model (the installed package is not written to)."""
    from beadseg.pretrained import CHECKPOINT

    folder = out if ckpt.resolve() == CHECKPOINT else ckpt.parent
    target = folder / f"{ckpt.stem}.tuned.ckpt"
    if target.exists():
        raise FileExistsError(f"{target} exists already; beadseg never overwrites a checkpoint")
    checkpoint = read_checkpoint(ckpt)
    checkpoint["hyper_parameters"]["threshold"] = float(threshold)
    torch.save(checkpoint, target)
    return target
