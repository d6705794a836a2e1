"""The leave-capture-out benchmark on the lab's real images (skipped where the data are absent)."""

import runpy
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from beadseg.data.folder import FolderSource
from beadseg.datasets.datamodule import BeadDataModule

ROOT = Path(__file__).resolve().parents[1]


def test_folds_never_put_a_capture_on_both_sides(real_data):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from real_microbeads import CAPTURE, captures

    folds = captures(real_data)
    assert len(folds) == 7
    source = FolderSource(real_data)
    for capture in folds:
        datamodule = BeadDataModule(source, group_by=CAPTURE, test_groups=[capture], val_fraction=0.2)
        datamodule.setup()
        sides = defaultdict(set)
        for row in datamodule.split_table:
            sides[row["group"]].add(row["split"])
        assert sides[capture] == {"test"}
        assert all(len(s) == 1 for s in sides.values()) and sum(s == {"val"} for s in sides.values()) >= 1


@pytest.mark.slow
def test_tiny_benchmark_runs_end_to_end(real_data, tmp_path, monkeypatch, capsys):
    # the script's own main, in this process (it trains and evaluates in its process anyway): no 8 s of imports
    monkeypatch.setattr(sys, "argv", ["real_microbeads.py", "--tiny", "--data", str(real_data), "--work",
                                      str(tmp_path / "work"), "--output", str(tmp_path / "table.md")])
    runpy.run_path(str(ROOT / "benchmarks" / "real_microbeads.py"), run_name="__main__")
    printed = capsys.readouterr().out
    assert "| **overall** | model |" in printed and "| **overall** | classical |" in printed
    assert (tmp_path / "work").is_dir() and not (tmp_path / "table.md").exists()  # tiny runs publish no table


def test_reusing_a_run_never_writes_over_it(real_data, tmp_path, monkeypatch):
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "results.json").write_text("[]")
    monkeypatch.setattr(sys, "argv", ["real_microbeads.py", "--data", str(real_data), "--reuse", str(earlier),
                                      "--work", str(earlier), "inference.tta=true"])
    with pytest.raises(SystemExit, match="is the --reuse folder"):
        runpy.run_path(str(ROOT / "benchmarks" / "real_microbeads.py"), run_name="__main__")
    assert (earlier / "results.json").read_text() == "[]" and sorted(earlier.iterdir()) == [earlier / "results.json"]
