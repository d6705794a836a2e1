"""Training from clicked points against training from masks, on the lab's real tiles: the same preset, start
model, split and budget, once with the masks and once with only one point per bead (the centres of the masks'
beads, as a person clicking them would give), scored on the same held-out captures against their masks.

The points folder is built in ``--work`` (``images/`` a link to the data's, ``points/<stem>.csv`` from the masks);
nothing is copied into the repository.

    python benchmarks/points_vs_masks.py --init-from SYNTHETIC_RUN [--epochs 4] [--work DIR] [overrides]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir
from scipy import ndimage as ndi

from beadseg.beads.instances import bead_instances
from beadseg.config import CONFIG_DIR
from beadseg.data.folder import pair_folder
from beadseg.data.io import read_mask
from beadseg.data.points import write_points
from beadseg.evaluation.evaluate import evaluate
from beadseg.training.task import train

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "microbeads" / "real"
SPARSE = "['2560x_2025-05-16_00-59-00','5120x_2025-05-16_00-59-00','10240x_2025-05-29_02-22-00_002']"


def configured(name: str, overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(name, overrides=overrides)


def points_folder(data: Path, folder: Path) -> int:
    """``folder`` with ``images/`` linked to ``data``'s and one points file per mask (its beads' centres)."""
    (folder / "points").mkdir(parents=True, exist_ok=True)
    if not (folder / "images").exists():
        (folder / "images").symlink_to((data / "images").resolve())
    beads = 0
    for image, mask in pair_folder(data):
        labels = bead_instances(read_mask(mask))
        centres = ndi.center_of_mass(labels > 0, labels, range(1, labels.max() + 1)) if labels.max() else []
        write_points(folder / "points" / f"{image.stem}.csv", np.asarray(centres))
        beads += len(centres)
    return beads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--init-from", required=True, help="a start model that never saw the lab's tiles")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--test-groups", default=SPARSE, help="captures held out whole and scored")
    parser.add_argument("--work", type=Path, default=ROOT / "outputs" / "benchmarks" /
                        f"points_vs_masks_{time.strftime('%Y%m%d_%H%M%S')}")
    parser.add_argument("--ways", nargs="+", default=["masks", "points"], help="which runs (masks, points)")
    parser.add_argument("--points-diameter", default="auto", help="image.bead_diameter of the points run: the "
                        "disks' size (auto: estimated per frame)")
    parser.add_argument("overrides", nargs="*", help="beadseg-train overrides for both runs")
    args = parser.parse_args()
    beads = points_folder(args.data, args.work / "points_data")
    print(f"{beads} beads of {args.data} turned into points in {args.work / 'points_data'}")
    common = ["experiment=microbeads_real", f"data.test_groups={args.test_groups}", f"init_from={args.init_from}",
              f"trainer.max_epochs={args.epochs}", f"callbacks.early_stopping.patience={args.epochs}", "test=false",
              *args.overrides]
    ways = {"masks": [f"data.root={args.data}"],
            "points": [f"data.root={args.work / 'points_data'}", "data.annotations=points",
                       f"image.bead_diameter={args.points_diameter}"]}
    rows = []
    for way in args.ways:
        overrides, started = ways[way], time.perf_counter()
        name = way if way == "masks" else f"points (disks: {args.points_diameter})"
        run = args.work / (way if name == way or args.points_diameter == "auto" else f"points_{args.points_diameter}")
        result = train(configured("train", [*common, *overrides, f"paths.output_dir={run}"]))
        minutes = (time.perf_counter() - started) / 60
        scored = evaluate(configured("eval", [f"ckpt={run}", f"data.root={args.data}", "split=test",
                                              "thresholds=[]", "peak_thresholds=[]", "worst_images=0",
                                              f"output={args.work / f'eval_{way}'}",
                                              f"paths.output_dir={args.work / f'eval_{way}'}"]))
        objects = scored["metrics"]["objects"]["components"]  # sparse tiles: each mask component one bead
        rows.append(f"| {name} | {objects['f1']:.3f} | {objects['precision']:.3f} | {objects['recall']:.3f} | "
                    f"{objects['median_relative_count_error']:.1%} | {result['best_score']:.3f} | {minutes:.1f} |")
        print(rows[-1], flush=True)
    print("\n| trained from | held-out object F1 | precision | recall | median count error | best val score "
          "| minutes |\n|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
