"""Frame quality control: flag empty, noisy, overexposed and out-of-focus frames (nothing is deleted)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from rich.progress import track
from scipy import ndimage as ndi

from beadseg.beads.classical import detect_beads
from beadseg.data.io import BeadDataError, bit_depth, list_images, read_image
from beadseg.data.readers import DEFAULT_PLANE, PlaneChoice
from beadseg.tables import write_csv


@dataclass
class QCThresholds:
    """When a frame is flagged (the values and their meaning: ``qc`` in conf/qc.yaml)."""

    min_beads: int
    min_snr: float
    max_noise_ratio: float
    max_saturated: float
    min_focus_ratio: float


def measure_frame(path: Path, detect: Callable = detect_beads, plane: PlaneChoice = DEFAULT_PLANE) -> dict:
    """One frame's QC measurements (no flags yet: focus is judged against the whole set)."""
    try:
        image = read_image(path, plane)
    except BeadDataError as error:
        return {"frame": str(path), "error": str(error)}
    depth = bit_depth(image)
    full_scale = float(np.iinfo(image.dtype).max) if image.dtype.kind in "ui" else float(image.max())
    pixels = image.astype(np.float32)
    detections = detect(pixels)
    residual = pixels - ndi.gaussian_filter(pixels, 1.0)
    noise = 1.4826 * float(np.median(np.abs(residual - np.median(residual))))
    # sharpness: how steep the beads' edges are, relative to the image's own intensity spread
    smooth = ndi.gaussian_filter(pixels, 0.7)
    spread = float(np.percentile(smooth, 99.9) - np.percentile(smooth, 0.1)) or 1.0
    edges = np.abs(ndi.laplace(smooth))
    sharpness = float(np.percentile(edges, 99.9)) / spread
    return {
        "frame": str(path),
        "bit_depth": depth,
        "detections": detections.count,
        "heights": detections.heights,
        "snr": round(float(np.median(detections.heights)), 2) if detections.count else 0.0,
        "noise": round(noise, 4),
        "saturated_fraction": round(float(np.mean(image >= full_scale)), 6) if image.dtype.kind in "ui" else 0.0,
        "sharpness": round(sharpness, 5),
        "error": "",
    }


def _measure(args: tuple[Path, Callable, PlaneChoice]) -> dict:
    return measure_frame(*args)


def flag(rows: list[dict], qc: QCThresholds) -> list[dict]:
    """Add ``beads`` (clear ones), ``flags`` and ``keep`` to every measured row; noise and focus are judged
    against the set's median, as frames of one experiment share a camera and optics."""
    measured = [r for r in rows if not r["error"]]
    for row in measured:
        row["beads"] = int(np.sum(row.pop("heights") >= qc.min_snr))
    sharp = [r["sharpness"] for r in measured if r["beads"] >= qc.min_beads]
    median_sharpness = float(np.median(sharp)) if sharp else 0.0
    median_noise = float(np.median([r["noise"] for r in measured])) if measured else 0.0
    for row in rows:
        if row["error"]:
            row.update(flags="unreadable", keep="no")
            continue
        flags = []
        if median_noise > 0 and row["noise"] > qc.max_noise_ratio * median_noise:
            flags.append("noisy")
        elif row["beads"] < qc.min_beads:
            flags.append("empty")
        if row["saturated_fraction"] > qc.max_saturated:
            flags.append("overexposed")
        if row["beads"] >= qc.min_beads and row["sharpness"] < qc.min_focus_ratio * median_sharpness:
            flags.append("out_of_focus")
        row.update(flags=";".join(flags), keep="no" if flags else "yes")
    return rows


def run_qc(root: Path, out: Path, qc: QCThresholds, detect: Callable, *, workers: int = 0, symlinks: bool = False,
           plane: PlaneChoice = DEFAULT_PLANE) -> dict:
    """Measure every frame (in parallel, streamed; a microscope file's plane as ``plane`` picks it), flag, and write
    ``qc.csv`` and ``kept.txt``."""
    if not root.is_dir():
        raise BeadDataError(f"data.root={root} is not a folder")
    if (root / "images").is_dir():  # a training folder: its frames, never its masks
        root = root / "images"
    files = list_images(root, recursive=True, unique_stems=False)
    workers = workers or max(1, (os.cpu_count() or 1))
    jobs = [(path, detect, plane) for path in files]
    if workers > 1:
        with Pool(workers) as pool:
            rows = list(track(pool.imap(_measure, jobs, chunksize=8), total=len(jobs), description="checking frames"))
    else:
        rows = [_measure(job) for job in track(jobs, description="checking frames")]
    rows = flag(rows, qc)
    out.mkdir(parents=True, exist_ok=True)
    columns = ["frame", "bit_depth", "beads", "detections", "snr", "noise", "saturated_fraction", "sharpness", "flags",
               "keep", "error"]
    write_csv(rows, out / "qc.csv", columns)
    kept = [row["frame"] for row in rows if row["keep"] == "yes"]
    (out / "kept.txt").write_text("".join(f"{frame}\n" for frame in kept))
    if symlinks:
        link_dir = out / "kept"
        link_dir.mkdir(exist_ok=True)
        for frame in kept:
            source = Path(frame).resolve()
            (link_dir / source.relative_to(root.resolve()).as_posix().replace("/", "__")).symlink_to(source)
    counts: dict[str, int] = {}
    for row in rows:
        for name in filter(None, row["flags"].split(";")):
            counts[name] = counts.get(name, 0) + 1
    return {"frames": len(rows), "kept": len(kept), "flags": counts, "out": out}
