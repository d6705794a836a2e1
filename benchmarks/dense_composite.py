"""Dense counting on the lab's own beads with exact truth, and the dilution series' consistency.

Composite frames (``beadseg.data.composite``): isolated beads cut out of the lab's dense captures (160x and 320x
frames), multiplied back onto those frames emptied of every bead, at 320x-like (410-750 beads per 512²) and
160x-like (900-1400) densities, 45 % of the beads touching in doublets, triplets, chains and clumps at contact
distance. The model and the classical baseline are scored against the composites' instance labels (beads matched
one-to-one by centroid within 5 px); the count error is signed (found - true) / true.

The dilution check predicts the lab's real tiles as a user does (``beadseg-predict group_regex=...``) and compares
each dense group's count × dilution (the edge rule's counts) with the sparse groups' (2560x and sparser) of the
same stock (the capture date in the file names).

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
CAPTURE = r"^(.*)_grid_"
STOCK = r"^(\d+)x_(\d{4}-\d{2}-\d{2})"  # dilution and capture date


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


def dilution_check(data: Path, work: Path, ckpt: list[str]) -> list[str]:
    """Count × dilution of each group of the lab's tiles (edge rule), against the sparse groups' (≥ 2560x) of the
    same stock (the capture date in the names: beads of one day's dilution series)."""
    out = work / "predict_real"
    predict(configured("predict", [f"input={data / 'images'}", f"output={out}", f"paths.output_dir={out}",
                                   "overlays=false", *ckpt]))
    counts: dict[tuple[str, int], list[int]] = {}
    with open(out / "counts.csv") as handle:
        for row in csv.DictReader(handle):
            match = re.match(STOCK, row["image"])
            counts.setdefault((match.group(2), int(match.group(1))), []).append(int(row["count"]))
    lines = ["| stock (date) | dilution | frames | beads per frame (mean, edge rule) | count × dilution | "
             "against the stock's sparse groups |", "|---|---|---|---|---|---|"]
    for stock in sorted({stock for stock, _ in counts}):
        groups = {dilution: values for (day, dilution), values in sorted(counts.items()) if day == stock}
        sparse = [float(np.mean(v)) * d for d, v in groups.items() if d >= 2560]
        reference = float(np.mean(sparse)) if sparse else None
        for dilution, values in groups.items():
            value = float(np.mean(values)) * dilution
            versus = "-" if not reference else "(sparse)" if dilution >= 2560 else f"{value / reference - 1:+.1%}"
            lines.append(f"| {stock} | {dilution}x | {len(values)} | {np.mean(values):.1f} | {value:,.0f} | {versus} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--ckpt", default=None, help="checkpoint or training run (default: the shipped model)")
    parser.add_argument("--images", type=int, default=48, help="composite frames per density (12 leave a spread of ±0.006 in F1)")
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
    dilution = dilution_check(args.data, args.work, ckpt)
    print("\n".join(["", f"model: {args.ckpt or 'the shipped model'}", "", *lines, "", *costs, "",
                     "## Dilution series of the lab's tiles (model, edge rule)", "", *dilution]))


if __name__ == "__main__":
    main()
