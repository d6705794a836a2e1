"""The analysis task: fingerprint a folder data set, check its labels, recommend an experiment, report."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import tifffile
from hydra.utils import instantiate
from rich.progress import track

from beadseg import plots
from beadseg.analysis.findings import write_report
from beadseg.analysis.fingerprint import image_row, summarise
from beadseg.analysis.recommend import recommend, write_recommended
from beadseg.beads.classical import Detections
from beadseg.beads.instances import bead_instances
from beadseg.beads.label_qa import LabelCheck, QAThresholds, check_labels, shift_mask
from beadseg.beads.size import BeadSizing
from beadseg.data.folder import FolderSource, load_pair
from beadseg.data.io import image_name, mask_kind, read_image, read_mask
from beadseg.data.readers import pixel_size_um
from beadseg.data.sample import BeadSample
from beadseg.tables import write_csv


@dataclass
class FolderAnalysis:
    """Everything measured on one folder data set."""

    root: Path
    rows: list[dict] = field(default_factory=list)
    bead_areas: np.ndarray = field(default_factory=lambda: np.zeros(0))
    summary: dict = field(default_factory=dict)

    @property
    def diameters(self) -> np.ndarray:
        return np.sqrt(4 * self.bead_areas / np.pi)


def inspect(sample: BeadSample, detector: Callable, qa: QAThresholds) -> tuple[Detections, LabelCheck]:
    detections = detector(sample.image)
    return detections, check_labels(sample.mask, detections, qa.max_shift)


def analyze_folder(source: FolderSource, detector: Callable, qa: QAThresholds,
                   sizing: BeadSizing | None = None) -> FolderAnalysis:
    """Measure every image (streamed, with a progress bar); the same pairing and errors as training. With
    ``sizing`` (``image.bead_diameter``), each row also says the beads' diameter the images show, given or estimated
    from the pixels (``bead_diameter``, ``bead_diameter_source``), beside what the labels say."""
    result, areas, any_beads = FolderAnalysis(source.root), [], False
    for image_path, mask_path in track(source.pairs(), description=f"analysing {source.root.name}"):
        sample = load_pair(image_path, mask_path, source.plane)
        any_beads |= bool(sample.mask.any())
        row, bead_areas = image_row(sample, *inspect(sample, detector, qa), qa)
        row["mask_kind"] = mask_kind(read_mask(mask_path))
        if sizing is not None:
            size = sizing.for_frame(sample.image, pixel_size_um(image_path, source.plane))
            row["bead_diameter"] = "" if size.diameter is None else size.diameter
            row["bead_diameter_source"] = size.source if size.diameter is not None else f"none ({size.note})"
        result.rows.append(row)
        areas.append(bead_areas)
    source.require_beads(any_beads)
    result.bead_areas = np.concatenate(areas).astype(float)
    result.summary = summarise(result.rows, result.bead_areas)
    return result


def _worst(rows: list[dict], flag: str, key, count: int = 2) -> list[dict]:
    return sorted((r for r in rows if flag in r["flags"].split(";")), key=key)[:count]


def qa_cases(source: FolderSource, analysis: FolderAnalysis, detector: Callable, qa: QAThresholds) -> list:
    """The worst images per label problem, re-inspected for drawing."""
    chosen = [("missing labels", r) for r in _worst(analysis.rows, "missing_labels", lambda r: r["labelled_fraction"])]
    chosen += [
        ("offset", r) for r in _worst(analysis.rows, "offset", lambda r: -np.hypot(r["offset_y"], r["offset_x"]))
    ]
    chosen += [("size bias", r) for r in _worst(analysis.rows, "mask_smaller", lambda r: r["size_ratio"])]
    chosen += [("size bias", r) for r in _worst(analysis.rows, "mask_larger", lambda r: -r["size_ratio"])]
    pairs = {image_name(image): (image, mask) for image, mask in source.pairs()}
    cases = []
    for problem, row in chosen:
        sample = load_pair(*pairs[row["image"]], source.plane)
        cases.append((problem, sample, *inspect(sample, detector, qa), row))
    return cases


def spread_by_density(source: FolderSource, rows: list[dict], count: int = 6) -> list[BeadSample]:
    order = sorted(range(len(rows)), key=lambda i: rows[i]["bead_count"])
    picks = sorted({order[int(round(q))] for q in np.linspace(0, len(order) - 1, min(count, len(order)))})
    pairs = source.pairs()
    return [load_pair(*pairs[i], source.plane) for i in sorted(picks, key=lambda i: rows[i]["bead_count"])]


def fix_masks(source: FolderSource, analysis: FolderAnalysis, out_masks: Path, add_missing: bool,
              *, detector: Callable, qa: QAThresholds) -> Path:
    """Write corrected masks (offsets undone; optionally unlabelled beads added) to a new folder."""
    if out_masks.resolve() == (source.root / source.masks).resolve():
        raise ValueError(f"out_masks={out_masks} is the original mask folder: corrected masks go to a new folder")
    if out_masks.is_dir() and any(out_masks.iterdir()):
        raise FileExistsError(f"out_masks={out_masks} is not empty; beadseg never overwrites masks")
    out_masks.mkdir(parents=True, exist_ok=True)
    rows = {row["image"]: row for row in analysis.rows}
    for image_path, mask_path in track(source.pairs(), description="writing corrected masks"):
        row, original = rows[image_name(image_path)], read_image(mask_path)
        raw = original
        if "offset" in row["flags"].split(";"):
            raw = shift_mask(raw, -round(row["offset_y"]), -round(row["offset_x"]))
        if add_missing and row["unlabelled_beads"]:
            sample = BeadSample(image_name(image_path), read_image(image_path, source.plane), bead_instances(raw))
            detections, check = inspect(sample, detector, qa)
            centres = np.round(check.unlabelled_centroids).astype(int)
            missing = np.unique(detections.labels[tuple(centres.T)])
            paint = np.isin(detections.labels, missing[missing > 0]) & (raw == 0)
            raw = raw.copy()
            raw[paint] = raw.max() if len(np.unique(raw)) <= 2 and raw.max() > 0 else raw.max() + 1
        target = out_masks / mask_path.name
        raw = raw.astype(original.dtype if original.dtype.kind in "ui" else np.uint8)  # RGB masks come back gray
        if mask_path.suffix.lower() in (".tif", ".tiff"):
            tifffile.imwrite(target, raw)
        else:
            iio.imwrite(target, raw)
    return out_masks


def compare_summaries(a: dict, b: dict, name_a: str, name_b: str) -> tuple[list[dict], list[str]]:
    """A side-by-side table and the differences that matter for training."""
    measures = [
        ("images", lambda s: s["images"]),
        ("beads per image (mean)", lambda s: s["beads_per_image"]["mean"]),
        ("bead diameter (median px)", lambda s: s["bead_equivalent_diameter_px"]["median"]),
        ("positive ratio (mean)", lambda s: s["positive_ratio"]["mean"]),
        ("brightness (mean)", lambda s: s["brightness"]["mean"]),
        ("contrast (mean)", lambda s: s["contrast"]["mean"]),
        ("polarity", lambda s: s["polarity"]),
        ("bit depths", lambda s: "/".join(map(str, s["bit_depths"]))),
        ("unlabelled beads", lambda s: s["label_qa"]["unlabelled_beads"]),
    ]
    table = [{"measure": name, name_a: get(a), name_b: get(b)} for name, get in measures]
    notes = []
    for name, get, what in (
        ("beads per image", measures[1][1], "object density: per-object settings (and the lab's learning rate "
         "argument) do not carry over"),
        ("bead diameter", measures[2][1], "object scale: patch size and receptive field must follow"),
        ("positive ratio", measures[3][1], "class balance: the loss weighting must follow"),
    ):
        va, vb = get(a) or 0, get(b) or 0
        ratio = max(va, vb) / max(min(va, vb), 1e-9)
        if ratio >= 2:
            notes.append(f"{name} differs {ratio:.1f}× ({va} vs {vb}): {what}")
    if a["polarity"] != b["polarity"]:
        notes.append(f"polarity differs ({a['polarity']} vs {b['polarity']} beads): train on both or invert one")
    if a["bit_depths"] != b["bit_depths"]:
        notes.append(f"bit depth differs ({a['bit_depths']} vs {b['bit_depths']}): normalise per image (percentile)")
    return table, notes


def physical_sizes(source: FolderSource, summary: dict) -> dict:
    """Bead sizes in µm when every image has the same known pixel size (metadata or ``image.pixel_size_um``)."""
    sizes = {pixel_size_um(image, source.plane) for image, _ in source.pairs()}
    if len(sizes) != 1 or None in sizes:
        return {"pixel_size_um": sorted(sizes) if None not in sizes else None}
    size = float(sizes.pop() or 0.0)  # one known size (None was ruled out above)
    scale = {"bead_equivalent_diameter_um": ("bead_equivalent_diameter_px", size),
             "bead_area_um2": ("bead_area_px", size**2)}
    return {"pixel_size_um": size, **{key: {k: (round(v * factor, 4) if isinstance(v, float) else v)
                                            for k, v in summary[px].items()} for key, (px, factor) in scale.items()}}


def analyze(cfg) -> dict:
    """Run the whole analysis; returns the paths it wrote."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    detector, qa = instantiate(cfg.detector), instantiate(cfg.qa)
    source = FolderSource(cfg.data.root, cfg.data.images, cfg.data.masks, plane=cfg.get("image"))
    sizing = BeadSizing.from_config(cfg.get("image"), None)
    analysis = analyze_folder(source, detector, qa, sizing)
    settings, choices = recommend(analysis.summary, [r["image"] for r in analysis.rows], str(source.root))
    summary = {**analysis.summary, **physical_sizes(source, analysis.summary), "recommendations": choices}
    written = {
        "per_image": write_csv(analysis.rows, out / "per_image.csv"),
        "recommended": write_recommended(settings, out / "recommended.yaml", str(source.root)),
        "distribution": plots.distribution_figure(analysis.rows, analysis.diameters, out / "distribution_analysis.png"),
        "samples": plots.sample_figure(spread_by_density(source, analysis.rows), out / "sample_images.png"),
        "label_qa": plots.label_qa_figure(qa_cases(source, analysis, detector, qa), out / "label_qa.png"),
    }
    comparison = None
    if cfg.get("compare"):
        other_source = FolderSource(cfg.compare, cfg.data.images, cfg.data.masks, plane=cfg.get("image"))
        other = analyze_folder(other_source, detector, qa, sizing)
        name_a, name_b = source.root.name, other_source.root.name
        if name_a == name_b:
            name_a, name_b = str(source.root), str(other_source.root)
        table, notes = compare_summaries(analysis.summary, other.summary, name_a, name_b)
        comparison = {
            "other": str(other_source.root),
            "table": table,
            "differences": notes,
            "other_summary": other.summary,
        }
        summary["comparison"] = comparison
        written["comparison_table"] = write_csv(table, out / "comparison.csv")
        written["comparison_figure"] = plots.comparison_figure(
            name_a,
            analysis.rows,
            analysis.diameters,
            name_b,
            rows_b=other.rows,
            diam_b=other.diameters,
            path=out / "comparison.png",
        )
    if cfg.get("fix"):
        if not cfg.get("out_masks"):
            raise ValueError("fix=true needs out_masks=DIR (a new folder for the corrected masks)")
        written["fixed_masks"] = fix_masks(
            source, analysis, Path(cfg.out_masks), bool(cfg.get("add_missing")), detector=detector, qa=qa
        )
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    written["summary"] = out / "summary.json"
    written["report"] = write_report(out / "REPORT.md", source.root, summary, analysis.rows, choices, comparison, qa)
    return written
