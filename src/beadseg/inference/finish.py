"""What happens to a frame after the network: its beads, its files and its record line, in the main process or in
a pool of worker processes beside the network (as nnU-Net v2 runs its export pool while the GPU works on the next
case), with a bounded number of frames in flight so that memory stays flat.

Only light modules are imported here (no torch): a spawned worker starts in about a second.
"""

from __future__ import annotations

import multiprocessing
import shutil
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np

from beadseg.data.reader import usable_cpus
from beadseg.inference import outputs, rois
from beadseg.inference.postprocess import PostProcess

OBJECT_COLUMNS = ["image", "bead_id", "centroid_y", "centroid_x", "area", "equivalent_diameter", "circularity",
                  "mean_intensity", "mean_probability", "contrast_snr", "area_um2", "equivalent_diameter_um"]
DEBRIS_COLUMNS = ["image", "reason", "centroid_y", "centroid_x", "area", "equivalent_diameter", "circularity",
                  "mean_probability", "contrast_snr"]
COUNT_COLUMNS = ["image", "count", "debris", "mean_diameter", "coverage", "mean_uncertainty", "flagged", "pixel_size_um",
                 "mean_diameter_um", "beads_per_mm2", "path"]


class WorkerPool:
    """Calls run in ``workers`` spawned processes (safe beside CUDA and the loader's workers), at most two per
    worker in flight: ``submit`` waits for the oldest once that many are queued. ``workers=0`` runs each call at
    once in this process. Results reach ``on_result`` in the order the calls were submitted."""

    def __init__(self, workers: int, on_result: Callable) -> None:
        self.on_result, self.limit = on_result, 2 * workers
        self.pending: deque[Future] = deque()
        self.executor = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) if workers else None

    def submit(self, function: Callable, *args) -> None:
        if self.executor is None:
            self.on_result(function(*args))
            return
        self.pending.append(self.executor.submit(function, *args))
        while len(self.pending) > self.limit:
            self.on_result(self.pending.popleft().result())

    def put(self, result) -> None:
        """A result already at hand, handed on in its turn."""
        if self.executor is None:
            self.on_result(result)
            return
        done: Future = Future()
        done.set_result(result)
        self.pending.append(done)

    def drain(self) -> None:
        """Wait for every call in flight (and hand its result on)."""
        while self.pending:
            self.on_result(self.pending.popleft().result())

    def close(self) -> None:
        """Stop the workers: calls not started yet are dropped, results not handed on are forgotten (after
        :meth:`drain` there are none; after an error, ``resume=true`` redoes those frames)."""
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)
            self.executor = None
        self.pending.clear()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *error) -> None:
        if error[0] is None:
            self.drain()
        self.close()


def finishing_workers(post_workers: int | str, spare_cores: int, frames: int) -> int:
    """``post_workers``, where ``auto`` is the ``spare_cores`` the caller leaves, never more than there are frames
    after the first (a single frame is finished at once, without starting a process)."""
    if post_workers != "auto":
        return int(post_workers)
    return min(max(spare_cores, 0), max(frames - 1, 0))


def prediction_spare_cores(read_ahead: int, network_on_cpu: bool) -> int:
    """Cores beside a prediction's network: a network on the CPU already uses every core (torch's threads), so
    none and each frame is finished between two forward passes; beside a GPU (or the single-threaded classical
    detector) those the main process and the readers leave, at least one."""
    return 0 if network_on_cpu else max(1, usable_cpus() - 1 - read_ahead)


def network_on_cpu(predictor) -> bool:
    """Whether the predictor runs a network on the CPU (the classical detector has none)."""
    return predictor.net is not None and next(predictor.net.parameters()).device.type == "cpu"


def physical_sizes(row: dict, pixel_size_um: float | None) -> dict:
    """A bead's area (µm²) and equivalent diameter (µm), or blanks when the pixel size is unknown."""
    if not pixel_size_um:
        return {"area_um2": "", "equivalent_diameter_um": ""}
    return {"area_um2": round(row["area"] * pixel_size_um**2, 4),
            "equivalent_diameter_um": round(row["equivalent_diameter"] * pixel_size_um, 4)}


def wants_overlay(index: int, every: int) -> bool:
    """``overlays``: every ``every``-th frame of the input (0 or false: none) gets an overlay PNG."""
    return bool(every) and index % int(every) == 0


def finish_frame(result: dict, out: Path, options: dict, post: PostProcess | None, threshold: float) -> dict:
    """A frame's beads (unless the network's step already found them: ``labels``), its files written atomically,
    and its record line (counts, objects, debris)."""
    name, image, size = result["name"], result["image"], result["pixel_size_um"]
    if "labels" not in result:
        result.update(zip(("labels", "objects", "debris"),
                          post.instances(result["probability"], image, threshold, found=result.get("found"))))
    labels = result["labels"]
    objects = [{**row, **physical_sizes(row, size)} for row in result["objects"]]
    suffix = outputs.LABEL_FORMATS[options["label_format"]]
    compression = options["tiff_compression"]
    outputs.write_mask(labels, out / "masks" / f"{name}{suffix}", size, compression)
    outputs.write_labels(labels, out / "instances" / f"{name}{suffix}", len(objects), size, compression)
    if options["rois"]:
        (out / "rois").mkdir(exist_ok=True)
        rois.write_rois(options["rois"], labels, objects, out / "rois", name)
    if wants_overlay(result["index"], options["overlays"]):
        outputs.overlay_png(image, labels, out / "overlays" / f"{name}.png", options["overlay_max_side"], len(objects),
                            options["overlay_compression"])
    if options["save_probability"]:
        maps = result["probability"]
        for folder, values in zip(("probability", "centres"), maps if maps.ndim == 3 else [maps]):
            (out / folder).mkdir(exist_ok=True)
            outputs.write_map(values, out / folder / f"{name}.tif")
    if result["uncertainty"] is not None and options["save_uncertainty"]:
        (out / "uncertainty").mkdir(exist_ok=True)
        outputs.write_map(result["uncertainty"], out / "uncertainty" / f"{name}.tif")
    mean_uncertainty, coverage = outputs.masked_mean(result["uncertainty"], labels)
    diameters = [row["equivalent_diameter"] for row in objects]
    counts = {
        "image": name,
        "count": len(objects),
        "debris": len(result["debris"]),
        "mean_diameter": round(float(np.mean(diameters)), 3) if objects else 0.0,
        "coverage": round(coverage, 5),
        "mean_uncertainty": "" if mean_uncertainty is None else round(mean_uncertainty, 4),
        "flagged": "yes" if mean_uncertainty is not None and mean_uncertainty > options["flag_uncertainty"] else "no",
        "pixel_size_um": size or "",
        "mean_diameter_um": round(float(np.mean([row["equivalent_diameter_um"] for row in objects])), 3)
        if objects and size else "",
        "beads_per_mm2": round(len(objects) / (labels.size * size**2 * 1e-6), 2) if size else "",
        "path": result["path"],
    }
    debris = [{key: row[key] for key in DEBRIS_COLUMNS[1:]} for row in result["debris"]] if options["save_debris"] else []
    if result.get("scratch"):
        del result["probability"], result["uncertainty"], result["labels"]
        shutil.rmtree(result["scratch"], ignore_errors=True)
    return {"image": name, "counts": counts, "objects": objects, "debris": debris}
