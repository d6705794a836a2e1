"""Dense counting on the lab's own beads with exact truth, and the dilution series' consistency.

Composite frames (``beadseg.data.composite``): isolated beads cut out of the lab's dense captures (160x and 320x
frames), multiplied back onto those frames emptied of every bead, at 320x-like (410-750 beads per 512²) and
160x-like (900-1400) densities, 45 % of the beads touching in doublets, triplets, chains and clumps at contact
distance. The model and the classical baseline are scored against the composites' instance labels (beads matched
one-to-one by centroid within 5 px); the count error is signed (found - true) / true.

The dilution check predicts the lab's real tiles as a user does (``beadseg-predict group_regex=...``) and compares
each dense group's count × dilution (the edge rule's counts) with the sparse groups' (2560x and sparser) of the
same stock (the capture date in the file names). The lab's tiles are few at the sparse end and their own masks do
not hold the series' proportion, so the same check also runs on a composite dilution series of one stock with
exact truth: the lab's dilutions (160x-5120x), ``STOCK_BEADS`` / dilution beads per 512² frame (the concentration
of the lab's 160x tiles), the same beads and emptied frames.

    python benchmarks/dense_composite.py                      # the shipped model
    python benchmarks/dense_composite.py --ckpt RUN --images 12      # quicker, but F1 moves by ±0.006 with 12
"""

from __future__ import annotations

import argparse
import csv
import re
import time
from pathlib import Path

import numpy as np
import tifffile
from hydra import compose, initialize_config_dir

from beadseg.cli.synth import write_synthetic_folder
from beadseg.config import CONFIG_DIR
from beadseg.data.composite import CompositeSource
from beadseg.evaluation.evaluate import evaluate
from beadseg.inference.predict import predict

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "microbeads" / "real"
SETS = {"320x-like": (410, 750, 11), "160x-like": (900, 1400, 12)}  # beads per 512² (low, high), seed
DENSE_FRAMES = r"^(160x|320x)_"
SPARSE_FRAMES = r"^(2560x|5120x|10240x)_"  # the captures whose counts are reliable
CAPTURE = r"^(.*)_grid_"
STOCK = r"^(\d+)x_([^_]+)"  # dilution and stock: the capture date (the lab's tiles) or "composite"
SERIES = (160, 320, 640, 1280, 2560, 5120)  # the lab's dilutions
STOCK_BEADS = 176_000  # beads per 512² frame × dilution of the composite series: the lab's 160x tiles (2025-05-29)


def configured(name: str, overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(name, overrides=overrides)


def score(data: Path, out: Path, method: list[str]) -> tuple[dict, float]:
    """Object scores of a folder and the median signed relative count error."""
    metrics = evaluate(configured("eval", [f"data.root={data}", "split=all", "thresholds=[]", "peak_thresholds=[]",
                                           f"output={out}", *method]))["metrics"]
    with open(out / "per_image.csv") as handle:
        signed = [float(row["relative_count_error"]) for row in csv.DictReader(handle) if row["relative_count_error"]]
    return metrics, float(np.median(signed))


def dilution_check(data: Path, out: Path, ckpt: list[str]) -> list[str]:
    """Count × dilution of each group of a folder's frames (edge rule), against the sparse groups' (≥ 2560x) of the
    same stock (the capture date in the lab's names: beads of one day's dilution series). Where the folder has
    instance-label masks (a composite series), each group's model count of all objects against the truth's too."""
    predict(configured("predict", [f"input={data / 'images'}", f"output={out}", f"paths.output_dir={out}",
                                   "overlays=false", *ckpt]))
    counts: dict[tuple[str, int], list[tuple[int, int, int]]] = {}
    with open(out / "counts.csv") as handle:
        for row in csv.DictReader(handle):
            match = re.match(STOCK, row["image"])
            mask = data / "masks" / f"{row['image']}.tif"
            true = int(len(np.unique(tifffile.imread(mask))) - 1) if mask.is_file() else -1
            counts.setdefault((match.group(2), int(match.group(1))), []).append(
                (int(row["count"]), int(row["count_all"]), true))
    truth = all(true >= 0 for values in counts.values() for *_, true in values)
    lines = ["| stock | dilution | frames | beads per frame (mean, edge rule) | count × dilution | "
             "against the stock's sparse groups |" + (" true beads per frame | all objects against the truth |"
                                                       if truth else ""),
             "|---|---|---|---|---|---|" + ("---|---|" if truth else "")]
    for stock in sorted({stock for stock, _ in counts}):
        groups = {dilution: np.array(values) for (name, dilution), values in sorted(counts.items()) if name == stock}
        sparse = [float(v[:, 0].mean()) * d for d, v in groups.items() if d >= 2560]
        reference = float(np.mean(sparse)) if sparse else None
        for dilution, values in groups.items():
            value = float(values[:, 0].mean()) * dilution
            versus = "-" if not reference else "(sparse)" if dilution >= 2560 else f"{value / reference - 1:+.1%}"
            found = (f" {values[:, 2].mean():.1f} | {values[:, 1].sum() / values[:, 2].sum() - 1:+.1%} |"
                     if truth else "")
            lines.append(f"| {stock} | {dilution}x | {len(values)} | {values[:, 0].mean():.1f} | {value:,.0f} | "
                         f"{versus} |{found}")
    return lines


def composite_series(data: Path, out: Path, frames: int, captures: str) -> Path:
    """A dilution series of one stock with exact truth: ``frames`` composite frames per dilution of ``SERIES``, each
    of ``STOCK_BEADS`` / dilution beads from the frames matching ``captures`` (beads and emptied frames), named
    ``<dilution>x_composite_<n>`` in one folder."""
    for dilution in SERIES:
        beads = round(STOCK_BEADS / dilution)
        source = CompositeSource(data, n_images=frames, min_beads=beads, max_beads=beads, seed=dilution,
                                 frames=captures, group_by=CAPTURE)
        write_synthetic_folder(source, out / f"{dilution}x")
        for sub in ("images", "masks"):
            (out / "series" / sub).mkdir(parents=True, exist_ok=True)
            for path in sorted((out / f"{dilution}x" / sub).glob("*.tif")):
                path.rename(out / "series" / sub / f"{dilution}x_{path.name}")
    return out / "series"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--ckpt", default=None, help="checkpoint or training run (default: the shipped model)")
    parser.add_argument("--images", type=int, default=48, help="composite frames per density (12 leave a spread of ±0.006 in F1)")
    parser.add_argument("--series-frames", type=int, default=12, help="composite frames per dilution of the series")
    parser.add_argument("--series-captures", default=SPARSE_FRAMES,
                        help="regex of the frames the series' beads and emptied frames come from")
    parser.add_argument("--work", type=Path,
                        default=ROOT / "outputs" / "benchmarks" / f"dense_composite_{time.strftime('%Y%m%d_%H%M%S')}")
    parser.add_argument("overrides", nargs="*", help="beadseg-eval overrides, e.g. postprocess.split_area_ratio=null")
    args = parser.parse_args()
    ckpt = [f"ckpt={args.ckpt}"] if args.ckpt else []
    methods = {"model": [*ckpt, *args.overrides], "classical": ["method=classical", *args.overrides]}
    lines = ["| frames | method | beads (true) | object F1 | precision | recall | median signed count error |",
             "|---|---|---|---|---|---|---|"]
    costs = []
    for name, (low, high, seed) in SETS.items():
        source = CompositeSource(args.data, n_images=args.images, min_beads=low, max_beads=high, seed=seed,
                                 frames=DENSE_FRAMES, group_by=CAPTURE)
        started = time.perf_counter()
        library = source.library
        cut = time.perf_counter() - started
        started = time.perf_counter()
        folder = write_synthetic_folder(source, args.work / name)
        costs.append(f"{name}: beads cut from {len(library.backgrounds)} frames in {cut:.1f} s "
                     f"({sum(map(len, library.beads.values()))} isolated beads); "
                     f"{(time.perf_counter() - started) / args.images * 1000:.0f} ms per 512² composite frame "
                     "(drawn and written as TIFF)")
        for method, overrides in methods.items():
            metrics, signed = score(folder, args.work / f"eval_{name}_{method}", overrides)
            objects = metrics["objects"]["centroid"]
            lines.append(f"| {args.images} {name} | {method} | {metrics['count']['total_true']} | "
                         f"{objects['f1']:.3f} | {objects['precision']:.3f} | {objects['recall']:.3f} | {signed:+.1%} |")
            print(lines[-1], flush=True)
    dilution = dilution_check(args.data, args.work / "predict_real", ckpt)
    series = dilution_check(composite_series(args.data, args.work / "composite_series", args.series_frames,
                                             args.series_captures), args.work / "predict_series", ckpt)
    print("\n".join(["", f"model: {args.ckpt or 'the shipped model'}", "", *lines, "", *costs, "",
                     "## Dilution series of the lab's tiles (model, edge rule)", "", *dilution, "",
                     f"## A composite dilution series of one stock ({STOCK_BEADS:,} beads per 512² × dilution, "
                     f"{args.series_frames} frames per dilution)", "", *series]))


if __name__ == "__main__":
    main()
