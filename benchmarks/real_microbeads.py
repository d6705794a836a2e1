"""Leave-capture-out benchmark on the lab's real bead images, with the classical baseline side by side.

Every capture (file name up to ``_grid_``) is the test fold once: a model is trained on the other captures
(one of them, chosen by density, validates and picks the checkpoint), its threshold is tuned on that
validation capture, and model and classical baseline are evaluated on the held-out capture.

    python benchmarks/real_microbeads.py                         # all folds, the budget of experiment=microbeads_real
    python benchmarks/real_microbeads.py --tiny                  # one fold, a few steps (CI)
    python benchmarks/real_microbeads.py --epochs 30 model=attention_unet   # any training override
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir

from beadseg.config import CONFIG_DIR
from beadseg.data.folder import pair_folder
from beadseg.data.split import group_names
from beadseg.evaluation.evaluate import evaluate
from beadseg.metrics.objects import ObjectMatch
from beadseg.metrics.pixel import scores
from beadseg.training.task import train

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "microbeads" / "real"
CAPTURE = r"^(.*)_grid_"


def captures(data: Path) -> list[str]:
    return sorted(set(group_names([image.stem for image, _ in pair_folder(data)], CAPTURE)))


def compose_config(name: str, overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(name, overrides=overrides)


def run_fold(capture: str, data: Path, work: Path, train_overrides: list[str]) -> dict:
    fold = work / re.sub(r"[^\w.-]", "_", capture)
    started = time.time()
    result = train(compose_config("train", [
        "experiment=microbeads_real", f"data.root={data}", f"data.test_groups=['{capture}']", "test=false",
        f"paths.output_dir={fold / 'train'}", "callbacks.progress_bar=null", *train_overrides]))
    trained = time.time() - started
    ckpt = result["checkpoint"]
    common = [f"data.root={data}", f"ckpt={ckpt}"]
    val = evaluate(compose_config("eval", [*common, "split=val", f"output={fold / 'eval_val'}"]))["metrics"]
    threshold = val["best_threshold"]
    test = evaluate(compose_config("eval", [*common, "split=test", f"postprocess.threshold={threshold}",
                                            f"thresholds=[{threshold}]", f"output={fold / 'eval_test'}"]))["metrics"]
    classical = evaluate(compose_config("eval", [*common, "method=classical", "split=test", "thresholds=[0.5]",
                                                 f"output={fold / 'eval_classical'}"]))["metrics"]
    return {"capture": capture, "threshold": threshold, "train_seconds": trained, "epochs": result["epochs_run"],
            "model": test, "classical": classical, "dirs": {"model": fold / "eval_test", "classical": fold / "eval_classical"}}


def summarise(metrics: dict, per_image: Path) -> dict:
    relative = [abs(float(r["relative_count_error"])) for r in csv.DictReader(open(per_image)) if r["relative_count_error"]]
    objects = metrics["objects"]["centroid"]
    return {"jaccard": metrics["pixel"]["iou"], "dice": metrics["pixel"]["dice"], "precision": objects["precision"],
            "recall": objects["recall"], "f1": objects["f1"], "count_error": float(np.median(relative)) if relative else None,
            "pixels": metrics["pixel_counts"], "objects": objects, "relative": relative}


def pooled(rows: list[dict]) -> dict:
    """Overall scores from the summed pixel counts and object matches of every test image."""
    pixels = scores(np.array([sum(r["pixels"][k] for r in rows) for k in ("tp", "fp", "fn", "tn")]))
    objects = sum((ObjectMatch(r["objects"]["true_positives"], r["objects"]["false_positives"],
                               r["objects"]["false_negatives"]) for r in rows), ObjectMatch(0, 0, 0))
    relative = [v for r in rows for v in r["relative"]]
    return {"jaccard": pixels["iou"], "dice": pixels["dice"], "precision": objects.precision, "recall": objects.recall,
            "f1": objects.f1, "count_error": float(np.median(relative)) if relative else None}


def fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--work", type=Path, default=ROOT / "outputs" / "benchmarks" / f"real_microbeads_{time.strftime('%Y%m%d_%H%M%S')}")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs per fold (default: the preset's)")
    parser.add_argument("--tiny", action="store_true", help="one fold, two steps: a smoke test")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "real_microbeads.md")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for training, e.g. model=attention_unet")
    args = parser.parse_args()
    if not (args.data / "images").is_dir():
        raise SystemExit(f"no bead images at {args.data} (pass --data DIR)")
    overrides = list(args.overrides)
    if args.epochs:
        overrides.append(f"trainer.max_epochs={args.epochs}")
    folds = captures(args.data)
    if args.tiny:
        folds = folds[:1]
        overrides += ["trainer.max_epochs=1", "+trainer.limit_train_batches=2", "data.patches_per_image=1"]
    started = time.time()
    results = []
    for index, capture in enumerate(folds, start=1):
        print(f"[fold {index}/{len(folds)}] test capture {capture}", flush=True)
        results.append(run_fold(capture, args.data, args.work, overrides))
    rows = {"model": [], "classical": []}
    lines = [f"# Leave-capture-out benchmark on the lab's real microbeads ({date.today()})", "",
             f"Data: `{args.data}` ({len(folds)} folds, one per capture). Training: `experiment=microbeads_real "
             f"{' '.join(overrides)}` per fold on {torch.get_num_threads()} CPU threads"
             f"{' / ' + torch.cuda.get_device_name() if torch.cuda.is_available() else ''}; "
             f"total wall time {(time.time() - started) / 60:.1f} min.",
             "Object metrics: one-to-one matches by centroid distance ≤ 5 px; count error: median over test images "
             "of |predicted − true| / true.", "",
             "| test capture | method | Jaccard | Dice | object precision | object recall | object F1 | median count error | threshold | epochs | train min |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for fold in results:
        for method in ("model", "classical"):
            row = summarise(fold[method], fold["dirs"][method] / "per_image.csv")
            rows[method].append(row)
            extra = (f"{fold['threshold']:g} | {fold['epochs']} | {fold['train_seconds'] / 60:.1f}" if method == "model"
                     else "- | - | -")
            lines.append(f"| {fold['capture']} | {method} | {fmt(row['jaccard'])} | {fmt(row['dice'])} | "
                         f"{fmt(row['precision'])} | {fmt(row['recall'])} | {fmt(row['f1'])} | {fmt(row['count_error'])} | {extra} |")
    for method in ("model", "classical"):
        total = pooled(rows[method])
        lines.append(f"| **overall** | {method} | {fmt(total['jaccard'])} | {fmt(total['dice'])} | {fmt(total['precision'])} | "
                     f"{fmt(total['recall'])} | {fmt(total['f1'])} | {fmt(total['count_error'])} | | | |")
    beaten = sum(m["jaccard"] > c["jaccard"] and m["f1"] > c["f1"] for m, c in zip(rows["model"], rows["classical"]))
    lines += ["", f"The model beats the classical baseline on Jaccard and object F1 in {beaten} of {len(results)} folds."]
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
