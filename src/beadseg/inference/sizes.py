"""Each frame's bead size for the network: the ``image.bead_diameter`` settings bound to a model, one estimate per
capture where captures are named, and the run's account of the sizes it used."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np

from beadseg.beads.size import BeadSizeError, BeadSizing, FrameSize, SizeEstimate, estimate_diameter, pooled
from beadseg.data.io import BeadDataError, image_name, open_image
from beadseg.data.readers import DEFAULT_PLANE, MicroscopeError, PlaneChoice, pixel_size_um
from beadseg.data.split import group_names

log = logging.getLogger(__name__)

FRAMES_PER_CAPTURE = 4  # frames of a capture whose estimates are pooled into the capture's (spread over it)


def check_sizing(sizing: BeadSizing, files: list[Path], plane: PlaneChoice) -> None:
    """Before any work, on the first frame (read as ``plane`` says): a size in µm needs a pixel size (in the file's
    metadata, or given), and a given size must fit the frame.

    Raises
    ------
    BeadSizeError
        Naming ``image.bead_diameter_um`` or ``image.bead_diameter``.
    """
    if not files or (sizing.diameter_um is None and isinstance(sizing.diameter, str)):
        return
    try:
        pixel_size = pixel_size_um(files[0], plane)
        frame = open_image(files[0], plane)
    except (BeadDataError, MicroscopeError, OSError):
        return  # the frame's own turn names what is wrong with it
    if sizing.diameter_um is not None and not pixel_size:
        raise BeadSizeError(f"image.bead_diameter_um={sizing.diameter_um:g} needs a pixel size: {files[0]} records "
                            "none; give image.pixel_size_um=MICRONS (or the size in px, image.bead_diameter)")
    sizing.for_frame(frame, pixel_size)


def capture_estimates(files: list[Path], group_regex: str | None, sizing: BeadSizing,
                      plane: PlaneChoice = DEFAULT_PLANE, per_capture: int = FRAMES_PER_CAPTURE,
                      ) -> dict[str, SizeEstimate]:
    """With ``image.bead_diameter=auto`` and named captures (``group_regex``): one estimate per capture, pooled from
    up to ``per_capture`` of its frames spread over it, for every frame of it (said once per capture in the log);
    otherwise none (each frame is estimated on its own).

    Examples
    --------
    >>> capture_estimates([], r"^(\\d+)x_", BeadSizing())
    {}
    """
    if sizing.diameter != "auto" or sizing.diameter_um is not None or not group_regex or not files:
        return {}
    names = [image_name(path) for path in files]
    captures: dict[str, list[int]] = {}
    for index, group in enumerate(group_names(names, group_regex, "group_regex")):
        captures.setdefault(group, []).append(index)
    estimates = {}
    for group, members in captures.items():
        chosen = [members[int(i)] for i in np.unique(np.linspace(0, len(members) - 1, per_capture).round())]
        found = []
        for index in chosen:
            try:
                found.append(estimate_diameter(open_image(files[index], plane)))
            except (BeadDataError, OSError):
                continue  # an unreadable frame is named when its turn comes
        estimate = pooled(found) if found else SizeEstimate(None, 0, 0.0, None, "no frame of it could be read")
        (log.info if estimate.trusted else log.warning)("capture %s: %s", group, describe(sizing, estimate, len(found)))
        estimates.update({names[index]: estimate for index in members})
    return estimates


def describe(sizing: BeadSizing, estimate: SizeEstimate, frames: int) -> str:
    """One line on a capture's estimate and what the network sees of it."""
    if estimate.trusted:
        zoom = sizing.zoom(estimate.diameter)
        resized = f", resized x{zoom:.3g} for the model's {sizing.model_diameter:.1f} px" if zoom != 1 else ""
        return f"beads of {estimate.diameter:.1f} px estimated on {frames} frame(s){resized}"
    fallback = f"the model's {sizing.model_diameter:.1f} px" if sizing.model_diameter else "frames as they are"
    return f"no bead size estimated ({estimate.reason}): {fallback}"


def report_sizes(sizes: list[FrameSize]) -> list[str]:
    """What a run took its frames' beads to measure, one line per source, logged at the end of the run (frames that
    fell back to the model's size as a warning, with why); returns the lines.

    Examples
    --------
    >>> for line in report_sizes([FrameSize(14.0, "estimated", 0.5), FrameSize(13.0, "estimated", 0.55),
    ...                           FrameSize(7.0, "model", 1.0, "no beads found")]):
    ...     print(line)
    bead diameter estimated on 2 frame(s): 13.0-14.0 px (median 13.5), resized x0.5-0.55 for the network
    bead diameter the model's (7.0 px) on 1 frame(s), no estimate to trust: no beads found (1)
    """
    lines = []
    for source in ("given", "estimated"):
        chosen = [size for size in sizes if size.source == source and size.diameter]
        if not chosen:
            continue
        diameters = [float(size.diameter or 0) for size in chosen]
        zooms = sorted({round(size.zoom, 3) for size in chosen})
        resized = (f", resized x{zooms[0]:g}" + (f"-{zooms[-1]:g}" if len(zooms) > 1 else "") + " for the network"
                   if zooms != [1.0] else ", as they are")
        lines.append(f"bead diameter {source} on {len(chosen)} frame(s): {min(diameters):.1f}-{max(diameters):.1f} px "
                     f"(median {float(np.median(diameters)):.1f}){resized}")
        log.info(lines[-1])
    fallen = [size for size in sizes if size.source == "model"]
    if fallen:
        model = f" ({fallen[0].diameter:.1f} px)" if fallen[0].diameter else ""
        notes = Counter(size.note for size in fallen if size.note)
        why = ", no estimate to trust: " + ", ".join(f"{note} ({count})" for note, count in notes.most_common(3))
        lines.append(f"bead diameter the model's{model} on {len(fallen)} frame(s)" + (why if notes else ""))
        (log.warning if notes else log.info)(lines[-1])
    return lines
