"""The bead model shipped inside the package: loads offline, segments synthetic beads, backs the CLIs."""

import csv
import subprocess
import sys
from functools import partial
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from beadseg.data.synthetic import render_beads
from beadseg.inference.postprocess import PostProcess
from beadseg.inference.predictor import ModelPredictor, load_predictor
from beadseg.metrics.objects import ObjectMatch, match_by_centroid
from beadseg.pretrained import CHECKPOINT


def test_shipped_model_is_small_and_loads_offline():
    assert CHECKPOINT.is_file() and CHECKPOINT.stat().st_size < 8 * 2**20
    predictor = load_predictor(None, partial(ModelPredictor, tile=256))
    assert isinstance(predictor, ModelPredictor) and predictor.normalization.method == "percentile"


@pytest.mark.parametrize("modality, bit_depth", [("brightfield", 8), ("fluorescence", 16)])
def test_shipped_model_segments_synthetic_beads(modality, bit_depth):
    predictor = load_predictor(None, partial(ModelPredictor, tile=256))
    found = ObjectMatch(0, 0, 0)
    for seed in (11, 12, 14, 15):  # 60 beads in 256², many touching
        image, truth = render_beads(np.random.default_rng(seed), 256, 60, modality, bit_depth)
        probability, _ = predictor.predict(image)
        found = found + match_by_centroid(truth, PostProcess()(probability, predictor.threshold)[1], 5)
    assert found.f1 >= 0.9


@pytest.mark.slow
def test_predict_without_a_checkpoint_uses_the_shipped_model(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    iio.imwrite(folder / "beads.png", render_beads(np.random.default_rng(3), 128, 25, "brightfield", 8)[0])
    out = tmp_path / "out"
    done = subprocess.run([str(Path(sys.executable).parent / "beadseg-predict"), f"input={folder}", f"output={out}"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert 18 <= int(next(csv.DictReader(open(out / "counts.csv")))["count"]) <= 32
