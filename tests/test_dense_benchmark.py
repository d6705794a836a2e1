"""The dense composite benchmark's dilution check on a composite series of one stock with exact truth."""

import csv
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from beadseg.data.synthetic import render_beads
from tests.helpers import write_pair

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from dense_composite import SERIES, SPARSE_FRAMES, STOCK_BEADS, composite_series, dilution_check  # noqa: E402


@pytest.fixture
def sparse_captures(tmp_path: Path) -> Path:
    """Two sparse captures of two 192² bright-field tiles each (30 isolated beads, binary masks)."""
    root = tmp_path / "tiles"
    for index in range(4):
        image, labels = render_beads(np.random.default_rng(index), 192, 30, "brightfield", bit_depth=8,
                                     cluster_fraction=0.0)
        write_pair(root, f"{2560 * 2 ** (index // 2)}x_cap{index // 2}_grid_r0_c{index % 2}", image,
                   ((labels > 0) * 255).astype(np.uint8))
    return root


def test_a_composite_series_holds_one_concentration_and_the_check_scores_it(sparse_captures, tmp_path):
    series = composite_series(sparse_captures, tmp_path / "series", frames=2, captures=SPARSE_FRAMES)
    beads = {dilution: [len(np.unique(tifffile.imread(path))) - 1
                        for path in sorted((series / "masks").glob(f"{dilution}x_*.tif"))] for dilution in SERIES}
    for dilution, counts in beads.items():
        assert len(counts) == 2
        # the frame is 192²: STOCK_BEADS / dilution per 512², as many as fit (the densest frames may fill up)
        asked = int(round(STOCK_BEADS / dilution) * 192**2 / 512**2)
        assert all(0.9 * asked <= count <= asked for count in counts), (dilution, counts, asked)
    lines = dilution_check(series, tmp_path / "predicted", [])
    with open(tmp_path / "predicted" / "counts.csv") as handle:
        predicted = list(csv.DictReader(handle))
    rule, every = ({d: [int(r[column]) for r in predicted if r["image"].startswith(f"{d}x_")] for d in SERIES}
                   for column in ("count", "count_all"))
    assert sum(map(sum, every.values())) >= 0.85 * sum(map(sum, beads.values()))  # the model finds the beads
    rows = {int(line.split("|")[2].strip().rstrip("x")): [cell.strip() for cell in line.split("|")[1:-1]]
            for line in lines[2:]}
    assert sorted(rows) == sorted(SERIES)
    sparse = np.mean([np.mean(rule[d]) * d for d in (2560, 5120)])
    for dilution, row in rows.items():
        assert row[:3] == ["composite", f"{dilution}x", "2"]
        assert float(row[3]) == pytest.approx(np.mean(rule[dilution]), abs=0.05)
        assert float(row[6]) == pytest.approx(np.mean(beads[dilution]), abs=0.05)
        assert row[7] == f"{sum(every[dilution]) / sum(beads[dilution]) - 1:+.1%}"
        assert row[5] == ("(sparse)" if dilution >= 2560 else f"{np.mean(rule[dilution]) * dilution / sparse - 1:+.1%}")
