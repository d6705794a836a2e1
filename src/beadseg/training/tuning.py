"""Thresholds tuned at the end of training on the run's own validation images and stored in its checkpoint, so
that ``beadseg-predict ckpt=<the run>`` counts with them and needs nothing more."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from beadseg.beads.postprocess import DEFAULT_PEAK_THRESHOLD
from beadseg.checkpoint import read_checkpoint, write_tuned_checkpoint
from beadseg.evaluation.scores import Evaluation, Truth, best_setting, score_settings, sweep_settings

log = logging.getLogger(__name__)


def mean_image_f1(rows: list[dict]) -> float:
    """Object F1 averaged over the images that hold or show a bead: a sparse frame weighs as much as a dense one,
    so the threshold chosen means the same at every density (a pooled F1 is ruled by the densest frames)."""
    scored = [row["object_f1"] for row in rows if row["true_count"] or row["predicted_count"]]
    return float(np.mean(scored)) if scored else 0.0


@torch.no_grad()
def tune_thresholds(module, dataset, thresholds, peak_thresholds, match_distance: float = 5.0) -> dict:
    """The (mask threshold, peak threshold) with the best :func:`mean_image_f1` on ``dataset`` (whole validation
    images), among a cross through the module's stored ones; each image is predicted once, post-processed per
    setting (memory stays flat)."""
    module.eval()
    two_maps = bool(module.hparams.centres)
    stored = (module.hparams.threshold, (module.post.peak_threshold or DEFAULT_PEAK_THRESHOLD) if two_maps else None)
    settings = sweep_settings(*stored, thresholds, peak_thresholds if two_maps else ())
    runs = {setting: Evaluation(match_distance, 0.5) for setting in settings}
    post = {setting: replace(module.post, threshold=setting[0], peak_threshold=setting[1]) for setting in settings}
    device = next(module.parameters()).device
    for index in range(len(dataset)):
        item = dataset[index]
        maps = torch.sigmoid(module(item["image"][None].to(device)).float())[0].cpu().numpy()
        image, labels = item["image"][0].numpy(), item["labels"][0].numpy()
        scored, _ = score_settings(str(item["name"]), maps, image, Truth.of(labels > 0, labels), post,
                                   match_distance=match_distance, min_iou=0.5)
        for setting, run in runs.items():
            run.record(scored[setting])
    sweep = [
        {"threshold": t, "peak_threshold": p, "object_f1": mean_image_f1(run.rows)} for (t, p), run in runs.items()
    ]
    beads = sum(row["true_count"] for row in runs[stored].rows)
    best = best_setting(sweep, {"threshold": stored[0], **({"peak_threshold": stored[1]} if two_maps else {})},
                        tolerance=noise_level(beads))
    return {**best, "images": len(dataset), "sweep": sweep}


def noise_level(beads: int) -> float:
    """The F1 gain a threshold must beat to move on validation frames holding ``beads`` beads: two beads' worth
    (a few validation frames, e.g. the napari widget's corrections, would otherwise move it on one bead), and
    0.005 at least.

    Examples
    --------
    >>> noise_level(40), noise_level(4000)
    (0.05, 0.005)
    """
    return max(0.005, 2 / max(beads, 1))


def tune_checkpoint(module, dataset, best_path: str, out: Path, settings) -> dict:
    """Load the best epoch's weights, tune on ``dataset``, and write ``<best>.tuned.ckpt`` carrying the tuned
    thresholds beside the best checkpoint (which stays as it was)."""
    module.load_state_dict(read_checkpoint(best_path)["state_dict"])
    tuned = tune_thresholds(
        module, dataset, settings.thresholds, settings.peak_thresholds, module.hparams.match_distance
    )
    path = write_tuned_checkpoint(Path(best_path), tuned["threshold"], out, tuned["peak_threshold"])
    log.info("thresholds tuned on %d validation images: mask %.2f, peak %s (mean object F1 per image %.4f) -> %s",
             tuned["images"], tuned["threshold"], tuned["peak_threshold"], tuned["object_f1"], path)
    return {"checkpoint": str(path), "threshold": tuned["threshold"], "peak_threshold": tuned["peak_threshold"],
            "val_mean_image_f1": tuned["object_f1"], "images": tuned["images"]}
