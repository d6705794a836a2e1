"""After the run: the tables merged from every frame's record, the counts per group and the dilution-series
report, in the library (the command line only prints where they went)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from beadseg import plots
from beadseg.data.io import image_name
from beadseg.data.split import group_names
from beadseg.inference.journal import part_lines
from beadseg.inference.writers import WRITERS, OutputOptions
from beadseg.tables import write_csv


def merge_tables(out: Path, files: list[Path], options: OutputOptions, group_regex: str | None = None,
                 dilution=None) -> dict:
    """The run's tables from the part files, in input order: each writer's (``counts.csv``, ``objects.csv``;
    ``debris.csv`` with ``save_debris``) and ``errors.csv``; with ``group_regex`` the counts per group, and the
    ``dilution`` series' report (:class:`~beadseg.analysis.dilution.DilutionSeries`) where the groups are numeric
    dilutions."""
    records = part_lines(out)
    found = [records[name] for name in map(image_name, files) if name in records]
    done = [record for record in found if "error" not in record]
    failed = [{"image": record["path"], "error": record["error"]} for record in found if "error" in record]
    for writer in WRITERS.values():
        writer.merge(done, out, options)
    counts = [record["counts"] for record in done]
    if failed:
        write_csv(failed, out / "errors.csv", ["image", "error"])
    elif (out / "errors.csv").exists():
        (out / "errors.csv").unlink()  # a resumed run read what failed before
    result = {
        "output": out,
        "done": len(counts),
        "failed": failed,
        "beads": sum(len(record["objects"]) for record in done),
        "missing": [str(p) for p in files if image_name(p) not in records],
    }
    if group_regex and counts:
        result["groups"] = group_counts(counts, group_regex, out)
        if dilution is not None:
            try:
                result["dilution_report"] = dilution.write(counts, group_regex, out)["text"]
            except ValueError as error:  # names that are no dilutions: the per-group counts still stand
                result["dilution_note"] = str(error)
    return result


def natural_order(name: str) -> tuple:
    """Sorts names with numbers by their numbers: 320x, 2560x, 10240x (not 10240x, 2560x, 320x as text).

    Examples
    --------
    >>> sorted(["10240", "2560", "320", "a"], key=natural_order)
    ['320', '2560', '10240', 'a']
    """
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name) if part)


def group_counts(counts: list[dict], pattern: str, out: Path) -> int:
    """Counts per group (the regex's first group, e.g. the dilution, or the capture whose tiles the frames are:
    ``'^(.*)_grid_'``; the name itself where it does not match) as a table and a plot. ``total_count`` sums the
    edge rule's counts (the tiles of a capture add up to the capture's count), ``total_count_all`` every bead."""
    groups: dict[str, list[dict]] = {}
    for row, key in zip(counts, group_names([row["image"] for row in counts], pattern, "group_regex")):
        groups.setdefault(key, []).append(row)
    rows = []
    for key, members in sorted(groups.items(), key=lambda item: natural_order(item[0])):
        values = [int(row["count"]) for row in members]
        rows.append({"group": key, "images": len(values), "total_count": int(np.sum(values)),
                     "total_count_all": int(sum(int(row["count_all"]) for row in members)),
                     "mean_count": round(float(np.mean(values)), 2),  # the sample sd, as the dilution report's
                     "std_count": round(float(np.std(values, ddof=1)), 2) if len(values) > 1 else ""})
    plots.group_counts_figure(rows, out / "group_counts.png")
    write_csv(rows, out / "group_counts.csv", list(rows[0]))
    return len(rows)
