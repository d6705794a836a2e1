"""The prediction task: whole images of any size in, masks, instances, overlays and count tables out."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np
from rich.progress import Progress

from beadseg.data.io import IMAGE_SUFFIXES, BeadDataError, open_image
from beadseg.data.split import group_names
from beadseg.inference import outputs
from beadseg.inference.postprocess import PostProcess
from beadseg.inference.predictor import load_predictor
from beadseg.inference.tiling import tile_plan
from beadseg.tables import write_csv

LARGE_IMAGE = 4096 * 4096  # above this many pixels the probability map lives in a memory map


def list_inputs(target: str | Path) -> list[Path]:
    target = Path(target)
    if target.is_dir():
        files = sorted(p for p in target.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise BeadDataError(f"input={target} holds no image ({', '.join(IMAGE_SUFFIXES)})")
        return files
    return [target]  # a missing file is reported by name when it is read


def group_counts(counts: list[dict], pattern: str, out: Path) -> Path:
    """Counts per group (the regex's first group, e.g. the dilution; the name itself where it does not match)
    as a table and a log-log plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[str, list[int]] = {}
    for row, key in zip(counts, group_names([row["image"] for row in counts], pattern)):
        groups.setdefault(key, []).append(row["count"])
    rows = [{"group": key, "images": len(v), "total_count": int(np.sum(v)), "mean_count": round(float(np.mean(v)), 2),
             "std_count": round(float(np.std(v)), 2)} for key, v in sorted(groups.items())]
    write_csv(rows, out / "group_counts.csv", list(rows[0]))
    numeric = [(float(r["group"]), r["mean_count"], r["std_count"]) for r in rows if re.fullmatch(r"[\d.]+", r["group"])]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    if numeric:
        x, y, e = map(np.asarray, zip(*sorted(numeric)))
        ax.errorbar(x, np.maximum(y, 0.5), yerr=e, marker="o", capsize=3)
        ax.set(xscale="log", yscale="log", xlabel="group (from the file name)", ylabel="beads per image")
    else:
        ax.bar([r["group"] for r in rows], [r["mean_count"] for r in rows], yerr=[r["std_count"] for r in rows])
        ax.set(ylabel="beads per image")
    ax.set_title("Bead count per group")
    fig.tight_layout()
    fig.savefig(out / "group_counts.png", dpi=110)
    plt.close(fig)
    return out / "group_counts.csv"


def predict(cfg) -> dict:
    """Run the whole prediction; returns counts of images done and failed, and the output folder."""
    out = Path(cfg.output)
    if out.is_dir() and any(p.name not in (".hydra", "predict.log") for p in out.iterdir()):
        raise FileExistsError(f"output={out} already holds results; beadseg never overwrites them: choose another")
    predictor = load_predictor(cfg.get("model"), cfg.ckpt, dict(cfg.detector), dict(cfg.inference))
    post = PostProcess(**cfg.postprocess)
    files = list_inputs(cfg.input)
    for sub in ("masks", "instances", "overlays"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    objects, counts, failures = [], [], []
    with Progress() as progress:
        images_task = progress.add_task("images", total=len(files))
        tiles_task = progress.add_task("tiles", total=0)
        for path in files:
            try:
                image = open_image(path)
            except (BeadDataError, FileNotFoundError, OSError) as error:
                failures.append({"image": str(path), "error": str(error)})
                progress.console.print(f"[red]skipped {path}: {error}")
                progress.advance(images_task)
                continue
            grid = [len(tile_plan(side, cfg.inference.tile, cfg.inference.overlap)[1]) for side in image.shape]
            progress.reset(tiles_task, total=grid[0] * grid[1])
            with tempfile.TemporaryDirectory(dir=out) as scratch:
                holder = None
                if image.size > LARGE_IMAGE:
                    holder = np.lib.format.open_memmap(Path(scratch) / "p.npy", "w+", np.float32, image.shape)
                probability, uncertainty = predictor.predict(
                    image, probability_out=holder, on_tile_row=lambda n: progress.advance(tiles_task, n))
                mask, labels = post(probability, predictor.threshold)
                name = path.stem
                outputs.write_mask(mask, out / "masks" / f"{name}.tif")
                outputs.write_labels(labels, out / "instances" / f"{name}.tif")
                outputs.overlay_png(image, labels, out / "overlays" / f"{name}.png", cfg.overlay_max_side)
                if cfg.save_probability:
                    (out / "probability").mkdir(exist_ok=True)
                    outputs.write_map(probability, out / "probability" / f"{name}.tif")
                if uncertainty is not None and cfg.save_uncertainty:
                    (out / "uncertainty").mkdir(exist_ok=True)
                    outputs.write_map(uncertainty, out / "uncertainty" / f"{name}.tif")
                rows = outputs.object_rows(name, labels, image, probability)
                mean_uncertainty = float(np.mean(uncertainty[mask])) if uncertainty is not None and mask.any() else None
                del probability, holder
            objects += rows
            counts.append({
                "image": name,
                "count": len(rows),
                "mean_diameter": round(float(np.mean([r["equivalent_diameter"] for r in rows])), 3) if rows else 0.0,
                "coverage": round(float(mask.mean()), 5),
                "mean_uncertainty": "" if mean_uncertainty is None else round(mean_uncertainty, 4),
                "flagged": "yes" if mean_uncertainty is not None and mean_uncertainty > cfg.flag_uncertainty else "no",
            })
            progress.advance(images_task)
    write_csv(objects, out / "objects.csv", ["image", "bead_id", "centroid_y", "centroid_x", "area",
                                             "equivalent_diameter", "circularity", "mean_intensity", "mean_probability"])
    write_csv(counts, out / "counts.csv", ["image", "count", "mean_diameter", "coverage", "mean_uncertainty", "flagged"])
    if failures:
        write_csv(failures, out / "errors.csv", ["image", "error"])
    if cfg.get("group_regex") and counts:
        group_counts(counts, cfg.group_regex, out)
    return {"output": out, "done": len(counts), "failed": failures, "beads": len(objects)}
