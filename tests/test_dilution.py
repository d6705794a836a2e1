"""The dilution-series report on series with a known concentration."""

import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from beadseg.analysis.dilution import DilutionSeries
from tests.helpers import table

DILUTIONS = (100, 200, 400, 800, 1600)


def series(concentration: float, frames: int = 10, seed: int = 0, scale: dict | None = None) -> list[dict]:
    """Poisson counts per frame at each dilution; ``scale`` multiplies a group's counts (a planted fault)."""
    rng = np.random.default_rng(seed)
    return [{"image": f"{d}x_capture_{i}", "count": int(rng.poisson(concentration / d) * (scale or {}).get(d, 1.0))}
            for d in DILUTIONS for i in range(frames)]


def test_a_proportional_series_recovers_its_concentration_within_the_interval():
    hits = 0
    for seed in range(20):
        result = DilutionSeries().report(series(40_000, seed=seed), r"^(\d+)x_")
        low, high = result["concentration_ci"]
        hits += low <= 40_000 <= high
        assert all(g["status"] == "ok" for g in result["groups"])
        assert result["slope"]["low"] < -0.9 and result["slope"]["high"] > -1.1
    assert hits >= 17  # a 95 % interval: about 19 of 20


def test_a_planted_outlier_group_and_a_saturated_dense_end_are_flagged():
    counts = series(40_000, scale={400: 1.6, 100: 0.55})
    result = DilutionSeries().report(counts, r"^(\d+)x_")
    status = {g["dilution"]: g["status"] for g in result["groups"]}
    assert status == {100: "saturated", 200: "ok", 400: "disagrees", 800: "ok", 1600: "ok"}
    low, high = result["concentration_ci"]
    assert low <= 40_000 <= high  # taken from the groups that agree
    assert result["scales_up_to"] == pytest.approx(200, rel=0.1)  # the densest group still in range: 200 per frame


def test_concentration_per_microlitre_and_a_clear_error_without_numeric_groups():
    result = DilutionSeries(volume_ul=0.02).report(series(40_000), r"^(\d+)x_")
    assert result["groups"][0]["per_ul"] == pytest.approx(result["groups"][0]["concentration"] / 0.02)
    with pytest.raises(ValueError, match="group_regex"):
        DilutionSeries().report([{"image": "a_1", "count": 3}, {"image": "b_1", "count": 4}], r"^(\w)_")


@pytest.mark.slow
def test_predict_with_a_dilution_regex_writes_the_report(tmp_path):
    from beadseg.data.synthetic import render_beads

    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for dilution in (100, 200, 400):
        for frame in range(2):
            image, _ = render_beads(rng, 128, int(160 / dilution * 40), "fluorescence", bit_depth=8, cluster_fraction=0.0)
            iio.imwrite(folder / f"{dilution}x_frame{frame}.png", image)
    out = tmp_path / "out"
    done = subprocess.run([str(Path(sys.executable).parent / "beadseg-predict"), f"input={folder}", f"output={out}",
                           "method=classical", r"group_regex='^(\d+)x_'"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    rows = list(table(out / "dilution_report.csv"))
    assert [float(row["dilution"]) for row in rows] == [100.0, 200.0, 400.0]
    assert (out / "dilution_report.png").stat().st_size > 10_000
    text = (out / "dilution_report.md").read_text()
    assert "slope" in text and "count × dilution" in text and "dilution report" in done.stdout
    assert "over the dilutions in range (100x, 200x, 400x)" in text  # named, not left to guess
    summary = next(line for line in done.stdout.splitlines() if line.startswith("beadseg-predict: 6 images"))
    assert ", 3 groups in group_counts.csv ->" in summary and "group_counts.csv, masks/" in summary


def test_group_counts_sort_dilutions_as_numbers_with_the_sample_sd(tmp_path):
    """Issue 29: group_counts.csv listed 10240, 2560, 320, 5120 (text order) with a population sd."""

    import numpy as np

    from beadseg.inference.summary import group_counts

    counts = [{"image": f"{d}x_{i}", "count": c, "count_all": c + 1}
              for d, values in ((10240, [3, 5]), (2560, [40, 44, 47]), (320, [600, 640])) for i, c in enumerate(values)]
    assert group_counts(counts, r"^(\d+)x_", tmp_path) == 3
    rows = table(tmp_path / "group_counts.csv")
    assert [row["group"] for row in rows] == ["320", "2560", "10240"]
    assert float(rows[1]["std_count"]) == round(float(np.std([40, 44, 47], ddof=1)), 2) != round(float(np.std([40, 44, 47])), 2)
    assert [int(row["total_count_all"]) - int(row["total_count"]) for row in rows] == [2, 3, 2]
