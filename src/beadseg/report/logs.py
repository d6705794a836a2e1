"""Runs as their logs left them: per-epoch series from TensorBoard events or CSV, settings from .hydra/."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

EPOCH_TAGS = ("val/jaccard", "train/jaccard", "val/loss", "train/loss_epoch", "val/accuracy", "train/accuracy")


@dataclass
class RunLog:
    """One training run: its directory, overrides, settings, per-epoch series and recorded result."""

    path: Path
    overrides: list[str]
    config: dict
    series: dict[str, list[float]] = field(default_factory=dict)
    result: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return " ".join(self.overrides) or self.path.name

    def best(self, tag: str = "val/jaccard") -> tuple[float | None, int | None]:
        """The best value of an epoch-level series and its epoch, counted from 1 as training, checkpoints and
        ``result.json`` count."""
        values = self.series.get(tag) or []
        if not values:
            return None, None
        index = max(range(len(values)), key=values.__getitem__)
        return values[index], index + 1

    @property
    def learning_rate(self) -> list[float]:
        return next((v for k, v in self.series.items() if k.startswith("lr-")), [])

    def setting(self, dotted: str):
        node = self.config
        for key in dotted.split("."):
            if not isinstance(node, dict) or key not in node:
                return None
            node = node[key]
        return node


def _tensorboard_series(folder: Path) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"scalars": 0}).Reload()
    tags = [t for t in events.Tags()["scalars"] if t in EPOCH_TAGS or t.startswith("lr-")]
    return {tag: [e.value for e in sorted(events.Scalars(tag), key=lambda e: (e.step, e.wall_time))] for tag in tags}


def _csv_series(path: Path) -> dict[str, list[float]]:
    series: dict[str, list[float]] = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            for tag, value in row.items():
                if value not in ("", None) and (tag in EPOCH_TAGS or tag.startswith("lr-")):
                    series.setdefault(tag, []).append(float(value))
    return series


def read_run(path: Path) -> RunLog:
    """A run directory written by beadseg-train (one value per epoch for every epoch-level series)."""
    hydra_dir = path / ".hydra"
    overrides = (
        yaml.safe_load((hydra_dir / "overrides.yaml").read_text()) if (hydra_dir / "overrides.yaml").is_file() else []
    )
    config = yaml.safe_load((hydra_dir / "config.yaml").read_text()) if (hydra_dir / "config.yaml").is_file() else {}
    run = RunLog(path, list(overrides or []), config or {})
    if (path / "tensorboard").is_dir() and list((path / "tensorboard").glob("events.out.tfevents.*")):
        run.series = _tensorboard_series(path / "tensorboard")
    elif (path / "csv" / "metrics.csv").is_file():
        run.series = _csv_series(path / "csv" / "metrics.csv")
    if (path / "result.json").is_file():
        run.result = json.loads((path / "result.json").read_text())
    return run


def is_run(path: Path) -> bool:
    return (path / ".hydra" / "config.yaml").is_file() and ((path / "tensorboard").is_dir() or (path / "csv").is_dir())


def find_runs(root: Path) -> list[RunLog]:
    """``root`` itself when it is a run, else every run below it (a sweep: numbered job directories)."""
    if is_run(root):
        return [read_run(root)]
    candidates = sorted((p for p in root.rglob(".hydra") if is_run(p.parent)), key=lambda p: _order(p.parent, root))
    return [read_run(p.parent) for p in candidates]


def _order(path: Path, root: Path) -> tuple:
    parts = path.relative_to(root).parts
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts)


def find_baseline(root: Path) -> dict | None:
    """The newest ``metrics.json`` of a classical-baseline evaluation under ``root``, if any."""
    found = [p for p in root.rglob("metrics.json") if json.loads(p.read_text()).get("model") == "classical"]
    if not found:
        return None
    latest = max(found, key=lambda p: p.stat().st_mtime)
    return {"path": str(latest), **json.loads(latest.read_text())}
