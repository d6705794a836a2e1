"""CSV tables, written one way everywhere."""

from __future__ import annotations

import csv
import os
from pathlib import Path


def read_csv(path: Path) -> list[dict]:
    """The rows of a CSV table as dicts (column -> text), the file closed again.

    Examples
    --------
    >>> import tempfile
    >>> path = write_csv([{"image": "a", "count": 3}], Path(tempfile.mkdtemp()) / "counts.csv")
    >>> read_csv(path)
    [{'image': 'a', 'count': '3'}]
    """
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def write_csv(rows: list[dict], path: Path, columns: list[str] | None = None) -> Path:
    """``rows`` as CSV with ``columns`` (default: the first row's keys); keys outside ``columns`` are left out.

    Written under a temporary name and renamed: a reader never sees half a table."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    with open(partial, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns or list(rows[0]), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(partial, path)
    return path
