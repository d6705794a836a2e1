"""Beads at other magnifications and contrasts: the lab's sparse dev tiles rescaled and inverted, scored for beadseg
(the bead size estimated, given, or the model's as before) beside trackpy given the true diameter; and the
estimate's accuracy and cost.

Every variant is the lab's sparse tiles (the 2560x, 5120x and 10240x captures: beads apart, masks drawn bead by
bead) resized with bicubic interpolation (masks nearest) by 0.5 to 4, or inverted (bright beads on a grey field).
The true diameter of a variant is the median equivalent diameter of its masks' components clear of the edge, times
the factor; beads are matched by centre within two thirds of it (5 px at the tiles' own 7.5 px, eval's default).

trackpy (``pip install trackpy``; not a dependency of beadseg) is given the true diameter (rounded up to odd) and the
polarity, and the minimum mass that gives it the best F1 on the native tiles (scaled with the area on the others).

    python benchmarks/magnification.py --ckpt RUN_OR_CKPT [--factors 0.5 1 2 3 4] [--work DIR] [--costs-only]

The shipped model trained on these tiles (at their own size and polarity); a model trained with these captures
held out (``data.test_groups``) gives the score on unseen beads.
"""

from __future__ import annotations

import argparse
import logging
import math
import tempfile
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
from hydra import compose, initialize_config_dir
from skimage.measure import label
from skimage.segmentation import clear_border
from skimage.transform import rescale

from beadseg.beads.size import estimate_diameter, pooled
from beadseg.config import CONFIG_DIR
from beadseg.data.folder import pair_folder
from beadseg.data.io import read_image, read_mask
from beadseg.data.split import group_names
from beadseg.evaluation.evaluate import evaluate
from beadseg.evaluation.scores import Truth
from beadseg.metrics.objects import match_points

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "microbeads" / "real"
SPARSE = r"^(2560x|5120x|10240x)_"
CAPTURE = r"^(.*)_grid_"


def native_diameter(masks: list[np.ndarray]) -> float:
    """The median equivalent diameter of the masks' components clear of the frame's edge."""
    areas = np.concatenate([np.bincount(clear_border(label(mask > 0)).ravel())[1:] for mask in masks])
    return float(np.median(np.sqrt(4 * areas[areas > 0] / np.pi)))


def write_variant(pairs: list[tuple[str, np.ndarray, np.ndarray]], factor: float, invert: bool, folder: Path) -> None:
    for sub in ("images", "masks"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for name, image, mask in pairs:
        if factor != 1:
            image = rescale(image.astype(float), factor, order=3, preserve_range=True, anti_aliasing=factor < 1)
            mask = rescale(label(mask > 0), factor, order=0, preserve_range=True, anti_aliasing=False) > 0
        image = np.clip(255 - image if invert else image, 0, 255).astype(np.uint8)
        iio.imwrite(folder / "images" / f"{name}.png", image)
        iio.imwrite(folder / "masks" / f"{name}.png", (mask > 0).astype(np.uint8) * 255)


def beadseg_scores(folder: Path, ckpt: str, diameter: str, distance: float, out: Path) -> dict:
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("eval", [f"data.root={folder}", f"ckpt={ckpt}", f"output={out}", "thresholds=[]",
                               "peak_thresholds=[]", f"match_distance={distance}", f"image.bead_diameter={diameter}",
                               "worst_images=0", f"paths.output_dir={out}"])
    started = time.perf_counter()
    components = evaluate(cfg)["metrics"]["objects"]["components"]
    return {"f1": components["f1"], "count": components["median_relative_count_error"],
            "seconds": time.perf_counter() - started}


def trackpy_points(image: np.ndarray, diameter: float, dark: bool, minmass: float) -> np.ndarray:
    import trackpy

    size = int(math.ceil(diameter)) | 1
    found = trackpy.locate(image, size, invert=dark, minmass=minmass, engine="python")
    return found[["y", "x"]].to_numpy()


def trackpy_scores(folder: Path, diameter: float, dark: bool, distance: float, minmass: float) -> dict:
    matched, errors = [], []
    for image_path, mask_path in pair_folder(folder):
        mask = read_mask(mask_path) > 0
        truth = Truth.of(mask, label(mask)).components
        points = trackpy_points(read_image(image_path).astype(float), diameter, dark, minmass)
        matched.append(match_points(truth, points, distance))
        errors.append(abs(len(points) - len(truth)) / len(truth) if len(truth) else 0.0)
    total = sum(matched[1:], matched[0])
    return {"f1": total.f1, "count": float(np.median(errors))}


def best_minmass(folder: Path, diameter: float, distance: float) -> float:
    """trackpy's minimum mass with the best F1 on the native tiles (dark beads)."""
    candidates = [0, 50, 100, 200, 400, 800, 1600, 3200]
    scored = {m: trackpy_scores(folder, diameter, True, distance, m)["f1"] for m in candidates}
    return max(scored, key=scored.get)


def estimates(folder: Path) -> tuple[list[float | None], dict[str, float | None], float]:
    """Each frame's estimate, each capture's pooled one, and the mean seconds per frame."""
    frames, per_capture, seconds = [], {}, []
    paths = [image for image, _ in pair_folder(folder)]
    for group in sorted(set(group_names([p.stem for p in paths], CAPTURE))):
        chosen = [p for p in paths if p.stem.startswith(group)]
        found = []
        for path in chosen:
            image = read_image(path)
            started = time.perf_counter()
            found.append(estimate_diameter(image))
            seconds.append(time.perf_counter() - started)
        frames += [e.diameter for e in found]
        per_capture[group] = pooled(found).diameter
    return frames, per_capture, float(np.mean(seconds))


def costs(ckpt: str, frames: int = 6) -> None:
    """What sizing adds per frame of the lab's camera (1440x1080, 16-bit), beside the network: the estimate, and
    the resizing in and out at a zoom of 0.5 and 2, against the network's pass over the frame as it is."""
    import torch
    import torch.nn.functional as F

    from beadseg.data.synthetic import render_beads
    from beadseg.inference.predictor import load_predictor

    predictor = load_predictor(ckpt)
    images = [render_beads(np.random.default_rng(i), 1440, 400, "brightfield", bit_depth=16)[0][:1080]
              for i in range(frames)]

    def seconds(work) -> float:
        times = []
        for image in images:
            started = time.perf_counter()
            work(image)
            times.append(time.perf_counter() - started)
        return float(np.median(times))

    def resize(image: np.ndarray, zoom: float) -> None:
        tiles = torch.from_numpy(image.astype(np.float32))[None, None]
        mode = {"mode": "bicubic"} if zoom > 1 else {"mode": "bilinear", "antialias": True}
        inside = F.interpolate(tiles, scale_factor=zoom, align_corners=False, **mode)
        maps = torch.cat([inside, inside], 1)  # the two maps coming back
        F.interpolate(maps, size=image.shape, mode="bilinear", align_corners=False)

    network = seconds(lambda image: predictor.predict(image))
    rows = [("the network, frame as it is (reference)", network),
            ("estimate_diameter", seconds(estimate_diameter)),
            ("resize in and out, zoom 0.5", seconds(lambda image: resize(image, 0.5))),
            ("resize in and out, zoom 2", seconds(lambda image: resize(image, 2.0)))]
    print(f"\n| per 1440x1080 16-bit frame ({torch.get_num_threads()} threads, median of {frames}) | s | ratio to the "
          "network |\n|---|---|---|")
    for name, value in rows:
        print(f"| {name} | {value:.3f} | {value / network:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", required=True, help="the model to score (a checkpoint or a training run)")
    parser.add_argument("--costs-only", action="store_true", help="only the cost per frame of the estimate and resizing")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--factors", type=float, nargs="+", default=[0.5, 1, 2, 3, 4])
    parser.add_argument("--work", type=Path, default=None, help="where the variants go (default: a temporary folder)")
    parser.add_argument("--no-trackpy", action="store_true")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    if args.costs_only:
        costs(args.ckpt)
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="beadseg-magnification-"))
    pairs = [(image.stem, read_image(image), read_mask(mask)) for image, mask in pair_folder(args.data)]
    pairs = [pair for pair, group in zip(pairs, group_names([p[0] for p in pairs], SPARSE)) if group != pair[0]]
    native = native_diameter([mask for _, _, mask in pairs])
    print(f"{len(pairs)} sparse tiles; beads of {native:.2f} px (median equivalent diameter of the masks)")
    variants = [(f, False) for f in args.factors] + [(1.0, True)]
    minmass = None
    print("| variant | true diameter px | estimated: frames within 10 % / median error / captures | beadseg auto "
          "F1 / count err | beadseg given | beadseg model's size (before) | trackpy given | estimate s/frame |")
    print("|---|---|---|---|---|---|---|---|")
    for factor, invert in variants:
        name = ("inverted" if invert else "") + (f"x{factor:g}" if not invert or factor != 1 else "")
        folder = work / name
        if not folder.exists():
            write_variant(pairs, factor, invert, folder)
        true = native * factor
        distance = round(2 / 3 * true, 2)
        frames, captures, seconds = estimates(folder)
        errors = np.array([(d / true - 1) if d else np.nan for d in frames])
        within = int(np.sum(np.abs(errors) <= 0.1))
        capture_errors = ", ".join(f"{(d / true - 1):+.0%}" if d else "none" for d in captures.values())
        results = {mode: beadseg_scores(folder, args.ckpt, mode, distance, work / "eval" / f"{name}_{mode}")
                   for mode in ("auto", f"{true:.2f}", "model")}
        tp = ""
        if not args.no_trackpy:
            if minmass is None:
                native_folder = work / "x1"
                if not native_folder.exists():
                    write_variant(pairs, 1.0, False, native_folder)
                minmass = best_minmass(native_folder, native, round(2 / 3 * native, 2))
            scored = trackpy_scores(folder, true, not invert, distance, minmass * factor**2)
            tp = f"{scored['f1']:.3f} / {scored['count']:.1%}"
        auto, given, model = (results[m] for m in ("auto", f"{true:.2f}", "model"))
        print(f"| {name} | {true:.1f} | {within}/{len(frames)} / {np.nanmedian(errors):+.1%} / {capture_errors} | "
              f"{auto['f1']:.3f} / {auto['count']:.1%} | {given['f1']:.3f} / {given['count']:.1%} | "
              f"{model['f1']:.3f} / {model['count']:.1%} | {tp} | {seconds:.3f} |", flush=True)
    if minmass is not None:
        print(f"trackpy minmass {minmass:g} at x1 (best F1 on the native tiles), times the factor squared")
    print(f"variants in {work}")
    costs(args.ckpt)


if __name__ == "__main__":
    main()
