"""False beads on frames that hold none: synthetic 512² frames of noise only (and, in a second set, noise with
debris specks a third to half a bead's radius), bright-field and fluorescence, 8- and 16-bit, fixed seeds.

    python benchmarks/empty_frames.py                        # the shipped model and the classical baseline
    python benchmarks/empty_frames.py --ckpt RUN --frames 20 postprocess.min_contrast_snr=null

Prints a Markdown table: false beads per frame, frames with any false bead, and objects rejected as debris.
"""

from __future__ import annotations

import argparse

import numpy as np
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from beadseg.config import CONFIG_DIR
from beadseg.data.synthetic import render_beads
from beadseg.inference.predictor import predictor_from_config

SETS = [("brightfield", 8), ("brightfield", 16), ("fluorescence", 8), ("fluorescence", 16)]


def frames(modality: str, bit_depth: int, count: int, specks: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng([seed, bit_depth, len(modality)])
    return [render_beads(rng, 512, 0, modality, bit_depth=bit_depth, n_debris=specks)[0] for _ in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", default=None, help="checkpoint or training run (default: the shipped model)")
    parser.add_argument("--frames", type=int, default=20, help="frames per set")
    parser.add_argument("--specks", type=int, default=8, help="debris specks per frame in the second set")
    parser.add_argument("overrides", nargs="*", help="beadseg-predict overrides, e.g. postprocess.min_contrast_snr=null")
    args = parser.parse_args()
    methods = {"model": [*([f"ckpt={args.ckpt}"] if args.ckpt else []), *args.overrides],
               "classical": ["method=classical", *args.overrides]}
    lines = ["| frames | method | false beads | per frame | frames with any | rejected as debris |", "|---|---|---|---|---|---|"]
    for name, overrides in methods.items():
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose("predict", ["input=unused", *overrides])
        predictor = predictor_from_config(cfg)
        post = instantiate(cfg.postprocess).for_model(predictor)
        for specks in (0, args.specks):
            for modality, bit_depth in SETS:
                found, debris, touched = 0, 0, 0
                for image in frames(modality, bit_depth, args.frames, specks, seed=specks):
                    result = post.instances(predictor.predict(image)[0], image)
                    found += len(result.objects)
                    debris += len(result.debris)
                    touched += bool(result.objects)
                what = f"{args.frames} {modality} {bit_depth}-bit, noise" + (f" + {specks} specks" if specks else " only")
                lines.append(f"| {what} | {name} | {found} | {found / args.frames:.2f} | {touched} | {debris} |")
                print(lines[-1], flush=True)
    print("\n".join(["", f"model: {args.ckpt or 'the shipped model'}; 512² frames holding no bead", "", *lines]))


if __name__ == "__main__":
    main()
