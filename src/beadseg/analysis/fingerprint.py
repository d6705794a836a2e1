"""The data set's fingerprint: per-image measurements and the set's summary statistics."""

from __future__ import annotations

from collections import Counter

import numpy as np
from skimage.measure import label

from beadseg.beads.classical import Detections
from beadseg.beads.label_qa import LabelCheck, QAThresholds
from beadseg.data.io import bit_depth
from beadseg.data.sample import BeadSample
from beadseg.data.split import DENSITY_EDGES, density_bin_ranges


def image_row(
    sample: BeadSample, detections: Detections, check: LabelCheck, qa: QAThresholds
) -> tuple[dict, np.ndarray]:
    """One row of ``per_image.csv``, and the areas of the image's labelled beads."""
    image, mask = sample.image.astype(np.float64), sample.mask
    areas = np.bincount(label(mask, connectivity=1).ravel())[1:]  # the labelled objects as drawn
    background = image[~mask] if (~mask).any() else image.ravel()
    bead_contrast = abs(image[mask].mean() - background.mean()) / max(background.std(), 1e-9) if mask.any() else 0.0
    flags = check.flags(qa)
    row = {
        "image": sample.name,
        "height": image.shape[0],
        "width": image.shape[1],
        "bit_depth": bit_depth(sample.image),
        "bead_count": sample.bead_count,
        "positive_ratio": round(float(mask.mean()), 5),
        "mean_bead_area": round(float(areas.mean()), 2) if len(areas) else 0.0,
        "brightness": round(float(image.mean()), 3),
        "contrast": round(float(image.std()), 3),
        "bead_contrast": round(float(bead_contrast), 3),
        "polarity": detections.polarity,
        "detected_beads": check.detected,
        "unlabelled_beads": check.unlabelled,
        "labelled_fraction": round(check.labelled_fraction, 4),
        "labels": check.labels,
        "labels_without_beads": check.empty_labels,
        "offset_y": round(check.offset_y, 2),
        "offset_x": round(check.offset_x, 2),
        "offset_confidence": round(check.offset_confidence, 3),
        "size_ratio": round(check.size_ratio, 3) if np.isfinite(check.size_ratio) else "",
        "flags": ";".join(flags),
    }
    return row, areas


def _stats(values, digits: int = 4) -> dict:
    values = np.asarray(values, dtype=float)
    if not len(values):
        return {"mean": None, "std": None, "min": None, "max": None}
    return {k: round(float(f(values)), digits) for k, f in
            (("mean", np.mean), ("std", np.std), ("median", np.median), ("min", np.min), ("max", np.max))}


def summarise(rows: list[dict], bead_areas: np.ndarray) -> dict:
    """``summary.json`` without the recommendations: the set's statistics and label-QA totals."""
    counts = [r["bead_count"] for r in rows]
    bins = {
        (f"{lo}-{hi}" if hi is not None else f">{lo - 1}"): int(
            sum(lo <= c and (hi is None or c <= hi) for c in counts)
        )
        for lo, hi in density_bin_ranges(DENSITY_EDGES)
    }
    flags = Counter(flag for r in rows for flag in r["flags"].split(";") if flag)
    ratios = [r["size_ratio"] for r in rows if r["size_ratio"] != ""]
    polarity = Counter(r["polarity"] for r in rows)
    return {
        "mask_kinds": dict(Counter(r["mask_kind"] for r in rows)),
        "images": len(rows),
        "image_sizes": sorted({f"{r['height']}x{r['width']}" for r in rows}),
        "bit_depths": sorted({r["bit_depth"] for r in rows}),
        "beads_per_image": {**_stats(counts, 2), "density_bins": bins},
        "positive_ratio": _stats([r["positive_ratio"] for r in rows]),
        "bead_area_px": _stats(bead_areas, 2),
        "bead_equivalent_diameter_px": _stats(np.sqrt(4 * np.asarray(bead_areas, float) / np.pi), 2),
        # labelled objects much larger than a typical bead: touching beads merged into one
        "merged_fraction": round(float(np.mean(bead_areas > 1.8 * np.median(bead_areas))), 4)
        if len(bead_areas)
        else 0.0,
        "brightness": _stats([r["brightness"] for r in rows], 2),
        "contrast": _stats([r["contrast"] for r in rows], 2),
        "bead_contrast_to_noise": _stats([r["bead_contrast"] for r in rows], 2),
        "polarity": polarity.most_common(1)[0][0] if polarity else None,
        "polarity_counts": dict(polarity),
        "label_qa": {
            "images_missing_labels": flags["missing_labels"],
            "images_labels_without_beads": flags["labels_without_beads"],
            "images_offset": flags["offset"],
            "images_mask_smaller": flags["mask_smaller"],
            "images_mask_larger": flags["mask_larger"],
            "detected_beads": int(sum(r["detected_beads"] for r in rows)),
            "unlabelled_beads": int(sum(r["unlabelled_beads"] for r in rows)),
            "median_size_ratio": round(float(np.median(ratios)), 3) if ratios else None,
        },
    }
