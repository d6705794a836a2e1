"""Leave-capture-out benchmark on the lab's real bead images, with the classical baseline side by side.

Every capture (file name up to ``_grid_``) is the test fold once: a model is trained on the other captures with
``experiment=microbeads_real``, as a user runs it (one capture, chosen by density, validates, picks the checkpoint
and tunes the thresholds stored in it), and model and classical baseline are evaluated on the held-out capture.
The preset starts from the shipped model, which was trained on these very captures: a fold must start from a
model that never saw its test capture, so ``--init-from`` (e.g. the synthetic-only model of the shipped recipe)
replaces it, and without it the folds train from scratch.

    python benchmarks/real_microbeads.py --init-from SYNTHETIC_RUN   # all folds, the preset's budget
    python benchmarks/real_microbeads.py --tiny                  # one fold, a few steps (CI)
    python benchmarks/real_microbeads.py --epochs 30 model=attention_unet   # any training override
    python benchmarks/real_microbeads.py --reuse WORK inference.tta=true    # the same checkpoints, other inference
"""

from __future__ import annotations

import argparse
import json
import re
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir

from beadseg.checkpoint import run_checkpoint
from beadseg.config import CONFIG_DIR
from beadseg.data.folder import pair_folder
from beadseg.data.split import group_names
from beadseg.evaluation.evaluate import evaluate
from beadseg.evaluation.scores import CONVENTIONS
from beadseg.metrics.objects import ObjectMatch
from beadseg.metrics.pixel import scores
from beadseg.tables import read_csv
from beadseg.training.task import train

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "microbeads" / "real"
CAPTURE = r"^(.*)_grid_"


def captures(data: Path) -> list[str]:
    return sorted(set(group_names([image.stem for image, _ in pair_folder(data)], CAPTURE)))


def compose_config(name: str, overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(name, overrides=overrides)


def run_fold(capture: str, data: Path, work: Path, train_overrides: list[str], reuse: dict | None = None,
             eval_overrides: tuple[str, ...] = ()) -> dict:
    """Train on every capture but ``capture`` as a user runs the preset (its thresholds tuned on its own
    validation capture and stored), or with ``reuse`` take that earlier fold's checkpoint; evaluate model and
    classical baseline on the held-out capture."""
    fold = work / re.sub(r"[^\w.-]", "_", capture)
    started = time.time()
    if reuse:
        result = {"checkpoint": reuse["checkpoint"], "epochs_run": reuse["epochs"]}
    else:
        result = train(compose_config("train", [
            "experiment=microbeads_real", f"data.root={data}", f"data.test_groups=['{capture}']", "test=false",
            f"paths.output_dir={fold / 'train'}", "callbacks.progress_bar=null", *train_overrides]))
    trained = reuse["train_seconds"] if reuse else time.time() - started
    common = [f"data.root={data}", f"ckpt={result['checkpoint']}", "thresholds=[]", "peak_thresholds=[]", *eval_overrides]
    test = evaluate(compose_config("eval", [*common, "split=test", f"output={fold / 'eval_test'}"]))["metrics"]
    classical = evaluate(compose_config("eval", [*common, "method=classical", "split=test",
                                                 f"output={fold / 'eval_classical'}"]))["metrics"]
    return {"capture": capture, "checkpoint": result["checkpoint"], "threshold": test["threshold"],
            "peak_threshold": test["peak_threshold"], "train_seconds": trained, "epochs": result["epochs_run"],
            "model": test, "classical": classical, "dirs": {"model": fold / "eval_test", "classical": fold / "eval_classical"}}


def _median(values: list[float]) -> float | None:
    return float(np.median(values)) if values else None


def summarise(metrics: dict, per_image: Path) -> dict:
    """One fold's scores: against beadseg's bead instances, and against both counting conventions."""
    rows = read_csv(per_image)
    summary = {"jaccard": metrics["pixel"]["iou"], "dice": metrics["pixel"]["dice"], "pixels": metrics["pixel_counts"]}
    for suffix, objects in (("", "centroid"), *((f"_{c}", c) for c in CONVENTIONS)):
        found = metrics["objects"][objects]
        relative = [abs(float(r[f"relative_count_error{suffix}"])) for r in rows if r[f"relative_count_error{suffix}"]]
        summary |= {f"precision{suffix}": found["precision"], f"recall{suffix}": found["recall"],
                    f"f1{suffix}": found["f1"], f"count_error{suffix}": _median(relative),
                    f"objects{suffix}": found, f"relative{suffix}": relative}
    return summary


def pooled(rows: list[dict]) -> dict:
    """Overall scores from the summed pixel counts and object matches of every test image."""
    pixels = scores(np.array([sum(r["pixels"][k] for r in rows) for k in ("tp", "fp", "fn", "tn")]))
    total = {"jaccard": pixels["iou"], "dice": pixels["dice"]}
    for suffix in ("", *(f"_{c}" for c in CONVENTIONS)):
        objects = sum((ObjectMatch(r[f"objects{suffix}"]["true_positives"], r[f"objects{suffix}"]["false_positives"],
                                   r[f"objects{suffix}"]["false_negatives"]) for r in rows), ObjectMatch(0, 0, 0))
        total |= {f"precision{suffix}": objects.precision, f"recall{suffix}": objects.recall, f"f1{suffix}": objects.f1,
                  f"count_error{suffix}": _median([v for r in rows for v in r[f"relative{suffix}"]])}
    return total


DENSITY = (("sparse (≤ 30 beads)", 0, 30), ("medium (31-150)", 31, 150), ("dense (> 150)", 151, None))
TRUTHS = (("instances", ""), *((c, f"_{c}") for c in CONVENTIONS))


def by_density(per_image: list[dict]) -> list[dict]:
    """Per density class (beads per tile, centres convention) and truth: pooled precision, recall and F1 (matches
    rebuilt from each tile's F1 and counts), median count error, and the tiles off by more than 1 bead + 10 %."""
    table = []
    for name, low, high in DENSITY:
        tiles = [r for r in per_image if low <= int(r["true_count_centres"]) <= (high or 10**9)]
        for truth, suffix in TRUTHS:
            true = np.array([int(r[f"true_count{suffix}"]) for r in tiles])
            found = np.array([int(r["predicted_count"]) for r in tiles])
            hits = np.array([float(r[f"object_f1{suffix}"]) for r in tiles]) * (true + found) / 2
            off = np.abs(found - true) > 1 + 0.1 * true
            table.append({"density": name, "truth": truth, "tiles": len(tiles),
                          "precision": hits.sum() / found.sum() if found.sum() else None,
                          "recall": hits.sum() / true.sum() if true.sum() else None,
                          "f1": 2 * hits.sum() / (true.sum() + found.sum()) if len(tiles) else None,
                          "count_error": _median([abs(f - t) / t for f, t in zip(found, true) if t]),
                          "tiles_off": int(off.sum())})
    return table


def fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def cells(row: dict) -> str:
    """Jaccard, Dice, the headline object scores and both counting conventions, as table cells."""
    conventions = [f"{fmt(row[f'f1_{c}'])} / {fmt(row[f'count_error_{c}'])}" for c in CONVENTIONS]
    return " | ".join([*(fmt(row[k]) for k in ("jaccard", "dice", "precision", "recall", "f1", "count_error")),
                       *conventions])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--work", type=Path, default=ROOT / "outputs" / "benchmarks" / f"real_microbeads_{time.strftime('%Y%m%d_%H%M%S')}")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs per fold (default: the preset's)")
    parser.add_argument("--tiny", action="store_true", help="one fold, two steps, two validation images, no sweep: a smoke test")
    parser.add_argument("--init-from", default=None,
                        help="checkpoint or run every fold starts from; it must not have seen the lab's captures "
                             "(default: none, from scratch)")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "real_microbeads.md")
    parser.add_argument("--reuse", type=Path, default=None,
                        help="the --work folder of an earlier run: evaluate its fold checkpoints again, no training "
                             "(the overrides then go to beadseg-eval, e.g. inference.tta=true)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for training, e.g. model=attention_unet")
    args = parser.parse_args()
    if not (args.data / "images").is_dir():
        raise SystemExit(f"no bead images at {args.data} (pass --data DIR)")
    if args.reuse and args.reuse.resolve() == args.work.resolve():
        raise SystemExit(f"--work {args.work} is the --reuse folder: its evaluations and results.json would be "
                         "overwritten (leave --work out for a new folder)")
    overrides = [f"init_from={run_checkpoint(args.init_from).resolve()}" if args.init_from else "init_from=null",
                 *args.overrides]
    if args.epochs:
        overrides.append(f"trainer.max_epochs={args.epochs}")
    folds = captures(args.data)
    if args.tiny:
        folds = folds[:1]
        overrides += ["trainer.max_epochs=1", "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=2",
                      "data.composites_per_image=0",
                      "data.patches_per_image=1", "tune_thresholds.thresholds=[0.5]", "tune_thresholds.peak_thresholds=[0.3]"]
    started = time.time()
    results = []
    for index, capture in enumerate(folds, start=1):
        print(f"[fold {index}/{len(folds)}] test capture {capture}", flush=True)
        if args.reuse:
            earlier = {fold["capture"]: fold for fold in json.loads((args.reuse / "results.json").read_text())}
            results.append(run_fold(capture, args.data, args.work, [], earlier[capture], tuple(args.overrides)))
        else:
            results.append(run_fold(capture, args.data, args.work, overrides))
    rows = {"model": [], "classical": []}
    lines = [f"# Leave-capture-out benchmark on the lab's real microbeads ({date.today()})", "",
             f"Data: `{args.data}` ({len(folds)} folds, one per capture). "
             + (f"The fold checkpoints of `{args.reuse}`, evaluated with `{' '.join(overrides)}`"
                if args.reuse else f"Training: `experiment=microbeads_real {' '.join(overrides)}` per fold")
             + f" on {torch.get_num_threads()} CPU threads"
             f"{' / ' + torch.cuda.get_device_name() if torch.cuda.is_available() else ''}; "
             f"total wall time {(time.time() - started) / 60:.1f} min.",
             "Object metrics: one-to-one matches by centroid distance ≤ 5 px; count error: median over test images "
             "of |predicted − true| / true. Truth three ways: beadseg's bead instances (touching beads of the mask "
             "split by a distance-transform watershed: the headline), the mask's connected components (the lab's "
             "convention: merged beads count once) and bead centres (a component holds round(area / single-bead "
             "area) beads).", "",
             "| test capture | method | Jaccard | Dice | object precision | object recall | object F1 | median count error "
             "| F1 / count error vs components | F1 / count error vs centres | threshold (/ peak) | epochs | train min |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for fold in results:
        for method in ("model", "classical"):
            row = summarise(fold[method], fold["dirs"][method] / "per_image.csv")
            rows[method].append(row)
            tuned = f"{fold['threshold']:g}" + (f" / {fold['peak_threshold']:g}" if fold.get('peak_threshold') is not None else "")
            extra = (f"{tuned} | {fold['epochs']} | {fold['train_seconds'] / 60:.1f}" if method == "model"
                     else "- | - | -")
            lines.append(f"| {fold['capture']} | {method} | {cells(row)} | {extra} |")
    for method in ("model", "classical"):
        lines.append(f"| **overall** | {method} | {cells(pooled(rows[method]))} | | | |")
    lines += ["", "Per density class (tiles binned by their bead count under the centres convention), pooled over the "
              "folds; 'tiles off' counts tiles whose count is off by more than 1 bead + 10 %:", "",
              "| density | method | truth | tiles | precision | recall | F1 | median count error | tiles off |",
              "|---|---|---|---|---|---|---|---|---|"]
    for method in ("model", "classical"):
        images = [row for fold in results for row in read_csv(fold["dirs"][method] / "per_image.csv")]
        for row in by_density(images):
            lines.append(f"| {row['density']} | {method} | {row['truth']} | {row['tiles']} | {fmt(row['precision'])} | "
                         f"{fmt(row['recall'])} | {fmt(row['f1'])} | {fmt(row['count_error'])} | {row['tiles_off']} |")
    beaten = sum(m["jaccard"] > c["jaccard"] and m["f1"] > c["f1"] for m, c in zip(rows["model"], rows["classical"]))
    beaten_f1 = sum(m["f1"] > c["f1"] for m, c in zip(rows["model"], rows["classical"]))
    lines += ["", f"The model beats the classical baseline on object F1 in {beaten_f1} of {len(results)} folds, on "
              f"Jaccard and object F1 in {beaten}."]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.tiny:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)
        (args.work / "results.json").write_text(json.dumps(
            [{k: v for k, v in fold.items() if k != "dirs"} for fold in results], indent=2, default=str))
        print(f"written to {args.output}")


if __name__ == "__main__":
    main()
