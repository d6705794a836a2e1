"""REPORT.md of a run or a sweep: every number read from the runs' logs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from beadseg import plots
from beadseg.metrics.adequacy import adequacy_verdict
from beadseg.report.logs import RunLog, find_baseline, find_runs
from beadseg.tables import read_csv

SUMMARY_COLUMNS = [
    "run",
    "model",
    "lr",
    "batch size",
    "dropout",
    "loss",
    "best val Jaccard",
    "best epoch",
    "epochs",
    "wall time (s)",
]


def choices(run: RunLog) -> dict:
    hydra_file = run.path / ".hydra" / "hydra.yaml"
    if not hydra_file.is_file():
        return {}
    return (yaml.safe_load(hydra_file.read_text()) or {}).get("hydra", {}).get("runtime", {}).get("choices", {}) or {}


def summary_row(index: int, run: RunLog) -> dict:
    picked = choices(run)
    model = picked.get("model") or str(run.setting("model._target_") or "").rsplit(".", 1)[-1]
    if run.setting("model.arch"):
        model += f" ({run.setting('model.arch')}/{run.setting('model.encoder')})"
    best, epoch = run.best()
    return {
        "run": run.path.name if run.path.name.isdigit() else index,
        "model": model,
        "lr": run.setting("optimizer.lr"),
        "batch size": run.setting("data.batch_size"),
        "dropout": run.setting("model.dropout"),
        "loss": picked.get("loss") or str(run.setting("loss._target_") or "").rsplit(".", 1)[-1],
        "best val Jaccard": None if best is None else round(best, 4),
        "best epoch": epoch,
        "epochs": len(run.series.get("val/jaccard", [])),
        "wall time (s)": run.result.get("wall_time_s"),
    }


def parse_override(text: str) -> tuple[str, object]:
    key, _, value = text.partition("=")
    try:
        return key.lstrip("+~"), yaml.safe_load(value)
    except yaml.YAMLError:
        return key.lstrip("+~"), value


def swept_parameters(runs: list[RunLog]) -> dict[str, list]:
    """Override keys whose value differs between runs, with each run's value."""
    per_run = [dict(parse_override(o) for o in run.overrides) for run in runs]
    keys = sorted({k for overrides in per_run for k in overrides})
    return {k: [o.get(k) for o in per_run] for k in keys if len({repr(o.get(k)) for o in per_run}) > 1}


def impact_table(values: list, runs: list[RunLog]) -> list[dict]:
    groups: dict = {}
    for value, run in zip(values, runs):
        best = run.best()[0]
        if best is not None:
            groups.setdefault(value, []).append(best)
    try:
        ordered = sorted(groups)
    except TypeError:
        ordered = sorted(groups, key=str)
    return [{"value": v, "runs": len(groups[v]), "mean": float(np.mean(groups[v])), "std": float(np.std(groups[v])),
             "best": float(np.max(groups[v]))} for v in ordered]


def training_images(run: RunLog) -> int | None:
    split = run.path / "split.csv"
    if not split.is_file():
        return None
    return sum(row["split"] == "train" for row in read_csv(split))


def _table(rows: list[dict], columns: list[str]) -> list[str]:
    def cell(value) -> str:
        if value is None:
            return "-"
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns),
            *("| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows)]


def adequacy_section(runs: list[RunLog], root: Path, bar: float) -> list[str]:
    """Frame-classification runs (the adequacy check): best validation accuracy against the bar, in a sentence."""
    plots.curves(runs, "val/accuracy", "validation accuracy", root / "adequacy_val_accuracy.png", bar)
    lines = ["## Adequacy check (frame classification)", ""]
    for run in runs:
        best, epoch = run.best("val/accuracy")
        lines.append(f"- `{run.name or run.path.name}` (epoch {epoch}): {adequacy_verdict(best or 0.0, bar)}")
    return lines + ["", "![validation accuracy against the adequacy bar](adequacy_val_accuracy.png)", ""]


def write_report(root: Path, target: float = 0.5, adequacy_bar: float = 0.8) -> Path:
    """Figures and REPORT.md in ``root`` (a run directory or a sweep root)."""
    found = find_runs(root)
    runs = [run for run in found if run.series.get("val/jaccard")]
    classifiers = [run for run in found if run.series.get("val/accuracy")]
    if not runs and not classifiers:
        raise FileNotFoundError(f"no run with logged val/jaccard or val/accuracy under {root} "
                                "(looked for .hydra/ with tensorboard/ or csv/)")
    if not runs:
        report = root / "REPORT.md"
        report.write_text(
            "\n".join([f"# Training report: `{root}`", "", *adequacy_section(classifiers, root, adequacy_bar)])
        )
        return report
    baseline = find_baseline(root)
    baseline_iou = baseline["pixel"]["iou"] if baseline else None
    best_run = max(runs, key=lambda r: r.best()[0] or 0.0)  # every run here has a val/jaccard series
    rows = [summary_row(i, run) for i, run in enumerate(runs)]
    plots.curves(runs, "val/jaccard", "validation Jaccard", root / "figure1_val_jaccard.png", target)
    plots.generalisation_gap(best_run, root / "figure2_train_vs_val.png")
    plots.curves(runs, "val/loss", "validation loss", root / "figure3_val_loss.png")
    plots.best_bars(runs, root / "figure4_best_val_jaccard.png", baseline_iou)
    plots.curves(runs, "lr", "learning rate", root / "figure5_learning_rate.png", log=True)
    best_value, best_epoch = best_run.best()
    lines = [
        f"# Training report: `{root}`",
        "",
        f"{len(runs)} run(s). Best validation Jaccard **{best_value:.4f}** at epoch {best_epoch} "
        f"(`{best_run.name or best_run.path.name}`); target line at {target:g}."
        + (f" Classical baseline (no training, `{baseline['path']}`): IoU {baseline_iou:.4f}." if baseline else ""),
        "",
        "## Figures",
        "1. ![validation Jaccard per run](figure1_val_jaccard.png)",
        "2. ![training vs validation Jaccard of the best run](figure2_train_vs_val.png)",
        "3. ![validation loss per run](figure3_val_loss.png)",
        "4. ![best validation Jaccard per run](figure4_best_val_jaccard.png)",
        "5. ![learning rate per run](figure5_learning_rate.png)",
    ]
    swept = swept_parameters(runs)
    if swept:
        lines += ["", "## Hyper-parameter impact (best validation Jaccard per value)"]
    for parameter, values in swept.items():
        table = impact_table(values, runs)
        slug = parameter.replace("/", "_").replace(".", "_")
        plots.impact(parameter, table, root / f"impact_{slug}.png")
        lines += ["", f"### `{parameter}`", *_table(table, ["value", "runs", "mean", "std", "best"]), "",
                  f"![impact of {parameter}](impact_{slug}.png)"]
        if parameter == "data.train_fraction":
            sizes = [training_images(run) for run in runs]
            if None not in sizes:
                plots.impact(
                    "training-set size", impact_table(sizes, runs), root / "dataset_size.png", "training images"
                )
                lines += ["", "![Jaccard against training-set size](dataset_size.png)"]
        if parameter == "lab_params":
            plots.before_after(runs, values, root / "before_after.png")
            lines += ["", "![the lab's two parameter sets: before / after](before_after.png)"]
    if classifiers:
        lines += ["", *adequacy_section(classifiers, root, adequacy_bar)]
    lines += ["", "## Summary", *_table(rows, SUMMARY_COLUMNS), ""]
    report = root / "REPORT.md"
    report.write_text("\n".join(lines))
    return report
