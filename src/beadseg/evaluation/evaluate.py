"""The evaluation task: a checkpoint's (or the classical baseline's) predictions, or a folder of any tool's saved
predictions, scored against reference masks; a threshold sweep, the worst images."""

from __future__ import annotations

import json
import logging
from collections import deque
from dataclasses import replace
from functools import partial
from pathlib import Path

from hydra.utils import instantiate
from rich.progress import track

from beadseg import plots
from beadseg.beads.instances import bead_instances
from beadseg.beads.label_qa import label_faults
from beadseg.beads.size import BeadSizing
from beadseg.checkpoint import tuned_checkpoint_path, write_tuned_checkpoint
from beadseg.data.folder import FolderSource, load_pair
from beadseg.data.io import BeadDataError, image_name, list_images, read_mask
from beadseg.data.readers import pixel_size_um
from beadseg.evaluation.scores import Evaluation, Truth, best_setting, score_settings, sweep_settings
from beadseg.inference.predictor import Predictor, frames_per_step, predictor_from_config
from beadseg.inference.sizes import check_sizing, report_sizes
from beadseg.settings import check_settings
from beadseg.system import usable_cpus
from beadseg.tables import write_csv
from beadseg.workers.pool import WorkerPool, finishing_workers

log = logging.getLogger(__name__)


def select_pairs(source: FolderSource, split: str, predictor: Predictor) -> list[tuple[Path, Path]]:
    """The folder's pairs in ``split`` of the predictor's checkpoint (``all``: every pair)."""
    pairs = source.pairs()
    if split == "all":
        return pairs
    ckpt = predictor.checkpoint
    if not ckpt:
        raise ValueError(f"split={split} needs the checkpoint's split (ckpt=PATH); use split=all otherwise")
    assignment = predictor.training_split
    chosen = [pair for pair in pairs if assignment.get(image_name(pair[0])) == split]
    if not chosen:
        raise ValueError(f"no image of {source.root} is in the {split} split of {ckpt}; use split=all")
    return chosen


def write_results(out: Path, run: Evaluation, metrics: dict, kept: list, *, worst_images: int, cfg) -> dict:
    """``metrics.json``, ``per_image.csv`` and the worst images (truth vs prediction, with the label faults that
    the label QA finds in their masks)."""
    worst = sorted(kept, key=lambda case: (case[0]["object_f1"], case[0]["iou"]))[:worst_images]
    detect, qa = instantiate(cfg.detector), instantiate(cfg.qa)
    faults = [label_faults(image, mask, detect, qa) for _, image, mask, _ in worst]
    metrics["worst_images"] = [
        {"image": row["image"], "object_f1": row["object_f1"], "label_faults": fault}
        for (row, *_), fault in zip(worst, faults)
    ]
    written = {
        "metrics": out / "metrics.json",
        "per_image": write_csv(run.rows, out / "per_image.csv", list(run.rows[0])),
    }
    written["metrics"].write_text(json.dumps(metrics, indent=2))
    written["worst"] = plots.worst_figure(worst, out / "worst_images.png", faults)
    return written


def evaluate_saved(cfg, source: FolderSource, out: Path) -> dict:
    """Score a folder of saved predictions (any tool's masks or label images, paired by file stem, e.g. the
    ``instances/`` of a beadseg-predict run) against the reference masks, with beadseg's metrics."""
    predicted = {image_name(path): path for path in list_images(cfg.predictions)}
    pairs = source.pairs()
    missing = [image_name(image) for image, _ in pairs if image_name(image) not in predicted]
    if missing:
        raise BeadDataError(f"predictions={cfg.predictions} has no prediction for {len(missing)} image(s) of "
                            f"{source.root}: {', '.join(missing[:5])}")
    run, kept = Evaluation(cfg.match_distance, cfg.min_iou), []
    for image_path, mask_path in track(pairs, description="scoring"):
        sample = load_pair(image_path, mask_path, source.plane)
        raw = read_mask(predicted[sample.name])
        if raw.shape != sample.labels.shape:
            raise BeadDataError(f"size mismatch: prediction {predicted[sample.name]} is {raw.shape}, "
                                f"mask {mask_path} is {sample.labels.shape}")
        labels = bead_instances(raw)
        row = run.add(sample.name, Truth.of(sample.mask, sample.labels), labels > 0, labels)
        kept.append((row, sample.image, sample.mask, labels > 0))
    metrics = {
        "model": "saved predictions",
        "predictions": str(cfg.predictions),
        "data": str(source.root),
        **run.summary(),
    }
    return {
        "metrics": metrics,
        "written": write_results(out, run, metrics, kept, worst_images=cfg.worst_images, cfg=cfg),
    }


def evaluate(cfg) -> dict:
    """Run the whole evaluation (``beadseg-eval``): metrics.json, per_image.csv and figures into ``cfg.output``.

    Parameters
    ----------
    cfg : DictConfig
        A composed ``eval`` config: ``data.root`` (images and masks), a ``ckpt`` (or ``method=classical``, or
        ``predictions=DIR`` of saved masks) and the ``split`` to score.

    Returns
    -------
    dict
        The files written, by name (``metrics``, ``per_image``, the figures, a tuned checkpoint on request).

    Examples
    --------
    >>> from hydra import compose, initialize_config_dir
    >>> from beadseg.config import CONFIG_DIR
    >>> with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):  # doctest: +SKIP
    ...     cfg = compose("eval", overrides=["data.root=beads/", "split=test", "output=scores/"])
    >>> sorted(evaluate(cfg))[:2]  # doctest: +SKIP
    ['metrics', 'per_image']
    """
    check_settings(cfg, "eval")
    out = Path(cfg.output)
    if out.resolve().is_relative_to(Path(cfg.data.root).resolve()):
        raise ValueError(f"output={out} is inside data.root={cfg.data.root}: beadseg-eval would write into the data "
                         "set it scores; choose an output outside it")
    source = FolderSource(cfg.data.root, cfg.data.images, cfg.data.masks, plane=cfg.get("image"))
    if cfg.get("predictions"):
        if cfg.ckpt or cfg.method.name == "classical":
            raise ValueError("predictions=DIR scores saved predictions: give no ckpt= or method= with it")
        return evaluate_saved(cfg, source, out)
    predictor = predictor_from_config(cfg)  # the one read of the checkpoint, before anything is written
    out.mkdir(parents=True, exist_ok=True)
    post = instantiate(cfg.postprocess).for_model(predictor)
    classical = predictor.name == "classical"
    ckpt = predictor.checkpoint
    if cfg.write_threshold and not classical and tuned_checkpoint_path(Path(str(ckpt)), out).exists():
        raise FileExistsError(f"{tuned_checkpoint_path(Path(str(ckpt)), out)} exists already (write_threshold=true "
                              "never overwrites a checkpoint): move it away first")
    pairs = select_pairs(source, cfg.split, predictor)  # method=classical may borrow a checkpoint's split
    threshold, peak = post.min_probability, post.peak_threshold
    stored = (threshold, peak)
    settings = sweep_settings(threshold, peak, cfg.thresholds, cfg.peak_thresholds if predictor.channels > 1 else ())
    runs = {s: Evaluation(cfg.match_distance, cfg.min_iou) for s in settings}
    at_setting = {s: replace(post, threshold=s[0], peak_threshold=s[1]) for s in settings}
    kept: list[tuple] = []
    waiting: deque = deque()

    def add(done: tuple) -> None:
        (scored, mask), sample = done, waiting.popleft()  # results come back in the order they were submitted
        for setting, run in runs.items():
            run.record(scored[setting])
        kept.append((runs[stored].rows[-1], sample.image, sample.mask, mask))

    # the network here; the sweep's post-processing of earlier images (many settings each) in workers beside it,
    # on the cores the main process and the network's threads leave (2 cores: none; measured, no gain), else
    # each step's images on this process's threads before the next step
    score = partial(score_settings, match_distance=cfg.match_distance, min_iou=cfg.min_iou, keep=stored)
    sizing = BeadSizing.from_config(cfg.get("image"), predictor.bead_diameter) if not classical else None
    if sizing is not None:
        check_sizing(sizing, [image for image, _ in pairs], source.plane)
    sizes = []
    step = frames_per_step(cfg.get("frames_per_step", "auto"), predictor)
    with WorkerPool(finishing_workers(cfg.post_workers, usable_cpus() - 2, len(pairs)), add) as pool:
        for first in track(range(0, len(pairs), step), description="evaluating"):  # prediction's batched road
            chunk = pairs[first : first + step]
            samples = [load_pair(image_path, mask_path, source.plane) for image_path, mask_path in chunk]
            frame_sizes = [sizing.for_frame(sample.image, pixel_size_um(image_path, source.plane))
                           if sizing is not None else None for sample, (image_path, _) in zip(samples, chunk)]
            zooms = [size.zoom if size is not None else 1.0 for size in frame_sizes]
            maps = predictor.predict_frames([sample.image for sample in samples], zooms=zooms)
            sizes += [size for size in frame_sizes if size is not None]
            for sample, zoom, frame in zip(samples, zooms, maps):
                waiting.append(sample)
                pool.submit(score, sample.name, frame.probability, sample.image, Truth.of(sample.mask, sample.labels),
                            {setting: each.at_scale(1 / zoom) for setting, each in at_setting.items()})
            pool.end_step()
    report_sizes(sizes)
    summaries = {s: run.summary() for s, run in runs.items()}
    sweep = [
        {"threshold": t, "peak_threshold": p, "iou": s["pixel"]["iou"], "object_f1": s["objects"]["centroid"]["f1"]}
        for (t, p), s in summaries.items()
    ]
    best = best_setting(sweep, {"threshold": threshold, "peak_threshold": peak})
    assignment = {} if classical else predictor.training_split
    seen = sorted(image_name(p[0]) for p in pairs if assignment.get(image_name(p[0])) == "train")
    if seen:
        held_out = sorted({str(assignment.get(image_name(p[0]))) for p in pairs} & {"val", "test"})
        advice = (f"use split={' or split='.join(held_out)}" if held_out else
                  "the checkpoint trained on every image of this folder: score it on a folder it has not seen")
        log.warning("%d of the %d images were training images of this checkpoint (%s...): these scores are not "
                    "a test of generalisation; %s", len(seen), len(pairs), ", ".join(seen[:3]), advice)
    metrics = {"model": "classical" if classical else "checkpoint", "ckpt": None if classical else ckpt,
               "data": str(source.root), "split": cfg.split, "threshold": threshold,
               "training_images": len(seen), "training_image_names": seen,
               "peak_threshold": peak if predictor.channels > 1 else None,
               **summaries[stored], "threshold_sweep": sweep, "best_threshold": best["threshold"],
               "best_peak_threshold": best["peak_threshold"] if predictor.channels > 1 else None,
               "best_threshold_iou": max(sweep, key=lambda s: s["iou"])["threshold"]}
    written = write_results(out, runs[stored], metrics, kept, worst_images=cfg.worst_images, cfg=cfg)
    at_peak = [s for s in sweep if s["peak_threshold"] == peak]
    written["sweep"] = plots.sweep_figure(at_peak, best["threshold"], out / "threshold_sweep.png")
    if cfg.write_threshold and not classical:
        written["tuned_checkpoint"] = write_tuned_checkpoint(Path(str(ckpt)), best["threshold"], out,
                                                             metrics["best_peak_threshold"])
    return {"metrics": metrics, "written": written}
