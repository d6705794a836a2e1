"""REPORT.md of an analysis: what the data are, what is wrong with the labels, what to do."""

from __future__ import annotations

from pathlib import Path


def _range(stats: dict, unit: str = "", digits: int = 1) -> str:
    if stats.get("mean") is None:
        return "n/a"
    return (f"mean {stats['mean']:.{digits}f}{unit} ± {stats['std']:.{digits}f}, median {stats['median']:.{digits}f}, "
            f"range {stats['min']:.{digits}f}–{stats['max']:.{digits}f}{unit}")


def _mask_kinds(kinds: dict) -> str:
    words = {"binary": "binary masks (beads counted as components split where they touch)",
             "labels": "instance label images (one value per bead)"}
    return "; ".join(f"{words[kind]}: {count}" for kind, count in sorted(kinds.items()))


def _polarities(counts: dict) -> str:
    """``{'dark': 56}`` -> "dark in all 56 images"; ``{'dark': 50, 'bright': 6}`` -> "dark in 50, bright in 6
    images"."""
    if len(counts) == 1:
        (kind, count), = counts.items()
        return f"{kind} in all {count} images"
    return ", ".join(f"{kind} in {count}" for kind, count in sorted(counts.items(), key=lambda kv: -kv[1])) + " images"


def _listing(items: list[str], most: int = 10) -> str:
    """``": a, b, c"`` (the first ``most``, then an ellipsis) to end a report line, or ``"."`` for none.

    Examples
    --------
    >>> _listing(["a", "b"]), _listing([]), _listing(list("abc"), most=2)
    (': a, b', '.', ': a, b …')
    """
    return ": " + ", ".join(items[:most]) + (" …" if len(items) > most else "") if items else "."


def _flagged(rows: list[dict], flag: str) -> list[dict]:
    return [r for r in rows if flag in r["flags"].split(";")]


def _microns(summary: dict) -> str:
    size = summary.get("pixel_size_um")
    if isinstance(size, float):
        return (
            f"- In µm (pixel size {size:g} µm): equivalent diameter "
            f"{_range(summary['bead_equivalent_diameter_um'], ' µm', 2)}; "
            f"area {_range(summary['bead_area_um2'], ' µm²', 2)}."
        )
    if size:
        return f"- Pixel sizes differ between images ({', '.join(f'{v:g}' for v in size)} µm): sizes stay in pixels."
    return "- Pixel size unknown (no metadata; give `image.pixel_size_um=`): sizes stay in pixels."


def write_report(path: Path, root: Path, summary: dict, rows: list[dict], choices: list[dict], comparison, qa) -> Path:
    beads, qa_totals = summary["beads_per_image"], summary["label_qa"]
    bins = ", ".join(f"{k}: {v}" for k, v in beads["density_bins"].items())
    lines = [
        f"# Data analysis of `{root}`",
        "",
        "## What the data are",
        f"- {summary['images']} images ({', '.join(summary['image_sizes'])}), "
        f"{'/'.join(map(str, summary['bit_depths']))}-bit, "
        f"beads mostly **{summary['polarity']}** on their background ({_polarities(summary['polarity_counts'])}).",
        f"- Beads per image: {_range(beads)}; images per density bin: {bins}.",
        f"- Masks read as: {_mask_kinds(summary['mask_kinds'])}.",
        f"- Bead pixels per image: "
        f"{_range({k: (v * 100 if v is not None else None) for k, v in summary['positive_ratio'].items()}, '%')}.",
        f"- Bead size: equivalent diameter {_range(summary['bead_equivalent_diameter_px'], ' px')}; "
        f"area {_range(summary['bead_area_px'], ' px²')}; {summary['merged_fraction']:.0%} of labelled objects are "
        "over 1.8× the median bead (touching beads labelled as one).",
        _microns(summary),
        f"- Brightness {_range(summary['brightness'])}; contrast (intensity std) {_range(summary['contrast'])}; "
        f"bead contrast-to-noise {_range(summary['bead_contrast_to_noise'])}.",
        "",
        "![distributions](distribution_analysis.png)",
        "",
        "![samples](sample_images.png)",
        "",
        "## What is wrong with the labels",
        f"The classical detector (both polarities, no training) found {qa_totals['detected_beads']} beads in the "
        "images; "
        f"{qa_totals['unlabelled_beads']} of them "
        f"({qa_totals['unlabelled_beads'] / max(qa_totals['detected_beads'], 1):.1%}) "
        "lie under no mask pixel, even after undoing each mask's offset.",
        "",
    ]
    missing = _flagged(rows, "missing_labels")
    lines.append(
        f"- **Missing labels**: {len(missing)} images are under {qa.min_labelled_fraction:.0%} labelled"
        + _listing([f"`{r['image']}` ({r['labelled_fraction']:.0%}, {r['unlabelled_beads']} beads)" for r in missing])
    )
    empty = _flagged(rows, "labels_without_beads")
    lines.append(
        f"- **Labels with no bead under them**: {len(empty)} images have masks where over "
        f"{qa.max_empty_label_fraction:.0%} of the labelled objects cover no bead the detector sees (the mask "
        "of another image, or labels of nothing)"
        + _listing([f"`{r['image']}` ({r['labels_without_beads']} of {r['labels']})" for r in empty])
    )
    shifted = _flagged(rows, "offset")
    lines.append(
        f"- **Shifted masks**: {len(shifted)} images have masks offset by ≥ {qa.min_offset_px:g} px (confidence ≥ "
        f"{qa.min_offset_confidence:g})"
        + _listing([f"`{r['image']}` ({r['offset_y']:+.1f}, {r['offset_x']:+.1f}) px" for r in shifted])
    )
    ratio = qa_totals["median_size_ratio"]
    bias = (
        "about the size of"
        if ratio is None or 0.9 <= ratio <= 1.1
        else "smaller than"
        if ratio < 0.9
        else "larger than"
    )
    lines.append(
        f"- **Size bias**: labelled beads are {bias} the beads in the image (median area ratio "
        f"{ratio if ratio is not None else 'n/a'}, labelled / apparent at half maximum); "
        f"{qa_totals['images_mask_smaller']} images with masks clearly smaller, {qa_totals['images_mask_larger']} "
        "clearly larger."
    )
    lines += [
        "",
        "![label QA](label_qa.png)",
        "",
        "## What to do",
    ]
    if missing or shifted:
        lines.append(
            "- Fix the masks before training: `beadseg-analyze data.root=… fix=true out_masks=DIR` undoes the offsets "
            "(`add_missing=true` also adds the detector's beads where no mask is); then review and train on DIR."
        )
    for choice in choices:
        lines.append(f"- `{choice['setting']}` = `{choice['value']}`: {choice['reason']}.")
    lines += [
        "",
        f"Train with the recommendation: `beadseg-train --config-dir {path.parent.resolve()} --config-name "
        "recommended`.",
    ]
    if comparison:
        lines += ["", f"## Compared with `{comparison['other']}`", ""]
        header = list(comparison["table"][0])
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        lines += ["| " + " | ".join(str(row[h]) for h in header) + " |" for row in comparison["table"]]
        lines += [
            "",
            *(f"- {note}" for note in comparison["differences"] or ["No difference that matters for training."]),
            "",
            "![comparison](comparison.png)",
        ]
    path.write_text("\n".join(lines) + "\n")
    return path
