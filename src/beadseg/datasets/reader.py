"""Items read on demand: from a source's manifest rows, prepared, kept in a bounded cache.

Datasets built on :class:`OnDemand` hold rows, not images, so they pickle cheaply into loader workers and
DDP ranks, each of which reads only the items its sampler hands it.
"""

from __future__ import annotations

import csv
import logging
import os
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from beadseg.data.io import BeadDataError
from beadseg.system import usable_cpus

log = logging.getLogger(__name__)


def _nbytes(value: Any) -> int:
    if isinstance(value, np.memmap):
        return 0  # memory maps are not cached: their pages would stay resident
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, (tuple, list)):
        return sum(map(_nbytes, value))
    return 0


def record_error(errors_csv: Path | None, name: str, error: Exception) -> None:
    """Append one row to ``errors.csv`` (one short append per row: safe from several loader workers)."""
    log.warning("skipped %s: %s", name, error)
    if errors_csv is None:
        return
    errors_csv.parent.mkdir(parents=True, exist_ok=True)
    new = not errors_csv.exists()
    with open(errors_csv, "a", newline="") as handle:
        writer = csv.writer(handle)
        if new:
            writer.writerow(["image", "error"])
        writer.writerow([name, str(error)])


class OnDemand:
    """``rows[i]`` read by ``source.read`` and turned into an item by ``prepare``; the last items are kept
    while they fit in ``cache_mb`` (per process). A row whose file fails to read (gone, changed, damaged)
    is named on the console and in ``errors_csv`` and replaced by the next readable row."""

    def __init__(self, source, rows: list[dict], prepare: Callable[[Any, dict], Any], cache_mb: float = 512,
                 errors_csv: str | Path | None = None) -> None:
        self.source, self.rows, self.prepare = source, rows, prepare
        self.cache_bytes = int(cache_mb * 2**20)
        self.errors_csv = Path(errors_csv) if errors_csv else None
        self._cache: OrderedDict[int, Any] = OrderedDict()
        self._cached_bytes = 0
        self._bad: set[int] = set()

    def __len__(self) -> int:
        return len(self.rows)

    def __getstate__(self) -> dict:  # workers start with an empty cache
        return {**self.__dict__, "_cache": OrderedDict(), "_cached_bytes": 0}

    def _read(self, position: int) -> Any:
        if position in self._cache:
            self._cache.move_to_end(position)
            return self._cache[position]
        row = self.rows[position]
        item = self.prepare(self.source.read(row), row)
        size = _nbytes(item)
        if 0 < size <= self.cache_bytes:
            self._cache[position] = item
            self._cached_bytes += size
            while self._cached_bytes > self.cache_bytes:
                self._cached_bytes -= _nbytes(self._cache.popitem(last=False)[1])
        return item

    def __getitem__(self, position: int) -> Any:
        for offset in range(len(self.rows)):
            candidate = (position + offset) % len(self.rows)
            if candidate in self._bad:
                continue
            try:
                return self._read(candidate)
            except (BeadDataError, OSError) as error:
                self._bad.add(candidate)
                record_error(self.errors_csv, self.rows[candidate]["name"], error)
        raise BeadDataError(f"none of the {len(self.rows)} images could be read (see {self.errors_csv or 'the log'})")


def worker_count(num_workers: int | str) -> int:
    """``auto``: on a GPU, workers keep it fed; on a small CPU box they would steal cores from the model."""
    if num_workers != "auto":
        return int(num_workers)
    import torch

    return min(8, usable_cpus() - 1) if torch.cuda.is_available() else 0


class SeededTransforms:
    """Randomness seeded per process (``seed``, DDP rank, loader worker): albumentations pipelines and ``rng``
    draw reproducibly, and no two workers draw the same patches."""

    def __init__(self, seed: int, *pipelines) -> None:
        self.seed, self.pipelines = seed, [p for p in pipelines if p is not None]
        self.rng = np.random.default_rng(seed)
        self._seeded_for: tuple[int, int] | None = None

    def ensure(self) -> None:
        from torch.utils.data import get_worker_info  # here: post-processing workers import this module without torch

        info = get_worker_info()
        key = (int(os.environ.get("RANK", 0)), info.id if info else -1)
        if key != self._seeded_for:
            process_seed = self.seed + 1009 * key[0] + key[1] + 1
            for pipeline in self.pipelines:
                pipeline.set_random_seed(process_seed)
            self.rng = np.random.default_rng(process_seed)
            self._seeded_for = key
