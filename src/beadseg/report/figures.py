"""The sweep report's figures, drawn from the runs' logged series."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from beadseg.report.logs import RunLog  # noqa: E402


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _legend(ax, runs: list[RunLog]) -> None:
    if len(runs) <= 12:
        ax.legend(fontsize=7)


def curves(runs: list[RunLog], tag: str, ylabel: str, path: Path, target: float | None = None, log: bool = False) -> Path:
    fig, ax = plt.subplots(figsize=(8, 5))
    for run in runs:
        values = run.learning_rate if tag == "lr" else run.series.get(tag, [])
        if values:
            ax.plot(range(len(values)), values, label=run.name[:60])
    if target is not None:
        ax.axhline(target, color="green", linestyle="--", label=f"target {target:g}")
    ax.set(xlabel="epoch", ylabel=ylabel, yscale="log" if log else "linear")
    _legend(ax, runs)
    return _save(fig, path)


def generalisation_gap(run: RunLog, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(8, 5))
    for tag, label in (("train/jaccard", "training"), ("val/jaccard", "validation")):
        values = run.series.get(tag, [])
        ax.plot(range(len(values)), values, label=label)
    ax.set(xlabel="epoch", ylabel="Jaccard", title=f"Best run: {run.name[:70]}")
    ax.legend()
    return _save(fig, path)


def best_bars(runs: list[RunLog], path: Path, baseline: float | None) -> Path:
    names = [run.name[:40] or str(i) for i, run in enumerate(runs)]
    values = [run.best()[0] or 0.0 for run in runs]
    colors = ["tab:blue"] * len(runs)
    if baseline is not None:
        names.append("classical baseline (eval IoU)")
        values.append(baseline)
        colors.append("tab:gray")
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(names) + 2), 5))
    ax.bar(range(len(names)), values, color=colors)
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
    ax.set(ylabel="best validation Jaccard")
    return _save(fig, path)


def impact(parameter: str, table: list[dict], path: Path, xlabel: str | None = None) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4))
    labels = [str(row["value"]) for row in table]
    means = [row["mean"] for row in table]
    stds = [row["std"] for row in table]
    numeric = all(isinstance(row["value"], (int, float)) and not isinstance(row["value"], bool) for row in table)
    if numeric:
        x = np.asarray([row["value"] for row in table], float)
        ax.errorbar(x, means, yerr=stds, marker="o", capsize=3, label="mean ± std")
        ax.plot(x, [row["best"] for row in table], marker="^", linestyle=":", label="best")
        ax.legend()
    else:
        ax.bar(labels, means, yerr=stds, capsize=3)
        ax.tick_params(axis="x", rotation=30)
    ax.set(xlabel=xlabel or parameter, ylabel="best validation Jaccard", title=f"Impact of {parameter}")
    return _save(fig, path)


def before_after(runs: list[RunLog], labels: list, path: Path) -> Path:
    """One panel per run (e.g. the lab's mitochondria vs microbead settings): training and validation Jaccard."""
    fig, axes = plt.subplots(1, len(runs), figsize=(6 * len(runs), 4.5), sharey=True, squeeze=False)
    for ax, run, label in zip(axes[0], runs, labels):
        for tag, name in (("train/jaccard", "training"), ("val/jaccard", "validation")):
            values = run.series.get(tag, [])
            ax.plot(range(len(values)), values, label=name)
        best, epoch = run.best()
        ax.set(title=f"{label}: best val Jaccard {best:.3f} (epoch {epoch})", xlabel="epoch", ylabel="Jaccard")
        ax.legend()
    return _save(fig, path)
