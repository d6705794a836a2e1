"""Where the two counting conventions disagree, look: crops of the densest real captures with the mask's
components (red outlines, one bead each by the lab's convention), beadseg's watershed split of them (yellow +)
and the bead centres by area (cyan dots: a component holds round(area / single-bead area) beads).

    python benchmarks/conventions_figure.py [--data DIR] [--output PNG]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from skimage.measure import label

from beadseg.beads.instances import centres_by_area, centroids, single_bead_area, split_touching
from beadseg.data.folder import pair_folder
from beadseg.data.io import read_image, read_mask
from beadseg.plots import overlay

ROOT = Path(__file__).resolve().parents[1]
CROP = 128


def densest_crop(mask: np.ndarray) -> tuple[slice, slice]:
    """The CROP² window holding the most large (merged) components."""
    components = label(mask, connectivity=1)
    areas = np.bincount(components.ravel())
    big = np.isin(components, np.flatnonzero(areas > 3 * single_bead_area(mask))[1:]).astype(float)
    sums = np.add.reduceat(np.add.reduceat(big, np.arange(0, mask.shape[0], 32), 0), np.arange(0, mask.shape[1], 32), 1)
    best = np.unravel_index(np.argmax(np.lib.stride_tricks.sliding_window_view(sums, (4, 4)).sum((-1, -2))), (13, 13))
    y, x = best[0] * 32, best[1] * 32
    return slice(y, y + CROP), slice(x, x + CROP)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "microbeads" / "real")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "conventions.png")
    args = parser.parse_args()
    pairs = [p for p in pair_folder(args.data) if p[0].name.startswith(("160x", "320x", "640x"))]
    chosen = [next(p for p in pairs if p[0].name.startswith(prefix)) for prefix in ("160x", "320x", "640x")]
    fig, axes = plt.subplots(1, len(chosen), figsize=(6 * len(chosen), 6.4))
    for ax, (image_path, mask_path) in zip(axes, chosen):
        image, mask = read_image(image_path), read_mask(mask_path) > 0
        ys, xs = densest_crop(mask)
        split = centroids(split_touching(mask))
        by_area = centres_by_area(mask)
        def inside(p, ys=ys, xs=xs):
            return p[(p[:, 0] >= ys.start) & (p[:, 0] < ys.stop) & (p[:, 1] >= xs.start) & (p[:, 1] < xs.stop)]

        ax.imshow(overlay(image, mask)[ys, xs], extent=(xs.start - 0.5, xs.stop - 0.5, ys.stop - 0.5, ys.start - 0.5))
        for points, style in ((inside(split), dict(marker="+", c="yellow", s=40)),
                              (inside(by_area), dict(marker="o", c="cyan", s=8))):
            ax.scatter(points[:, 1], points[:, 0], **style)
        whole = (label(mask, connectivity=1).max(), len(split), len(by_area))
        ax.set_title(f"{image_path.name[:34]}\nwhole tile: {whole[0]} components, {whole[1]} split, {whole[2]} by area "
                     f"(single bead {single_bead_area(mask):.0f} px)", fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(args.output, dpi=80)
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
