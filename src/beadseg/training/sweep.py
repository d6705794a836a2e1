"""A Hydra callback that records every run (also failed ones) and keeps ``summary.csv`` at the sweep root."""

from __future__ import annotations

import json
import os
import time
import traceback
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from beadseg.tables import write_csv

SUMMARY_COLUMNS = [
    "job", "overrides", "status", "monitor", "best_score", "best_val_jaccard", "val_object_f1", "val_count_error",
    "best_epoch", "epochs_run", "wall_time_s", "checkpoint", "error",
]


def _job_key(path: Path) -> tuple:
    name = path.parent.name
    return (0, int(name)) if name.isdigit() else (1, name)


def write_summary(sweep_dir: Path) -> Path:
    """Collect every ``*/result.json`` under ``sweep_dir`` into ``sweep_dir/summary.csv`` (atomically)."""
    rows = [json.loads(path.read_text()) for path in sorted(sweep_dir.glob("*/result.json"), key=_job_key)]
    return write_csv(rows, sweep_dir / "summary.csv", SUMMARY_COLUMNS)  # atomic, one temporary file per process


class RunRecorder(Callback):
    """Adds status, overrides, wall time and any error to the run's ``result.json``; in a sweep, rewrites the
    summary."""

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.started = time.time()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """End a sweep with where its table is and how to see it, not with the last run's line."""
        sweep_dir = Path(config.hydra.sweep.dir)
        if (sweep_dir / "summary.csv").is_file():
            print(f"beadseg: sweep done: {sweep_dir / 'summary.csv'}; figures and REPORT.md with: "
                  f"beadseg-report dir={sweep_dir}")

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if os.environ.get("LOCAL_RANK", "0") != "0" or os.environ.get("NODE_RANK", "0") != "0":
            return  # the other processes of a multi-GPU run: rank 0 records it
        output_dir = Path(config.hydra.runtime.output_dir)
        result_file = output_dir / "result.json"
        record = json.loads(result_file.read_text()) if result_file.is_file() else {}
        record.update(
            job=config.hydra.job.get("num", 0),
            overrides=" ".join(config.hydra.overrides.task),
            status=job_return.status.name.lower(),
            wall_time_s=round(time.time() - getattr(self, "started", time.time()), 1),
        )
        if job_return.status == JobStatus.FAILED:
            error = job_return._return_value
            record["error"] = f"{type(error).__name__}: {error}".replace("\n", " ")
            record["traceback"] = "".join(traceback.format_exception(error))
        output_dir.mkdir(parents=True, exist_ok=True)
        result_file.write_text(json.dumps(record, indent=2, default=str))
        if config.hydra.mode == RunMode.MULTIRUN:
            write_summary(Path(config.hydra.sweep.dir))
