"""The dilution-series report on the lab's real tiles: from a model's counts (beadseg-predict with the dilution
regex, as a user runs it) and from the lab's masks under both counting conventions (connected components, and
bead centres: a component of area A holds round(A / one bead's area) beads).

    python benchmarks/dilution_series.py                   # the shipped model
    python benchmarks/dilution_series.py --ckpt RUN        # a training run's checkpoint

Writes benchmarks/results/dilution/<source>/dilution_report.{md,csv,png} and prints the reports' paragraphs.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from scipy import ndimage as ndi

from beadseg.analysis.dilution import DilutionSeries, summary
from beadseg.beads.instances import centres_by_area
from beadseg.data.folder import pair_folder
from beadseg.data.io import image_name, read_mask

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "microbeads" / "real"
DILUTION = r"^(\d+)x_"


def truth_counts(data: Path) -> dict[str, list[dict]]:
    """Beads per tile in the lab's masks, by both conventions."""
    counts: dict[str, list[dict]] = {"masks_components": [], "masks_centres": []}
    for _, mask_path in pair_folder(data):
        mask = read_mask(mask_path) > 0
        name = image_name(mask_path)
        counts["masks_components"].append({"image": name, "count": ndi.label(mask)[1]})
        counts["masks_centres"].append({"image": name, "count": len(centres_by_area(mask))})
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--ckpt", default=None, help="checkpoint or training run (default: the shipped model)")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "dilution")
    parser.add_argument("--work", type=Path, default=ROOT / "outputs" / "benchmarks" / f"dilution_{time.strftime('%Y%m%d_%H%M%S')}")
    args = parser.parse_args()
    predicted = args.work / "predict"
    done = subprocess.run([str(Path(sys.executable).parent / "beadseg-predict"), f"input={args.data / 'images'}",
                           f"output={predicted}", f"hydra.run.dir={args.work / 'hydra'}", f"group_regex='{DILUTION}'",
                           *([f"ckpt={args.ckpt}"] if args.ckpt else [])], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr)
    model = args.results / "model"
    model.mkdir(parents=True, exist_ok=True)
    for suffix in ("md", "csv", "png"):
        shutil.copy(predicted / f"dilution_report.{suffix}", model / f"dilution_report.{suffix}")
    print(f"## model ({args.ckpt or 'the shipped model'})\n\n{(model / 'dilution_report.md').read_text()}")
    series = DilutionSeries()
    for source, counts in truth_counts(args.data).items():
        folder = args.results / source
        folder.mkdir(parents=True, exist_ok=True)
        series.write(counts, DILUTION, folder)
        print(f"## {source}\n\n{summary(series.report(counts, DILUTION))}\n")


if __name__ == "__main__":
    main()
