"""Dense counting where the truth is exact: synthetic 512² images with 300-700 beads, half of them touching a
neighbour, bright-field and fluorescence (fixed seeds), scored against the generator's instance labels.

    python benchmarks/dense_synthetic.py                       # the shipped model and the classical baseline
    python benchmarks/dense_synthetic.py --ckpt RUN/checkpoints/best.ckpt --images 10 postprocess.peak_distance=3
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from hydra import compose, initialize_config_dir

from beadseg.cli.synth import write_synthetic_folder
from beadseg.config import CONFIG_DIR
from beadseg.data.synthetic import SyntheticSource
from beadseg.evaluation.evaluate import evaluate

ROOT = Path(__file__).resolve().parents[1]
SETS = {"brightfield": 100, "fluorescence": 200}  # modality: seed


def score(data: Path, out: Path, method: list[str]) -> dict:
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("eval", [f"data.root={data}", "split=all", "thresholds=[]", f"output={out}", *method])
    return evaluate(cfg)["metrics"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", default=None, help="checkpoint to score (default: the shipped model)")
    parser.add_argument("--images", type=int, default=10, help="images per modality")
    parser.add_argument("overrides", nargs="*", help="beadseg-eval overrides, e.g. postprocess.peak_distance=3")
    parser.add_argument("--work", type=Path,
                        default=ROOT / "outputs" / "benchmarks" / f"dense_{time.strftime('%Y%m%d_%H%M%S')}")
    args = parser.parse_args()
    methods = {"model": [*([f"ckpt={args.ckpt}"] if args.ckpt else []), *args.overrides],
               "classical": ["method=classical"]}
    lines = ["| images | method | beads (true) | object F1 | object precision | object recall | median count error "
             "| total count error |", "|---|---|---|---|---|---|---|---|"]
    for modality, seed in SETS.items():
        dense = SyntheticSource(args.images, 512, seed, modality, bit_depth=8 if modality == "brightfield" else 16,
                                min_beads=300, max_beads=700, cluster_fraction=0.5)
        data = write_synthetic_folder(dense, args.work / modality)
        for name, method in methods.items():
            metrics = score(data, args.work / f"eval_{modality}_{name}", method)
            objects, count = metrics["objects"]["centroid"], metrics["count"]
            lines.append(f"| {args.images} {modality} | {name} | {count['total_true']} | {objects['f1']:.3f} | "
                         f"{objects['precision']:.3f} | {objects['recall']:.3f} | "
                         f"{count['median_relative_error']:.3f} | {count['total_relative_error']:+.3f} |")
            print(lines[-1], flush=True)
    print("\n".join(["", f"model: {args.ckpt or 'the shipped model'}; truth: the generator's instance labels; "
                     "objects matched one-to-one by centroid ≤ 5 px", "", *lines]))


if __name__ == "__main__":
    main()
