"""Every figure and overlay beadseg draws, in one place: data analysis, evaluation, prediction, sweep reports."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle
from skimage.segmentation import find_boundaries

from beadseg.data.io import percentiles


def save(fig, path: Path, dpi: int = 110) -> Path:
    """Lay out, write and close a figure."""
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def display(image: np.ndarray, levels: int | None = None) -> np.ndarray:
    """An image stretched to 0..1 between its 0.5 and 99.5 percentiles (of a strided sample of about a million
    pixels); with ``levels``, to bytes 0..``levels`` (8/16-bit images through a lookup table)."""
    step = max(1, math.ceil(np.sqrt(image.size / 1e6)))
    low, high = percentiles(image[::step, ::step], (0.5, 99.5))

    def stretch(values: np.ndarray) -> np.ndarray:
        unit = np.clip((np.asarray(values, np.float32) - low) / max(high - low, 1e-9), 0, 1)
        return unit if levels is None else np.minimum(unit * levels, levels).astype(np.uint8)

    if levels is not None and image.dtype in (np.uint8, np.uint16):
        return np.take(stretch(np.arange(np.iinfo(image.dtype).max + 1)), image)
    return stretch(image)


OUTLINE = (255, 220, 0)  # the bead outline of prediction overlays
REJECTED = (255, 0, 255)  # objects rejected as debris or particles


def inner_boundaries(labels: np.ndarray) -> np.ndarray:
    """Object pixels with a 4-neighbour of another value (skimage's ``find_boundaries(mode="inner")``, by array
    shifts)."""
    edge = np.zeros(labels.shape, bool)
    edge[1:] |= labels[1:] != labels[:-1]
    edge[:-1] |= labels[:-1] != labels[1:]
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    return edge & (labels > 0)


def count_overlay(image: np.ndarray, labels: np.ndarray, count: int, max_side: int | None = None,
                  rejected: list[dict] | None = None):
    """The image in gray with every bead's outline in yellow and each ``rejected`` object (rows with ``centroid_y``,
    ``centroid_x``, ``equivalent_diameter``) circled in magenta, under a banner with the bead count and a legend,
    as a palette image (one byte per pixel: written several times faster than RGB); huge frames by every k-th
    pixel."""
    from PIL import Image, ImageDraw, ImageFont

    step = max(1, math.ceil(max(image.shape) / max_side)) if max_side else 1
    gray = display(image[::step, ::step], 253)  # palette indices 0..253: grays
    gray[inner_boundaries(np.asarray(labels[::step, ::step]))] = 255  # index 255: the bead outline
    height = max(22, gray.shape[1] // 40)
    banner = Image.new("L", (gray.shape[1], height), 0)
    draw = ImageDraw.Draw(banner)
    font = ImageFont.load_default(size=int(height * 0.7))
    start = 6
    for text, colour in ((f"{count} beads", 253), ("bead outline", 255), *((("rejected", 254),) if rejected else ())):
        if colour != 253:
            draw.ellipse((start, height * 0.2, start + height * 0.6, height * 0.8), outline=colour,
                         width=max(1, height // 12))
            start += int(height * 0.8)
        draw.text((start, height // 2), text, fill=colour, font=font, anchor="lm")
        start += 12 + int(draw.textlength(text, font=font))
    picture = Image.fromarray(np.concatenate([np.asarray(banner), gray]))
    circles = ImageDraw.Draw(picture)
    for row in rejected or ():
        y, x = row["centroid_y"] / step + height, row["centroid_x"] / step
        radius = row["equivalent_diameter"] / 2 / step + 2
        circles.ellipse((x - radius, y - radius, x + radius, y + radius), outline=254)
    palette = np.repeat(np.round(np.arange(256) * 255 / 253).clip(0, 255).astype(np.uint8)[:, None], 3, 1)
    palette[254], palette[255] = REJECTED, OUTLINE
    picture.putpalette(palette.ravel().tobytes())
    return picture


def cover_figure(image: np.ndarray, probability: np.ndarray):
    """A 2:1 picture of a model: an image beside its bead probability (a bioimage.io cover)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(6, 3))
    left.imshow(display(image), cmap="gray")
    right.imshow(probability, cmap="magma", vmin=0, vmax=1)
    for ax, title in ((left, "image"), (right, "bead probability")):
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    return fig


def overlay(image: np.ndarray, labels: np.ndarray, color=(1.0, 0.2, 0.2), max_side: int | None = None,
            mode: str = "inner") -> np.ndarray:
    """The image in gray (0..1 RGB) with the outlines of a mask's or label image's objects in ``color`` (``mode``:
    skimage's ``find_boundaries``; ``thick`` for figures shown small); images larger than ``max_side`` are shown by
    every k-th pixel (bounded memory for huge frames)."""
    step = max(1, math.ceil(max(image.shape) / max_side)) if max_side else 1
    rgb = np.repeat(display(image[::step, ::step])[..., None], 3, axis=-1)
    shown = np.asarray(labels[::step, ::step])
    rgb[inner_boundaries(shown) if mode == "inner" else find_boundaries(shown, mode=mode)] = color
    return rgb


def _short(name: str, width: int = 34) -> str:
    """A long file name on two lines instead of cut short."""
    return name if len(name) <= width else f"{name[:width]}\n{name[width:2 * width]}"


# data analysis

def distribution_figure(rows: list[dict], diameters: np.ndarray, path: Path) -> Path:
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    axes[0, 0].hist([100 * r["positive_ratio"] for r in rows], bins=20, color="tab:blue")
    axes[0, 0].set(title="Bead pixels per image", xlabel="positive pixels (%)", ylabel="images")
    axes[0, 1].hist([r["bead_count"] for r in rows], bins=20, color="tab:green")
    axes[0, 1].set(title="Beads per image", xlabel="beads (mask components)", ylabel="images")
    axes[1, 0].hist(diameters, bins=30, color="tab:orange")
    axes[1, 0].set(title="Bead size", xlabel="equivalent diameter (px)", ylabel="beads")
    scatter = axes[1, 1].scatter([r["brightness"] for r in rows], [r["contrast"] for r in rows],
                                 c=[r["bead_count"] for r in rows], cmap="viridis")
    axes[1, 1].set(title="Brightness vs contrast", xlabel="mean intensity", ylabel="intensity std")
    fig.colorbar(scatter, ax=axes[1, 1], label="beads per image")
    return save(fig, path)


def sample_figure(samples: list, path: Path) -> Path:
    """Up to six images spanning the density range, mask outlines in red."""
    fig, axes = plt.subplots(2, 3, figsize=(13, 9))
    for ax in axes.ravel():
        ax.axis("off")
    for ax, sample in zip(axes.ravel(), samples):
        ax.imshow(overlay(sample.image, sample.mask))
        ax.set_title(f"{_short(sample.name)}\n{sample.bead_count} beads", fontsize=9)
    return save(fig, path)


def _crop_around(points: np.ndarray, shape: tuple[int, int], size: int = 96) -> tuple[slice, slice]:
    centre = np.median(points, axis=0) if len(points) else np.array(shape) / 2
    y0 = int(np.clip(centre[0] - size / 2, 0, max(shape[0] - size, 0)))
    x0 = int(np.clip(centre[1] - size / 2, 0, max(shape[1] - size, 0)))
    return slice(y0, y0 + size), slice(x0, x0 + size)


MAX_QA_PANELS = 6  # rows of the label-QA figure (per_image.csv lists every flagged image)


def label_qa_figure(cases: list[tuple[str, Any, Any, Any, dict]], path: Path) -> Path:
    """One panel per (problem, sample, detections, check, row): the evidence drawn on the image.

    Red: the mask's outlines; cyan: the beads the detector sees; yellow circles: beads no mask covers.
    """
    cases = cases[:MAX_QA_PANELS]
    rows = max(len(cases), 1)
    fig, axes = plt.subplots(rows, 2, figsize=(10, 3.6 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    if not cases:
        axes[0, 0].text(0, 0.5, "No label problem was flagged.", fontsize=14)
    for (problem, sample, detections, check, row), (left, right) in zip(cases, axes):
        rgb = overlay(sample.image, sample.mask)
        rgb[inner_boundaries(detections.labels) & ~inner_boundaries(sample.mask)] = (0.1, 0.9, 0.9)
        left.imshow(rgb)
        left.scatter(check.unlabelled_centroids[:, 1], check.unlabelled_centroids[:, 0], s=80,
                     facecolors="none", edgecolors="yellow", linewidths=1.2)
        left.set_title(f"{problem}: {sample.name[:40]}\n{row['unlabelled_beads']} of {row['detected_beads']} detected "
                       f"beads unlabelled; offset ({row['offset_y']:+.1f}, {row['offset_x']:+.1f}) px; "
                       f"size ratio {row['size_ratio']}", fontsize=9)
        points = check.unlabelled_centroids if problem == "missing labels" else detections.centroids
        ys, xs = _crop_around(points, sample.image.shape)
        left.add_patch(Rectangle((xs.start - 0.5, ys.start - 0.5), xs.stop - xs.start, ys.stop - ys.start, fill=False,
                                 edgecolor="white", linestyle="--", linewidth=1.5))
        right.imshow(rgb[ys, xs], interpolation="nearest",
                     extent=(xs.start - 0.5, xs.stop - 0.5, ys.stop - 0.5, ys.start - 0.5))
        right.set_title(f"zoom: the dashed box, rows {ys.start}-{ys.stop}, columns {xs.start}-{xs.stop}\n"
                        "(red: mask, cyan: beads in the image, yellow: unlabelled)", fontsize=9)
    return save(fig, path, dpi=100)


def comparison_figure(
    name_a: str, rows_a: list[dict], diam_a, name_b: str, *, rows_b: list[dict], diam_b, path: Path
) -> Path:
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for rows, diam, name in ((rows_a, diam_a, name_a), (rows_b, diam_b, name_b)):
        axes[0].hist([r["bead_count"] for r in rows], bins=20, alpha=0.6, label=name)
        axes[1].hist(diam, bins=30, alpha=0.6, density=True, label=name)
        axes[2].hist([100 * r["positive_ratio"] for r in rows], bins=20, alpha=0.6, label=name)
    axes[0].set(title="Beads per image", xlabel="beads", ylabel="images")
    axes[1].set(title="Bead size", xlabel="equivalent diameter (px)", ylabel="density")
    axes[2].set(title="Bead pixels per image", xlabel="positive pixels (%)", ylabel="images")
    for ax in axes:
        ax.legend()
    return save(fig, path)


# evaluation

def worst_figure(cases: list, path: Path, faults: list[str] | None = None) -> Path:
    """The worst images: truth (cyan) beside prediction (yellow), each with the mask's known label faults."""
    fig, axes = plt.subplots(max(len(cases), 1), 2, figsize=(10, 5 * max(len(cases), 1)), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for (row, image, truth, predicted), fault, (left, right) in zip(cases, faults or [""] * len(cases), axes):
        left.imshow(overlay(image, truth, (0.0, 1.0, 1.0), mode="thick"))
        left.set_title(f"{row['image'][:40]}\ntruth: {row['true_count']} beads", fontsize=9)
        if fault:
            left.text(0.01, 0.01, f"label fault: {fault}", transform=left.transAxes, color="white", fontsize=9,
                      va="bottom", bbox={"facecolor": "red", "alpha": 0.8, "pad": 2})
        right.imshow(overlay(image, predicted, (1.0, 0.8, 0.0), mode="thick"))
        right.set_title(
            f"prediction: {row['predicted_count']} beads; object F1 {row['object_f1']}, IoU {row['iou']}", fontsize=9
        )
    return save(fig, path, dpi=100)


def sweep_figure(sweep: list[dict], best: float, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([s["threshold"] for s in sweep], [s["iou"] for s in sweep], marker="o", label="pixel IoU")
    ax.plot([s["threshold"] for s in sweep], [s["object_f1"] for s in sweep], marker="s", label="object F1")
    ax.axvline(best, color="gray", linestyle="--", label=f"best {best:g}")
    ax.set(xlabel="probability threshold", ylabel="score", ylim=(0, 1.02), title="Threshold sweep")
    ax.legend()
    return save(fig, path)


# prediction

def group_counts_figure(rows: list[dict], path: Path) -> Path:
    """Mean beads per image against the group (log-log when the groups are numbers, e.g. dilutions), with the sample
    sd as error bars (none for a group of one image)."""
    rows = [{**r, "std_count": r["std_count"] or 0.0} for r in rows]
    numeric = [
        (float(r["group"]), r["mean_count"], r["std_count"]) for r in rows if re.fullmatch(r"[\d.]+", r["group"])
    ]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    if numeric:
        x, y, e = map(np.asarray, zip(*sorted(numeric)))
        ax.errorbar(x, np.maximum(y, 0.5), yerr=e, marker="o", capsize=3)
        ax.set(xscale="log", yscale="log", xlabel="group (from the file name)", ylabel="beads per image")
    else:
        ax.bar([r["group"] for r in rows], [r["mean_count"] for r in rows], yerr=[r["std_count"] for r in rows])
        ax.set(ylabel="beads per image")
    ax.set_title("Bead count per group")
    return save(fig, path)


def dilution_figure(result: dict, path: Path) -> Path:
    """Left: count per frame against dilution (log-log) with the fitted slope and the slope -1 line through the
    series' concentration; right: count × dilution per group with its interval and the series' value."""
    groups = result["groups"]
    colours = {"ok": "tab:blue", "saturated": "tab:red", "disagrees": "tab:orange"}
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
    dilution = np.array([g["dilution"] for g in groups])
    for g in groups:
        left.errorbar(g["dilution"], max(g["mean_count"], 0.5), yerr=g["std_count"], marker="o", capsize=3,
                      color=colours[g["status"]])
        right.errorbar(g["dilution"], g["concentration"], yerr=[[g["concentration"] - g["ci_low"]],
                       [g["ci_high"] - g["concentration"]]], marker="o", capsize=3, color=colours[g["status"]])
    span = np.geomspace(dilution.min() / 1.3, dilution.max() * 1.3, 50)
    left.plot(span, result["concentration"] / span, "k--", lw=1, label="slope -1 (proportional)")
    if result["slope"]:
        fit = result["slope"]
        left.plot(span, 10 ** fit["intercept"] * span ** fit["slope"], color="tab:blue", lw=1,
                  label=f"fit: slope {fit['slope']:.2f} [{fit['low']:.2f}, {fit['high']:.2f}]")
    low, high = result["concentration_ci"]
    right.axhspan(low, high, color="0.85", label="series (CI)")
    right.axhline(result["concentration"], color="k", lw=1)
    for status, colour in colours.items():
        if any(g["status"] == status for g in groups):
            right.plot([], [], "o", color=colour, label=status)
    left.set(xscale="log", yscale="log", xlabel="dilution", ylabel="beads per frame", title="Count against dilution")
    right.set(xscale="log", xlabel="dilution", ylabel="count × dilution (beads per frame at 1x)",
              title="Concentration per dilution")
    left.legend(fontsize=7)
    right.legend(fontsize=7)
    return save(fig, path)


# sweep reports

def _legend(ax, runs: list) -> None:
    if len(runs) <= 12:
        ax.legend(fontsize=7)


def curves(runs: list, tag: str, ylabel: str, path: Path, target: float | None = None, log: bool = False) -> Path:
    fig, ax = plt.subplots(figsize=(8, 5))
    for run in runs:
        values = run.learning_rate if tag == "lr" else run.series.get(tag, [])
        if values:
            ax.plot(range(1, len(values) + 1), values, label=run.name[:60], marker="o" if len(values) < 12 else None)
    if target is not None:
        ax.axhline(target, color="green", linestyle="--", label=f"target {target:g}")
    ax.set(xlabel="epoch", ylabel=ylabel, yscale="log" if log else "linear")
    _legend(ax, runs)
    return save(fig, path)


def generalisation_gap(run, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(8, 5))
    for tag, label in (("train/jaccard", "training"), ("val/jaccard", "validation")):
        values = run.series.get(tag, [])
        ax.plot(range(1, len(values) + 1), values, label=label)
    ax.set(xlabel="epoch", ylabel="Jaccard", title=f"Best run: {run.name[:70]}")
    ax.legend()
    return save(fig, path)


def best_bars(runs: list, path: Path, baseline: float | None) -> Path:
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
    return save(fig, path)


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
    return save(fig, path)


def before_after(runs: list, labels: list, path: Path) -> Path:
    """One panel per run (e.g. the lab's mitochondria vs microbead settings): training and validation Jaccard."""
    fig, axes = plt.subplots(1, len(runs), figsize=(6 * len(runs), 4.5), sharey=True, squeeze=False)
    for ax, run, label in zip(axes[0], runs, labels):
        for tag, name in (("train/jaccard", "training"), ("val/jaccard", "validation")):
            values = run.series.get(tag, [])
            ax.plot(range(1, len(values) + 1), values, label=name)
        best, epoch = run.best()
        ax.set(title=f"{label}: best val Jaccard {best:.3f} (epoch {epoch})", xlabel="epoch", ylabel="Jaccard")
        ax.legend()
    return save(fig, path)
