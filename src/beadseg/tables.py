"""CSV tables, written one way everywhere."""

from __future__ import annotations

import csv
from pathlib import Path

from beadseg.files import atomic_write


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
    with atomic_write(path) as partial, open(partial, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns or list(rows[0]), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path
