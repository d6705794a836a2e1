"""What ``beadseg-predict`` writes, one writer per kind of output behind one interface (as nnU-Net's reader/writer
classes): a frame's files as it is finished, and the run's tables from every frame's record at the end. Adding a
format is one class here with :func:`register`; every writer writes atomically (:func:`beadseg.files.atomic_write`
through :mod:`~beadseg.formats.images` and :mod:`~beadseg.formats.rois`).

No torch here: the finishing workers start without it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from beadseg.beads.postprocess import Instances
from beadseg.files import file_stem
from beadseg.formats import images, rois
from beadseg.inference.frame import Frame
from beadseg.tables import write_csv

# The predict settings that say what is written (and so what a resumed run must share with the run it continues).
OUTPUT_SETTINGS = ("label_format", "tiff_compression", "save_probability", "save_uncertainty", "flag_uncertainty",
                   "save_debris", "rois", "overlays", "overlay_max_side", "overlay_compression")

OBJECT_COLUMNS = ["image", "bead_id", "centroid_y", "centroid_x", "area", "equivalent_diameter", "circularity",
                  "mean_intensity", "mean_probability", "contrast_snr", "object_id", "object_beads", "at_edge",
                  "counted", "area_um2", "equivalent_diameter_um"]
DEBRIS_COLUMNS = ["image", "reason", "centroid_y", "centroid_x", "area", "equivalent_diameter", "circularity",
                  "mean_probability", "contrast_snr"]
COUNT_COLUMNS = ["image", "count", "count_all", "at_edge", "debris", "particles", "edge_rule", "mean_diameter",
                 "bead_diameter", "bead_diameter_source", "network_zoom", "coverage", "mean_uncertainty", "flagged",
                 "pixel_size_um", "mean_diameter_um", "beads_per_mm2", "path"]


def overlay_every(setting: int | bool | str, frames: int, most: int = 200) -> int:
    """``overlays``: an overlay for every n-th frame of the input (``auto``: every frame of up to ``most``, else
    ``most`` spread evenly, so that 40,000 frames do not write 60 GB of pictures; 0 or false: none).

    Examples
    --------
    >>> overlay_every("auto", 150), overlay_every("auto", 40_000), overlay_every(False, 10)
    (1, 200, 0)
    """
    if setting == "auto":
        return max(1, math.ceil(frames / most))
    if isinstance(setting, bool):
        return int(setting)
    if not isinstance(setting, int) or not 0 <= setting <= 10**9:
        raise ValueError(f"overlays={setting}: give auto, a whole number n ≥ 0 (an overlay for every n-th frame) or "
                         "false")
    return setting


def roi_kinds(value) -> tuple[str, ...]:
    """``rois=imagej``, ``rois=geojson``, ``rois=[imagej,geojson]`` (``null``/``false``: none), checked by name.

    Examples
    --------
    >>> roi_kinds("imagej"), roi_kinds(["imagej", "geojson"]), roi_kinds(None)
    (('imagej',), ('imagej', 'geojson'), ())
    """
    kinds = () if value in (None, False) else (value,) if isinstance(value, str) else tuple(value)
    unknown = [kind for kind in kinds if kind not in rois.ROI_FORMATS]
    if unknown:
        raise ValueError(f"rois={value}: {', '.join(map(str, unknown))} is no ROI format; choose from "
                         f"{', '.join(rois.ROI_FORMATS)} (a list for several: rois=[imagej,geojson])")
    return kinds


@dataclass(frozen=True)
class OutputOptions:
    """What each frame of a run gets written (the ``OUTPUT_SETTINGS`` of ``conf/predict.yaml``, where each is
    described), with ``overlays`` as every n-th frame and the post-processing's ``edge_rule`` that ``counts.csv``
    names."""

    label_format: str = "tiff"
    tiff_compression: str = "zlib"
    save_probability: bool = False
    save_uncertainty: bool = True
    flag_uncertainty: float = 0.1
    save_debris: bool = False
    rois: tuple[str, ...] = ()
    overlays: int = 1
    overlay_max_side: int = 4096
    overlay_compression: int = 0
    edge_rule: str = "gundersen"

    @classmethod
    def from_config(cls, cfg, frames: int) -> OutputOptions:
        """The options a predict config gives an input of ``frames`` frames (its settings checked already:
        :func:`~beadseg.settings.check_settings`)."""
        settings = {key: cfg[key] for key in OUTPUT_SETTINGS}
        return cls(**{**settings, "rois": roi_kinds(cfg.rois), "overlays": overlay_every(cfg.overlays, frames),
                      "edge_rule": cfg.postprocess.edge_rule})

    def __post_init__(self) -> None:
        images.label_suffix(self.label_format)  # a name of the label writers' registry, refused before any work

    @property
    def label_suffix(self) -> str:
        return images.LABEL_FORMATS[self.label_format]

    def overlay_for(self, index: int) -> bool:
        """Whether the input's ``index``-th frame gets an overlay (every ``overlays``-th; 0: none)."""
        return bool(self.overlays) and index % self.overlays == 0


class Writer:
    """One kind of output. ``write`` runs once per finished frame (in a finishing worker, or the main process);
    ``merge`` once at the end of the run with every finished frame's record, in input order. Both do nothing
    unless a writer says otherwise."""

    def write(self, frame: Frame, beads: Instances, out: Path, options: OutputOptions) -> None:
        """A frame's file(s) under ``out``."""

    def merge(self, records: list[dict], out: Path, options: OutputOptions) -> None:
        """The run's file(s) under ``out`` from the records :func:`~beadseg.inference.finish.finish_frame` made."""


WRITERS: dict[str, Writer] = {}


def register(name: str):
    """Add a writer class to :data:`WRITERS` under ``name`` (one instance serves the run)."""

    def add(cls: type[Writer]) -> type[Writer]:
        WRITERS[name] = cls()
        return cls

    return add


@register("masks")
class MaskWriter(Writer):
    """``masks/<image>``: the 0/255 bead mask in ``label_format``, calibrated where the pixel size is known."""

    def write(self, frame, beads, out, options):
        images.write_mask(
            beads.labels,
            out / "masks" / f"{file_stem(frame.name)}{options.label_suffix}",
            frame.pixel_size_um,
            options.tiff_compression,
        )


@register("instances")
class InstanceWriter(Writer):
    """``instances/<image>``: one label per bead (uint16, or uint32 past 65,535 beads)."""

    def write(self, frame, beads, out, options):
        images.write_labels(beads.labels, out / "instances" / f"{file_stem(frame.name)}{options.label_suffix}",
                             len(beads.objects), frame.pixel_size_um, options.tiff_compression)


@register("rois")
class RoiWriter(Writer):
    """``rois/<image>_rois.zip`` (Fiji's ROI Manager) and/or ``rois/<image>.geojson`` (QuPath), with ``rois=``."""

    def write(self, frame, beads, out, options):
        if options.rois:
            (out / "rois").mkdir(exist_ok=True)
            rois.write_rois(list(options.rois), beads.labels, beads.objects, out / "rois", file_stem(frame.name))


@register("maps")
class MapWriter(Writer):
    """``probability/<image>.tif`` (and ``centres/`` of a ``target=centres`` model), float16, with
    ``save_probability``; ``uncertainty/<image>.tif`` with ``save_uncertainty`` where ``tta``/``mc_samples`` give
    one."""

    def write(self, frame, beads, out, options):
        maps = {}
        if options.save_probability and frame.maps is not None:
            maps = dict(zip(("probability", "centres"), frame.maps if frame.maps.ndim == 3 else [frame.maps]))
        if options.save_uncertainty and frame.uncertainty is not None:
            maps["uncertainty"] = frame.uncertainty
        for folder, values in maps.items():
            (out / folder).mkdir(exist_ok=True)
            images.write_map(values, out / folder / f"{file_stem(frame.name)}.tif")


@register("overlays")
class OverlayWriter(Writer):
    """``overlays/<image>.png`` for every ``overlays``-th frame: bead outlines, rejected objects circled, the
    count."""

    def write(self, frame, beads, out, options):
        if options.overlay_for(frame.index):
            images.overlay_png(
                frame.image,
                beads.labels,
                out / "overlays" / f"{file_stem(frame.name)}.png",
                options.overlay_max_side,
                count=beads.counted,
                compress_level=options.overlay_compression,
                rejected=beads.debris,
            )


@register("objects")
class ObjectTable(Writer):
    """``objects.csv``: one row per bead of every frame."""

    def merge(self, records, out, options):
        write_csv([{"image": record["image"], **row} for record in records for row in record["objects"]],
                  out / "objects.csv", OBJECT_COLUMNS)


@register("counts")
class CountTable(Writer):
    """``counts.csv``: one row per frame (the count by the edge rule, every bead, debris, particles, sizes)."""

    def merge(self, records, out, options):
        write_csv([record["counts"] for record in records], out / "counts.csv", COUNT_COLUMNS)


@register("debris")
class DebrisTable(Writer):
    """``debris.csv``: every rejected object with its reason, with ``save_debris``."""

    def merge(self, records, out, options):
        if options.save_debris:
            write_csv([{"image": record["image"], **row} for record in records for row in record.get("debris", ())],
                      out / "debris.csv", DEBRIS_COLUMNS)
