"""Helpers the test modules share (fixtures live in conftest.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import tifffile

from beadseg.tables import read_csv as table  # noqa: F401 - the rows of a CSV file, closed again

BIN = Path(sys.executable).parent  # where this environment's beadseg-* commands are


def write_pair(root: Path, name: str, image: np.ndarray, mask: np.ndarray) -> None:
    """``images/<name>.tif`` and ``masks/<name>.tif`` under ``root``: one pair of a folder data set."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(root / "images" / f"{name}.tif", image)
    tifffile.imwrite(root / "masks" / f"{name}.tif", mask)
