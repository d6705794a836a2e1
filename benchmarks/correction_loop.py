"""The napari correction loop without a person: a simulated annotator counts a frame with the current model, as the
widget does, clicks the beads it got most wrong (a missed bead added at its true centre, a false one removed: one
click each), saves the frame with the widget's own save, retrains with the widget's own retraining (the real-bead
preset from the current model, a ``beadseg-train`` child process), and goes on to the next frame with the new
model (Cellpose 2.0's protocol: a new frame each round). Each round is scored on captures held out of the loop
whole; beside it, the same frames fully labelled (every bead given) train once from the start model.

The bead set: the lab's three sparse captures as a low-light camera gives them (Gaussian read noise of ``--noise``
grey levels added to the 8-bit tiles, drawn once with a fixed seed), written into ``--work`` (nothing in the
repository). The loop corrects the tiles of ``--loop-capture``; the other two captures are scored.

    python benchmarks/correction_loop.py [--frames 4] [--clicks 100] [--epochs N] [--start CKPT] [--work DIR] [overrides]

``overrides`` go to every retraining (``beadseg-train`` keys).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import tifffile
from hydra import compose, initialize_config_dir

from beadseg.beads.instances import bead_instances, centroids
from beadseg.beads.size import BeadSizing
from beadseg.config import CONFIG_DIR, configured_postprocess
from beadseg.data.folder import pair_folder
from beadseg.data.io import read_image, read_mask
from beadseg.evaluation.evaluate import evaluate
from beadseg.inference.predictor import ModelPredictor, load_predictor, shipped_checkpoint
from beadseg.metrics.objects import matched_pairs
from beadseg.napari_plugin.corrections import labels_in_step, save_correction
from beadseg.napari_plugin.retrain import retrain

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "microbeads" / "real"
SPARSE = ("2560x_2025-05-16_00-59-00", "5120x_2025-05-16_00-59-00", "10240x_2025-05-29_02-22-00_002")


def noisy_set(data: Path, folder: Path, captures: tuple[str, ...], noise: float) -> Path:
    """The tiles of ``captures`` with Gaussian noise of ``noise`` grey levels (seeded per tile), as 8-bit TIFF,
    and their masks' beads as instance labels, in ``folder`` (once)."""
    if (folder / "images").is_dir():
        return folder
    for sub in ("images", "masks"):
        (folder / sub).mkdir(parents=True)
    for image, mask in pair_folder(data):
        if not image.name.startswith(captures):
            continue
        rng = np.random.default_rng(list(image.stem.encode()))
        clean = read_image(image).astype(np.float32)
        noisy = clean + rng.normal(0, noise, clean.shape)
        tifffile.imwrite(folder / "images" / f"{image.stem}.tif", np.clip(noisy, 0, 255).astype(np.uint8))
        tifffile.imwrite(folder / "masks" / f"{image.stem}.tif", bead_instances(read_mask(mask)).astype(np.uint16))
    return folder


def held_out_scores(checkpoint: str, data: Path, out: Path) -> dict:
    """Object F1 (beads matched by centre) and median count error of ``checkpoint`` on ``data``."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("eval", [f"ckpt={checkpoint}", f"data.root={data}", "split=all", "thresholds=[]",
                               "peak_thresholds=[]", "worst_images=0", f"output={out}", f"paths.output_dir={out}"])
    objects = evaluate(cfg)["metrics"]["objects"]["components"]  # sparse tiles: each component one bead
    return {"f1": objects["f1"], "count_error": objects["median_relative_count_error"]}


def found_beads(predictor: ModelPredictor, image: np.ndarray):
    """What the widget shows after Count: the maps and the beads, at the frame's estimated bead size."""
    size = BeadSizing("auto", model_diameter=predictor.bead_diameter).for_frame(image)
    maps, _ = predictor.predict(image, zoom=size.zoom)
    post = configured_postprocess(threshold=predictor.threshold).for_model(predictor)
    return maps, post.at_scale(1 / size.zoom).instances(maps, image)


def corrected_frame(predictor: ModelPredictor, image: np.ndarray, truth: np.ndarray, budget: int):
    """One frame counted and corrected: the beads the model got most wrong first (a missed bead whose centre the
    heat-map rates lowest, a false bead it rates highest), at most ``budget`` clicks.

    Returns the points and labels to save, the clicks spent, and the frame's errors before correction."""
    maps, found = found_beads(predictor, image)
    rows = found.objects
    centres = np.array([[r["centroid_y"], r["centroid_x"]] for r in rows]).reshape(-1, 2)
    ids = np.array([int(r["bead_id"]) for r in rows], int)
    true_centres = centroids(truth)
    truth_hit, found_hit = matched_pairs(true_centres, centres)
    missed = np.setdiff1d(np.arange(len(true_centres)), truth_hit)
    false = np.setdiff1d(np.arange(len(centres)), found_hit)
    heat = maps[-1]

    def rating(point: np.ndarray) -> float:
        y, x = np.clip(np.round(point).astype(int), 0, np.array(heat.shape) - 1)
        return float(heat[y, x])

    errors = [(1 - rating(true_centres[i]), "add", i) for i in missed] + [(rating(centres[i]), "remove", i)
                                                                         for i in false]
    clicks = sorted(errors, reverse=True)[:budget]
    removed = [i for _, kind, i in clicks if kind == "remove"]
    added = true_centres[[i for _, kind, i in clicks if kind == "add"]].reshape(-1, 2)
    keep = np.setdiff1d(np.arange(len(centres)), removed)
    points = np.concatenate([centres[keep], added])
    point_ids = np.concatenate([ids[keep], np.zeros(len(added), int)])
    diameter = float(np.median([r["equivalent_diameter"] for r in rows])) if rows else 7.0
    found_centres = {int(r["bead_id"]): (r["centroid_y"], r["centroid_x"]) for r in rows}
    labels, _ = labels_in_step(found.labels, found_centres, points, point_ids, diameter)
    return points, labels, len(clicks), len(errors)


def fully_labelled(frames: list[tuple[Path, Path]], folder: Path) -> Path:
    """The loop's frames with every bead given (their truth's centres and labels), in the widget's layout."""
    for image, mask in frames:
        truth = bead_instances(read_mask(mask))
        save_correction(folder, image.stem, read_image(image), centroids(truth), truth)
    return folder


def retrained(folder: Path, checkpoint: str | None, epochs: int | None, overrides: list[str]) -> tuple[str, float]:
    """The widget's retraining of ``folder`` from ``checkpoint`` (``epochs``: ``None`` the preset's, as the widget
    runs it): the tuned checkpoint and the minutes it took."""
    started = time.perf_counter()
    budget = [f"trainer.max_epochs={epochs}", f"callbacks.early_stopping.patience={epochs}"] if epochs else []
    result = retrain(folder, checkpoint, lambda *_: None, lambda: False, [*budget, *overrides])
    return result["checkpoint"], (time.perf_counter() - started) / 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--start", default=None, help="the model to correct (default: the shipped one)")
    parser.add_argument("--frames", type=int, default=4, help="frames corrected: two before the first retraining "
                        "(one trains, one validates), then one per round")
    parser.add_argument("--clicks", type=int, default=100, help="clicks in all rounds together")
    parser.add_argument("--clicks-per-frame", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=None, help="epochs of each retraining (default: the "
                        "preset's, as the widget's Retrain runs it: 24, early stopping after 8 without gain)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--noise", type=float, default=15.0, help="the camera noise's standard deviation (grey levels)")
    parser.add_argument("--loop-capture", default=SPARSE[0], help="the capture whose tiles the loop corrects")
    parser.add_argument("--work", type=Path, default=ROOT / "outputs" / "benchmarks" /
                        f"correction_loop_{time.strftime('%Y%m%d_%H%M%S')}")
    parser.add_argument("overrides", nargs="*", help="beadseg-train overrides of every retraining")
    args = parser.parse_args()
    frames = pair_folder(noisy_set(args.data, args.work / "loop_frames", (args.loop_capture,), args.noise))
    frames = frames[:args.frames]
    held_out = noisy_set(args.data, args.work / "held_out", tuple(c for c in SPARSE if c != args.loop_capture),
                         args.noise)
    checkpoint = args.start or shipped_checkpoint()
    start = held_out_scores(checkpoint, held_out, args.work / "eval_start")
    rows = [("start model", "", 0, 0.0, start)]
    print(f"start model on the held-out captures: F1 {start['f1']:.3f}, count error {start['count_error']:.1%}",
          flush=True)
    clicks, corrected = 0, []
    for number, (image_path, mask_path) in enumerate(frames, 1):
        predictor = load_predictor(checkpoint)
        assert isinstance(predictor, ModelPredictor)
        image = read_image(image_path)
        points, labels, spent, errors = corrected_frame(predictor, image, bead_instances(read_mask(mask_path)),
                                                        min(args.clicks_per_frame, args.clicks - clicks))
        clicks += spent
        corrected.append(f"{errors} wrong, {spent} clicked")
        save_correction(args.work / "corrections", image_path.stem, image, points, labels)
        if number < 2:
            continue
        checkpoint, minutes = retrained(args.work / "corrections", checkpoint, args.epochs, args.overrides)
        scores = held_out_scores(checkpoint, held_out, args.work / f"eval_after_frame{number}")
        rows.append((f"frames 1-{number} saved ({'; '.join(corrected)})", "", clicks, minutes, scores))
        corrected = []
        print(f"after frame {number}: {clicks} clicks in all; retrained {minutes:.1f} min; held out F1 "
              f"{scores['f1']:.3f}, count error {scores['count_error']:.1%}", flush=True)
    beads = sum(int(bead_instances(read_mask(mask)).max()) for _, mask in frames)
    full, minutes = retrained(fully_labelled(frames, args.work / "fully_labelled"), args.start,
                              args.epochs and args.epochs * (len(frames) - 1), args.overrides)
    rows.append((f"the same {len(frames)} frames fully labelled, one retraining from the start model",
                 f"{beads} beads given", beads, minutes, held_out_scores(full, held_out, args.work / "eval_full")))
    print("\n| step | clicks in all | retraining minutes | held-out object F1 | median count error |\n"
          "|---|---|---|---|---|")
    for step, note, so_far, spent_minutes, scores in rows:
        print(f"| {step} | {so_far}{f' ({note})' if note else ''} | {spent_minutes:.1f} | {scores['f1']:.3f} | "
              f"{scores['count_error']:.1%} |")
    (args.work / "loop.json").write_text(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
