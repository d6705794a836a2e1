"""What happens to a frame after the network: its beads, its files and its record line (in a worker of
:mod:`~beadseg.workers.pool`, or in the main process for a huge frame, chunk by chunk over memory maps).

Only light modules are imported here (no torch): a spawned worker starts in about a second.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from beadseg.beads.postprocess import Instances, PostProcess
from beadseg.formats import images
from beadseg.inference.frame import Frame
from beadseg.inference.writers import DEBRIS_COLUMNS, WRITERS, OutputOptions


def physical_sizes(row: dict, pixel_size_um: float | None) -> dict:
    """A bead's area (µm²) and equivalent diameter (µm), or blanks when the pixel size is unknown."""
    if not pixel_size_um:
        return {"area_um2": "", "equivalent_diameter_um": ""}
    return {"area_um2": round(row["area"] * pixel_size_um**2, 4),
            "equivalent_diameter_um": round(row["equivalent_diameter"] * pixel_size_um, 4)}


def find_beads(frame: Frame, post: PostProcess) -> Instances:
    """A frame's beads and debris from its maps (and what the device found in them), with the lengths of a frame
    resized for the network scaled to its own grid; a huge frame's labels go to a memory map beside its maps, chunk
    by chunk."""
    if frame.maps is None:
        raise ValueError(f"{frame.name}: no maps to find beads in (the network's step did not run on it)")
    labels_out = None
    if frame.scratch is not None:
        labels_out = np.lib.format.open_memmap(frame.scratch / "labels.npy", "w+", np.uint32, frame.maps.shape[-2:])
    return post.at_scale(1 / frame.zoom).instances(frame.maps, frame.image, labels_out=labels_out, found=frame.found,
                                                   noise=frame.noise)


def frame_counts(frame: Frame, beads: Instances, options: OutputOptions) -> dict:
    """A frame's row of ``counts.csv``."""
    size, objects = frame.pixel_size_um, beads.objects
    mean_uncertainty, coverage = images.masked_mean(frame.uncertainty, beads.labels)
    diameters = [row["equivalent_diameter"] for row in objects]
    return {
        "image": frame.name,
        "count": beads.counted,  # by the edge rule
        "count_all": len(objects),
        "at_edge": sum(bool(row["at_edge"]) for row in objects),
        "debris": sum(row["reason"] != "particle" for row in beads.debris),
        "particles": sum(row["reason"] == "particle" for row in beads.debris),
        "edge_rule": options.edge_rule,
        "mean_diameter": round(float(np.mean(diameters)), 3) if objects else 0.0,
        "bead_diameter": "" if frame.size is None or frame.size.diameter is None else round(frame.size.diameter, 2),
        "bead_diameter_source": "" if frame.size is None else frame.size.source,
        "network_zoom": round(frame.zoom, 4),
        "coverage": round(coverage, 5),
        "mean_uncertainty": "" if mean_uncertainty is None else round(mean_uncertainty, 4),
        "flagged": "yes" if mean_uncertainty is not None and mean_uncertainty > options.flag_uncertainty else "no",
        "pixel_size_um": size or "",
        "mean_diameter_um": round(float(np.mean([row["equivalent_diameter_um"] for row in objects])), 3)
        if objects and size else "",
        "beads_per_mm2": round(beads.counted / (beads.labels.size * size**2 * 1e-6), 2) if size else "",
        "path": frame.path,
    }


def write_frame(frame: Frame, beads: Instances, out: Path, options: OutputOptions) -> dict:
    """A frame's files, each writer's (atomically), and its record line (counts, objects, debris)."""
    for row in beads.objects:  # in place: a copy of a huge frame's table would double it in memory
        row.update(physical_sizes(row, frame.pixel_size_um))
    for writer in WRITERS.values():
        writer.write(frame, beads, out, options)
    debris = [{key: row[key] for key in DEBRIS_COLUMNS[1:]} for row in beads.debris] if options.save_debris else []
    record = {"image": frame.name, "counts": frame_counts(frame, beads, options), "objects": beads.objects,
              "debris": debris}
    if frame.scratch is not None:  # a huge frame: its memory maps let go, their folder removed
        frame.maps = frame.uncertainty = frame.image = None
        shutil.rmtree(frame.scratch, ignore_errors=True)
    return record


def finish_frame(frame: Frame, out: Path, options: OutputOptions, post: PostProcess) -> dict:
    """What happens to every frame after the network: its beads found (:func:`find_beads`), its files written and
    its record made (:func:`write_frame`). An OSError on the way (a full disk, a frame too large to map, a
    name the file system refuses) fails this frame only: its record says why, as for an unreadable frame."""
    try:
        return write_frame(frame, find_beads(frame, post), out, options)
    except OSError as error:
        return {"image": frame.name, "path": frame.path, "error": f"its outputs could not be written: {error}"}
