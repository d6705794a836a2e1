"""A manifest per data set: one row per image (files, shape, dtype, intensity range, bead count), cached.

Built once in parallel with a progress bar and kept beside the data (``<root>/.beadseg/``), or in
``$BEADSEG_CACHE_DIR`` (default ``~/.cache/beadseg``) when the data folder is read-only. A cached row is
reused while its files keep their size and modification time; only changed or new files are read again.
Split, stratification and normalisation work from the manifest alone, so no image is held in memory.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from rich.progress import track

from beadseg.data.io import file_stamp
from beadseg.files import atomic_write

VERSION = 1
PARALLEL_FROM = 32  # fewer files than this are measured in-process (a pool costs more than it saves)


def cache_dir() -> Path:
    return Path(os.environ.get("BEADSEG_CACHE_DIR") or Path.home() / ".cache" / "beadseg")


def manifest_path(root: Path, key: str) -> Path:
    """``<root>/.beadseg/manifest-<key>.json`` when the data folder is writable, else a file in the cache folder."""
    key = re.sub(r"[^\w.-]+", "_", key)  # a mask folder given as a path must not become sub-folders
    beside = root / ".beadseg" / f"manifest-{key}.json"
    try:
        beside.parent.mkdir(exist_ok=True)
        if os.access(beside.parent, os.W_OK):
            return beside
    except OSError:
        pass
    digest = hashlib.sha1(f"{root.resolve()}|{key}".encode()).hexdigest()[:16]
    return cache_dir() / "manifests" / f"{root.name}-{digest}.json"


def image_stats(image: np.ndarray) -> dict:
    """What normalisation and the split need to know of an image without reading it again."""
    return {"height": int(image.shape[0]), "width": int(image.shape[1]), "dtype": str(image.dtype),
            "vmin": float(image.min()), "vmax": float(image.max())}


def _write_atomic(path: Path, text: str) -> None:
    with atomic_write(path) as partial:
        partial.write_text(text)


def build_manifest(items: list[dict], measure: Callable[[dict], dict], path: Path, workers: int | None = None,
                   description: str = "indexing images") -> list[dict]:
    """Rows for ``items`` (dicts with ``name`` and ``files``: role -> path), measured by ``measure(item)``
    (a picklable function returning the row's statistics) where the cache at ``path`` has no current row."""
    cached: dict[str, dict] = {}
    if path.is_file():
        try:
            stored = json.loads(path.read_text())
            if stored.get("version") == VERSION:
                cached = {row["name"]: row for row in stored["rows"]}
        except (json.JSONDecodeError, KeyError, TypeError):
            cached = {}  # a damaged cache is rebuilt, never trusted
    rows: list[dict | None] = []
    todo: list[int] = []
    for item in items:
        stamps = {role: file_stamp(file) for role, file in item["files"].items()}
        old = cached.get(item["name"])
        if old and old.get("files") == {r: str(f) for r, f in item["files"].items()} and old.get("stamps") == stamps:
            rows.append(old)
        else:
            rows.append(None)
            todo.append(len(rows) - 1)
        item["stamps"] = stamps
    if todo:
        jobs = [items[i] for i in todo]
        workers = workers or os.cpu_count() or 1
        if workers > 1 and len(jobs) >= PARALLEL_FROM:
            with ProcessPoolExecutor(workers) as pool:
                measured = list(track(pool.map(measure, jobs, chunksize=8), total=len(jobs), description=description))
        else:
            measured = [measure(job) for job in track(jobs, description=description, disable=len(jobs) < PARALLEL_FROM)]
        for index, stats in zip(todo, measured):
            item = items[index]
            rows[index] = {
                "name": item["name"],
                "files": {r: str(f) for r, f in item["files"].items()},
                "stamps": item["stamps"],
                **{k: v for k, v in item.items() if k not in ("name", "files", "stamps")},
                **stats,
            }
    if todo or len(cached) != len(rows):
        _write_atomic(path, json.dumps({"version": VERSION, "rows": rows}))
    return rows  # type: ignore[return-value]
