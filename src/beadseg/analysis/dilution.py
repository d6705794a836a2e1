"""The dilution-series report: is the count per frame proportional to the concentration, what is the stock's
concentration, which dilutions disagree, and where do counts stop scaling?

A dilution series images one bead stock at several dilutions d. In the range where counting works, the count per
frame n falls as 1/d: log n against log d has slope -1, and n × d (the beads per frame of the undiluted stock) is
one constant across groups. Where beads crowd and touch, counts fall short of it: the densest groups saturate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from beadseg import plots
from beadseg.data.split import group_names
from beadseg.files import atomic_write
from beadseg.tables import write_csv

COLUMNS = ["dilution", "frames", "mean_count", "std_count", "concentration", "ci_low", "ci_high", "per_ul",
           "per_ul_low", "per_ul_high", "deviation", "status"]


@dataclass
class DilutionSeries:
    """Settings of the report: ``confidence`` of the intervals, ``tolerance`` (relative) by which a group's
    concentration may differ from the series' before it is flagged, and ``volume_ul``, the volume one frame
    images (µL), to state concentrations per µL; ``depth_um``, a counting chamber's depth, states each drawn
    region's beads per µL (``regions=``)."""

    confidence: float = 0.95
    tolerance: float = 0.2
    volume_ul: float | None = None
    depth_um: float | None = None

    def groups(self, counts: list[dict], pattern: str) -> dict[float, np.ndarray]:
        """Counts per frame by dilution (the regex's first group, a number); frames it does not match are left out."""
        by_group: dict[float, list[int]] = {}
        for row, key in zip(counts, group_names([row["image"] for row in counts], pattern, "group_regex")):
            if re.fullmatch(r"\d+(\.\d*)?", key):
                by_group.setdefault(float(key), []).append(int(row["count"]))
        if len(by_group) < 2:
            raise ValueError(f"group_regex={pattern!r} finds {len(by_group)} numeric dilution(s) in the image names: "
                             "a dilution report needs two or more (e.g. '^(\\d+)x_' for 640x_...)")
        return {dilution: np.asarray(values, float) for dilution, values in sorted(by_group.items())}

    def estimate(self, counts: np.ndarray, dilutions: np.ndarray) -> tuple[float, float, float]:
        """The concentration C (beads per frame of the undiluted stock) of frames whose counts are Poisson with
        mean C / dilution, and its interval: the exact (Garwood) Poisson interval of the total count, widened by
        the frames' overdispersion (Pearson χ² per degree of freedom, when over 1: tiles of a capture vary more
        than counting alone explains)."""
        counts, dilutions = np.asarray(counts, float), np.asarray(dilutions, float)
        total, exposure = float(counts.sum()), float(np.sum(1 / dilutions))
        concentration = total / exposure
        alpha = 1 - self.confidence
        low = stats.chi2.ppf(alpha / 2, 2 * total) / 2 if total else 0.0
        high = stats.chi2.ppf(1 - alpha / 2, 2 * total + 2) / 2
        expected = concentration / dilutions
        if len(counts) > 1 and total:
            dispersion = max(float(np.sum((counts - expected) ** 2 / expected)) / (len(counts) - 1), 1.0)
            low, high = total - (total - low) * np.sqrt(dispersion), total + (high - total) * np.sqrt(dispersion)
        return concentration, max(low, 0.0) / exposure, high / exposure

    def report(self, counts: list[dict], pattern: str) -> dict:
        """Per group: frames, count, concentration with its interval and status (``ok``, ``saturated``: dense
        groups whose counts stop scaling, ``disagrees``); the series' concentration from the groups in range, the
        log-log slope with its interval, and the densest count per frame that still scales."""
        groups = self.groups(counts, pattern)
        rows: list[dict[str, Any]] = []
        for dilution, values in groups.items():
            concentration, low, high = self.estimate(values, np.full(len(values), dilution))
            rows.append({"dilution": dilution, "frames": len(values), "mean_count": float(values.mean()),
                         "std_count": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                         "concentration": concentration, "ci_low": low, "ci_high": high, "status": "ok"})
        # first the median group (robust to a saturated or odd group), then the groups that agree, until stable
        series = (float(np.median([row["concentration"] for row in rows])), 0.0, 0.0)
        for _ in range(5):
            self.flag(rows, series[0])
            again = self.series(groups, [row for row in rows if row["status"] == "ok"] or rows)
            if again == series:
                break
            series = again
        in_range = [row for row in rows if row["status"] == "ok"] or rows
        frames = [(dilution, count) for dilution, values in groups.items() for count in values
                  if count > 0 and any(row["dilution"] == dilution for row in in_range)]
        slope = self.slope(np.array(frames)) if len({d for d, _ in frames}) >= 2 else None
        every = np.array([(d, count) for d, values in groups.items() for count in values if count > 0])
        slope_all = self.slope(every) if len(set(every[:, 0])) >= 2 else None
        scaling = [row["mean_count"] for row in rows if row["status"] == "ok"]
        for row in rows:
            scale = 1 / self.volume_ul if self.volume_ul else None
            row.update({key: row[ref] * scale if scale else "" for key, ref in
                        (("per_ul", "concentration"), ("per_ul_low", "ci_low"), ("per_ul_high", "ci_high"))})
        return {"groups": rows, "in_range": [row["dilution"] for row in in_range],
                "concentration": series[0], "concentration_ci": series[1:], "slope": slope,
                "slope_all": slope_all,
                "scales_up_to": max(scaling) if scaling else None, "volume_ul": self.volume_ul,
                "confidence": self.confidence, "frames": sum(row["frames"] for row in rows)}

    def series(self, groups: dict[float, np.ndarray], chosen: list[dict]) -> tuple[float, float, float]:
        """The series' concentration and interval from the frames of the ``chosen`` groups."""
        dilutions = sorted(row["dilution"] for row in chosen)
        return self.estimate(np.concatenate([groups[d] for d in dilutions]),
                             np.concatenate([np.full(len(groups[d]), d) for d in dilutions]))

    def flag(self, rows: list[dict], concentration: float) -> None:
        """Each group's deviation from the series' concentration and its status: ``disagrees`` when outside its
        interval and more than ``tolerance`` off, ``saturated`` for the densest groups that fall short."""
        for row in rows:
            row["deviation"] = row["concentration"] / concentration - 1
            outside = not row["ci_low"] <= concentration <= row["ci_high"]
            row["status"] = "disagrees" if outside and abs(row["deviation"]) > self.tolerance else "ok"
        for row in rows:  # rows run from the densest group on
            if row["status"] != "disagrees" or row["deviation"] >= 0:
                break
            row["status"] = "saturated"

    def slope(self, frames: np.ndarray) -> dict:
        """Least-squares slope of log10(count) on log10(dilution) over the frames, with its interval."""
        fit = stats.linregress(np.log10(frames[:, 0]), np.log10(frames[:, 1]))
        half = stats.t.ppf(1 - (1 - self.confidence) / 2, len(frames) - 2) * fit.stderr if len(frames) > 2 else np.inf
        return {"slope": fit.slope, "low": fit.slope - half, "high": fit.slope + half, "intercept": fit.intercept}

    def write(self, counts: list[dict], pattern: str, out: Path) -> dict[str, Path]:
        """``dilution_report.csv``, ``dilution_report.png`` and ``dilution_report.md`` (table and a paragraph)."""
        result = self.report(counts, pattern)
        table = [{key: round(value, 4) if isinstance(value, float) else value for key, value in row.items()}
                 for row in result["groups"]]
        written = {"table": write_csv(table, out / "dilution_report.csv", COLUMNS),
                   "figure": plots.dilution_figure(result, out / "dilution_report.png")}
        with atomic_write(out / "dilution_report.md") as partial:
            partial.write_text(markdown(result))
        written["text"] = out / "dilution_report.md"
        return written


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def summary(result: dict) -> str:
    """The paragraph a biologist reads."""
    groups = result["groups"]
    low, high = result["concentration_ci"]
    percent = round(100 * result["confidence"])
    unit = "beads per frame at 1x"
    text = [f"{result['frames']} frames at {len(groups)} dilutions "
            f"({_number(groups[0]['dilution'])}x to {_number(groups[-1]['dilution'])}x)."]
    fit = result["slope"]
    in_range = ", ".join(f"{_number(dilution)}x" for dilution in result["in_range"])
    if fit:
        verdict = "consistent with" if fit["low"] <= -1 <= fit["high"] else "not consistent with"
        text.append(f"On log-log axes the count per frame falls with dilution at slope {fit['slope']:.2f} "
                    f"({percent} % CI {fit['low']:.2f} to {fit['high']:.2f}) over the dilutions in range "
                    f"({in_range}), "
                    f"{verdict} the slope of -1 that a proportional count gives.")
        every = result["slope_all"]
        if every and any(g["status"] != "ok" for g in groups):
            text.append(f"Over every dilution it is {every['slope']:.2f} ({every['low']:.2f} to {every['high']:.2f}).")
    text.append(
        f"The stock's concentration, count × dilution over the dilutions in range ({in_range}), is "
        f"{_number(result['concentration'])} "
        f"{unit} ({percent} % CI {_number(low)} to {_number(high)})"
        + (
            f", {_number(result['concentration'] / result['volume_ul'])} beads per µL for a frame imaging "
            f"{result['volume_ul']:g} µL."
            if result["volume_ul"]
            else "; give dilution.volume_ul (the volume one frame images) for beads per µL."
        )
    )
    saturated = [g for g in groups if g["status"] == "saturated"]
    disagreeing = [g for g in groups if g["status"] == "disagrees"]
    if saturated:
        names = ", ".join(f"{_number(g['dilution'])}x" for g in saturated)
        short = max(-g["deviation"] for g in saturated)
        text.append(f"Counts stop scaling above about {_number(result['scales_up_to'])} beads per frame: the densest "
                    f"dilution(s) ({names}) count up to {100 * short:.0f} % fewer beads than the series predicts "
                    "(touching beads merge or hide each other); leave them out of the concentration or image them "
                    "more diluted.")
    if disagreeing:
        names = ", ".join(f"{_number(g['dilution'])}x ({100 * g['deviation']:+.0f} %)" for g in disagreeing)
        text.append(f"Disagreeing with the series: {names}. Check these groups' frames (pipetting, focus, debris, "
                    "or a mislabelled dilution).")
    if not saturated and not disagreeing:
        text.append("Every dilution agrees with the series within its interval or the tolerance.")
    return " ".join(text)


def markdown(result: dict) -> str:
    """The report as Markdown: the paragraph, the table, the figure."""
    percent = round(100 * result["confidence"])
    lines = [
        "# Dilution series",
        "",
        summary(result),
        "",
        "![count per frame against dilution](dilution_report.png)",
        "",
        f"| dilution | frames | beads per frame (mean ± sd) | count × dilution | {percent} % CI | deviation | status |",
        "|---|---|---|---|---|---|---|",
    ]
    for g in result["groups"]:
        lines.append(f"| {_number(g['dilution'])}x | {g['frames']} | {g['mean_count']:.1f} ± {g['std_count']:.1f} | "
                     f"{_number(g['concentration'])} | {_number(g['ci_low'])}–{_number(g['ci_high'])} | "
                     f"{100 * g['deviation']:+.1f} % | {g['status']} |")
    return "\n".join(lines) + "\n"
