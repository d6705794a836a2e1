"""Another lab's beads: public sample frames with a count their source states, counted by beadseg as a user would
(``beadseg-predict`` on the folder), with the bead size estimated and given.

The set (rebuilt from its source, never copied into this repository):

- ``trackpy-brightfield``: the bright-field tutorial of trackpy (``notebooks/brightfield.ipynb`` in
  https://github.com/soft-matter/trackpy-examples, ``sample_data/brightfield/bf_0000.png`` ... ``bf_0049.png``;
  BSD 3-clause or CC BY 3.0, at the user's option, (c) the trackpy-examples contributors). 50 frames of 500x500
  8-bit, "cropped to focus on just five particles": five colloids of 2.12 µm at 0.15193 µm per px (13.95 px), a
  bright centre inside a dark ring; all five stay inside every frame, so the truth is 5 per frame, 250 in all.

    git clone --depth 1 https://github.com/soft-matter/trackpy-examples /data/trackpy-examples
    python benchmarks/public_beads.py --trackpy-examples /data/trackpy-examples [--ckpt RUN_OR_CKPT]

Each way of sizing is one ``beadseg-predict`` run (edge rule none: the truth counts every colloid in view).
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PIXEL_SIZE_UM = 0.15192872980868  # the tutorial's micron_per_pixel
DIAMETER_UM = 2.12  # the tutorial's feature_diameter
PER_FRAME = 5


def frames(clone: Path) -> Path:
    folder = clone / "sample_data" / "brightfield"
    found = sorted(folder.glob("bf_*.png"))
    if len(found) != 50:
        raise SystemExit(f"{folder} holds {len(found)} bf_*.png frames, not the tutorial's 50: clone "
                         "https://github.com/soft-matter/trackpy-examples and pass its folder")
    return folder


def predict(folder: Path, out: Path, overrides: list[str], ckpt: str | None) -> dict:
    command = [str(Path(sys.executable).parent / "beadseg-predict"), f"input={folder}", f"output={out}",
               "postprocess.edge_rule=none", "overlays=0", *([f"ckpt={ckpt}"] if ckpt else []), *overrides]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    with open(out / "counts.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    counts = [int(row["count"]) for row in rows]
    diameters = sorted(float(row["bead_diameter"]) for row in rows if row["bead_diameter"])
    return {"total": sum(counts), "exact": sum(c == PER_FRAME for c in counts), "frames": len(counts),
            "diameter": diameters[len(diameters) // 2] if diameters else None, "seconds": seconds,
            "sources": sorted({row["bead_diameter_source"] for row in rows})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trackpy-examples", type=Path, required=True, help="a clone of soft-matter/trackpy-examples")
    parser.add_argument("--ckpt", default=None, help="default: the shipped model")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    folder = frames(args.trackpy_examples)
    work = args.work or Path(tempfile.mkdtemp(prefix="beadseg-public-"))
    ways = {"estimated (auto)": [], "given in px (13.95)": [f"image.bead_diameter={DIAMETER_UM / PIXEL_SIZE_UM:.2f}"],
            "given in µm (2.12 at 0.1519 µm/px)": [f"image.bead_diameter_um={DIAMETER_UM}",
                                                  f"image.pixel_size_um={PIXEL_SIZE_UM}"],
            "the model's size (as before)": ["image.bead_diameter=model"]}
    truth = PER_FRAME * 50
    print("| trackpy-brightfield, 50 frames, truth 250 | counted | error | frames with exactly 5 | diameter px "
          "(median) | source | time |")
    print("|---|---|---|---|---|---|---|")
    for index, (way, overrides) in enumerate(ways.items()):
        result = predict(folder, work / f"run{index}", overrides, args.ckpt)
        diameter = f"{result['diameter']:.2f}" if result["diameter"] else ""
        print(f"| {way} | {result['total']} | {(result['total'] - truth) / truth:+.1%} | {result['exact']}/50 | "
              f"{diameter} | {', '.join(result['sources'])} | {result['seconds']:.0f} s |", flush=True)
    print(f"runs in {work}")


if __name__ == "__main__":
    main()
