"""What happens to a frame after the network: its beads, its files and its record line, in the main process or in
a pool of worker processes beside the network (as nnU-Net v2 runs its export pool while the GPU works on the next
case), with a bounded number of frames in flight so that memory stays flat.

Only light modules are imported here (no torch): a spawned worker starts in about a second.
"""

from __future__ import annotations

import ctypes
import math
import multiprocessing
import shutil
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

import numpy as np

from beadseg.data.reader import usable_cpus
from beadseg.inference import outputs, rois
from beadseg.inference.handover import Blocks, call_placed
from beadseg.inference.postprocess import PostProcess

OBJECT_COLUMNS = ["image", "bead_id", "centroid_y", "centroid_x", "area", "equivalent_diameter", "circularity",
                  "mean_intensity", "mean_probability", "contrast_snr", "object_id", "object_beads", "at_edge",
                  "counted", "area_um2", "equivalent_diameter_um"]
DEBRIS_COLUMNS = ["image", "reason", "centroid_y", "centroid_x", "area", "equivalent_diameter", "circularity",
                  "mean_probability", "contrast_snr"]
COUNT_COLUMNS = ["image", "count", "count_all", "at_edge", "debris", "particles", "edge_rule", "mean_diameter",
                 "coverage", "mean_uncertainty", "flagged", "pixel_size_um", "mean_diameter_um", "beads_per_mm2", "path"]


def keep_freed_memory() -> None:
    """Let this (finishing) process reuse the memory it frees for the next frame's arrays instead of taking fresh
    pages from the kernel each time: glibc's malloc maps large arrays anew and hands freed heap back, and touching
    the new pages cost about a sixth of a frame's post-processing (measured). Other C libraries: nothing changes."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(-3, 32 * 2**20)  # M_MMAP_THRESHOLD: arrays up to 32 MiB from the heap (glibc's maximum)
    libc.mallopt(-1, 512 * 2**20)  # M_TRIM_THRESHOLD: keep up to 512 MiB of freed heap for reuse


class WorkerPool:
    """Calls run in ``workers`` spawned processes (safe beside CUDA and the loader's workers), at most two per
    worker in flight: ``submit`` waits for the oldest once that many are queued; their large arrays travel in
    shared memory (:mod:`~beadseg.inference.handover`). ``workers=0`` runs each call at once in this process.
    Results reach ``on_result`` in the order the calls were submitted."""

    def __init__(self, workers: int, on_result: Callable) -> None:
        self.on_result, self.limit = on_result, 2 * workers
        self.pending: deque[tuple[Future, int | None]] = deque()
        self.blocks = Blocks(self.limit + 1)
        self.executor = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=keep_freed_memory) if workers else None

    def submit(self, function: Callable, *args) -> None:
        if self.executor is None:
            self.on_result(function(*args))
            return
        block, placed = self.blocks.place(args)
        self.pending.append((self.executor.submit(call_placed, function, placed), block))
        while len(self.pending) > self.limit:
            self._hand_on()

    def _hand_on(self) -> None:
        """The oldest call's result to ``on_result``, once it is done; its block serves the next call."""
        future, block = self.pending.popleft()
        try:
            result = future.result()
        finally:
            self.blocks.release(block)
        self.on_result(result)

    def put(self, result) -> None:
        """A result already at hand, handed on in its turn."""
        if self.executor is None:
            self.on_result(result)
            return
        done: Future = Future()
        done.set_result(result)
        self.pending.append((done, None))

    def drain(self) -> None:
        """Wait for every call in flight (and hand its result on)."""
        while self.pending:
            self._hand_on()

    def close(self) -> None:
        """Stop the workers: calls not started yet are dropped, results not handed on are forgotten (after
        :meth:`drain` there are none; after an error, ``resume=true`` redoes those frames)."""
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)
            self.executor = None
        self.pending.clear()
        self.blocks.close()

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


def overlay_every(setting: int | bool | str, frames: int, most: int = 200) -> int:
    """``overlays``: an overlay for every n-th frame of the input (``auto``: every frame of up to ``most``, else
    ``most`` spread evenly, so that 40,000 frames do not write 60 GB of pictures; 0 or false: none)."""
    if setting == "auto":
        return max(1, math.ceil(frames / most))
    if isinstance(setting, str) or int(setting) < 0:
        raise ValueError(f"overlays={setting}: give auto, a number n (an overlay for every n-th frame) or false")
    return int(setting)


def wants_overlay(index: int, every: int) -> bool:
    """Whether the input's ``index``-th frame gets an overlay (``every`` from :func:`overlay_every`; 0: none)."""
    return bool(every) and index % every == 0


def find_beads(result: dict, post: PostProcess, threshold: float) -> None:
    """A frame's ``labels``, ``objects`` and ``debris`` from its maps (and what the device found in them)."""
    result.update(zip(("labels", "objects", "debris"), post.instances(result["probability"], result["image"], threshold,
                                                                     found=result.get("found"))))


def finish_frame(result: dict, out: Path, options: dict, post: PostProcess | None, threshold: float) -> dict:
    """A frame's beads (unless the network's step already found them: ``labels``), its files written atomically,
    and its record line (counts, objects, debris)."""
    name, image, size = result["name"], result["image"], result["pixel_size_um"]
    if "labels" not in result:
        find_beads(result, post, threshold)
    labels = result["labels"]
    objects = result["objects"]
    for row in objects:  # in place: a copy of a huge frame's table would double it in memory
        row.update(physical_sizes(row, size))
    suffix = outputs.LABEL_FORMATS[options["label_format"]]
    compression = options["tiff_compression"]
    outputs.write_mask(labels, out / "masks" / f"{name}{suffix}", size, compression)
    outputs.write_labels(labels, out / "instances" / f"{name}{suffix}", len(objects), size, compression)
    if options["rois"]:
        (out / "rois").mkdir(exist_ok=True)
        rois.write_rois(options["rois"], labels, objects, out / "rois", name)
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
    counted = sum(bool(row["counted"]) for row in objects)  # by the edge rule
    counts = {
        "image": name,
        "count": counted,
        "count_all": len(objects),
        "at_edge": sum(bool(row["at_edge"]) for row in objects),
        "debris": sum(row["reason"] != "particle" for row in result["debris"]),
        "particles": sum(row["reason"] == "particle" for row in result["debris"]),
        "edge_rule": options["edge_rule"],
        "mean_diameter": round(float(np.mean(diameters)), 3) if objects else 0.0,
        "coverage": round(coverage, 5),
        "mean_uncertainty": "" if mean_uncertainty is None else round(mean_uncertainty, 4),
        "flagged": "yes" if mean_uncertainty is not None and mean_uncertainty > options["flag_uncertainty"] else "no",
        "pixel_size_um": size or "",
        "mean_diameter_um": round(float(np.mean([row["equivalent_diameter_um"] for row in objects])), 3)
        if objects and size else "",
        "beads_per_mm2": round(counted / (labels.size * size**2 * 1e-6), 2) if size else "",  # unbiased: edge rule
        "path": result["path"],
    }
    if wants_overlay(result["index"], options["overlays"]):
        outputs.overlay_png(image, labels, out / "overlays" / f"{name}.png", options["overlay_max_side"],
                            counts["count"], options["overlay_compression"], rejected=result["debris"])
    debris = [{key: row[key] for key in DEBRIS_COLUMNS[1:]} for row in result["debris"]] if options["save_debris"] else []
    if result.get("scratch"):
        del result["probability"], result["uncertainty"], result["labels"]
        shutil.rmtree(result["scratch"], ignore_errors=True)
    return {"image": name, "counts": counts, "objects": objects, "debris": debris}
