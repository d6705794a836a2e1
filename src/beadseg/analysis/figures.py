"""Figures of the analysis: distributions, sample overlays, label-QA evidence, data-set comparison."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from skimage.segmentation import find_boundaries  # noqa: E402

from beadseg.inference.outputs import display  # noqa: E402


def overlay(image: np.ndarray, mask: np.ndarray, color=(1.0, 0.2, 0.2)) -> np.ndarray:
    """The image in gray with the mask's outlines in ``color``."""
    rgb = np.repeat(display(image)[..., None], 3, axis=-1)
    rgb[find_boundaries(mask, mode="inner")] = color
    return rgb


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
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def sample_figure(samples: list, path: Path) -> Path:
    """Up to six images spanning the density range, mask outlines in red."""
    fig, axes = plt.subplots(2, 3, figsize=(13, 9))
    for ax in axes.ravel():
        ax.axis("off")
    for ax, sample in zip(axes.ravel(), samples):
        ax.imshow(overlay(sample.image, sample.mask))
        ax.set_title(f"{sample.name[:38]}\n{sample.bead_count} beads", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _crop_around(points: np.ndarray, shape: tuple[int, int], size: int = 96) -> tuple[slice, slice]:
    centre = np.median(points, axis=0) if len(points) else np.array(shape) / 2
    y0 = int(np.clip(centre[0] - size / 2, 0, max(shape[0] - size, 0)))
    x0 = int(np.clip(centre[1] - size / 2, 0, max(shape[1] - size, 0)))
    return slice(y0, y0 + size), slice(x0, x0 + size)


def label_qa_figure(cases: list[tuple[str, object, object, object, dict]], path: Path) -> Path:
    """One panel per (problem, sample, detections, check, row): the evidence drawn on the image.

    Red: the mask's outlines; cyan: the beads the detector sees; yellow circles: beads no mask covers.
    """
    rows = max(len(cases), 1)
    fig, axes = plt.subplots(rows, 2, figsize=(11, 5 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    if not cases:
        axes[0, 0].text(0, 0.5, "No label problem was flagged.", fontsize=14)
    for (problem, sample, detections, check, row), (left, right) in zip(cases, axes):
        rgb = overlay(sample.image, sample.mask)
        rgb[find_boundaries(detections.labels, mode="inner") & ~find_boundaries(sample.mask, mode="inner")] = (0.1, 0.9, 0.9)
        left.imshow(rgb)
        left.scatter(check.unlabelled_centroids[:, 1], check.unlabelled_centroids[:, 0], s=80,
                     facecolors="none", edgecolors="yellow", linewidths=1.2)
        left.set_title(f"{problem}: {sample.name[:40]}\n{row['unlabelled_beads']} of {row['detected_beads']} detected "
                       f"beads unlabelled; offset ({row['offset_y']:+.1f}, {row['offset_x']:+.1f}) px; "
                       f"size ratio {row['size_ratio']}", fontsize=9)
        points = check.unlabelled_centroids if problem == "missing labels" else detections.centroids
        ys, xs = _crop_around(points, sample.image.shape)
        right.imshow(rgb[ys, xs], interpolation="nearest")
        right.set_title("zoom (red: mask, cyan: beads in the image, yellow: unlabelled)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def comparison_figure(name_a: str, rows_a: list[dict], diam_a, name_b: str, rows_b: list[dict], diam_b, path: Path) -> Path:
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
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
