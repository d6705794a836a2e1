"""Files written whole or not at all: the one way beadseg replaces a file (tables, masks, overlays, ROIs, manifests).

A file is written under a short hidden temporary name beside its target and renamed into place, so a reader (or a
resumed run) never sees half a file, and an interrupted write leaves no file it would trust.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path


def partial_path(path: str | Path) -> Path:
    """The temporary name :func:`atomic_write` writes ``path`` under: hidden, beside it, one per process, and short
    (a digest of the name), so that any name the file system takes for ``path`` (up to 255 bytes) works.

    Examples
    --------
    >>> partial_path("/out/rois/" + "a" * 240 + "_rois.zip").name.startswith(".")
    True
    >>> len(partial_path("/out/rois/" + "a" * 240 + "_rois.zip").name) < 40
    True
    """
    path = Path(path)
    digest = hashlib.sha1(path.name.encode(), usedforsecurity=False).hexdigest()[:12]
    return path.with_name(f".{digest}.{os.getpid()}.partial")


@contextlib.contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Give the temporary path to write ``path``'s content to (a file, or a folder such as an OME-Zarr); when the
    block ends, rename it into place (an earlier folder at ``path`` is removed first), or on an error remove it.

    Parameters
    ----------
    path : str or Path
        The file (or folder) to write; its parent folder is made.

    Yields
    ------
    Path
        Where to write.

    Examples
    --------
    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "counts.csv"
    >>> with atomic_write(target) as partial:
    ...     _ = partial.write_text("image,count\\n")
    >>> target.read_text(), sorted(p.name for p in target.parent.iterdir())
    ('image,count\\n', ['counts.csv'])
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(path)
    _remove(partial)
    try:
        yield partial
        if partial.is_dir():
            _remove(path)
        os.replace(partial, path)
    except BaseException:
        _remove(partial)
        raise


def remove_stale_partials(folder: str | Path) -> list[Path]:
    """Remove the temporary files (or folders) of :func:`atomic_write` under ``folder`` that a process no longer
    running left behind (a killed run's half-written file); those of a live process stay.

    Parameters
    ----------
    folder : str or Path
        The folder to search, with its subfolders.

    Returns
    -------
    list of Path
        The paths removed.

    Examples
    --------
    >>> import subprocess, sys, tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    >>> left = folder / f".0123456789ab.{int(gone.stdout)}.partial"
    >>> _ = left.write_text("half a table")
    >>> _ = partial_path(folder / "counts.csv").write_text("being written")  # this process's: it stays
    >>> [path.name == left.name for path in remove_stale_partials(folder)], len(list(folder.iterdir()))
    ([True], 1)
    """
    removed = []
    for path in Path(folder).rglob(".*.partial"):
        owner = path.name.split(".")[-2]
        if owner.isdigit() and not running(int(owner)):
            _remove(path)
            removed.append(path)
    return removed



MAX_STEM_BYTES = 245  # a frame's output files are named <stem><suffix> (``_rois.zip`` the longest suffix, 9 bytes);
                      # file systems allow 255 bytes a name


def file_stem(name: str) -> str:
    """The stem of a frame's output files: its name, or for a name too long for a file system with the suffixes
    beadseg adds (``_rois.zip``, ``.ome.zarr``...), its start and a hash of the whole (the tables keep the full name).

    Examples
    --------
    >>> file_stem("640x_a")
    '640x_a'
    >>> long = file_stem("x" * 251)
    >>> len(long.encode()), long[-9:] == "~" + hashlib.sha1(("x" * 251).encode()).hexdigest()[:8]
    (245, True)
    """
    encoded = name.encode()
    if len(encoded) <= MAX_STEM_BYTES:
        return name
    start = encoded[: MAX_STEM_BYTES - 9].decode(errors="ignore")
    return f"{start}~{hashlib.sha1(encoded).hexdigest()[:8]}"

def running(pid: int) -> bool:
    """Whether the process ``pid`` is alive (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
