"""beadseg-export format=bioimageio: the package passes bioimageio.core's own test offline, and bioimageio.core's
prediction on a new image (its preprocessing, the TorchScript weights, its postprocessing) equals beadseg's."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

core = pytest.importorskip("bioimageio.core", reason="format=bioimageio needs pip install 'beadseg[bioimageio]'")

from beadseg.beads.postprocess import PostProcess  # noqa: E402
from beadseg.checkpoint import load_network  # noqa: E402
from beadseg.data.synthetic import render_beads  # noqa: E402
from beadseg.inference.predictor import ModelPredictor, shipped_checkpoint  # noqa: E402


@pytest.mark.slow
def test_package_is_valid_and_predicts_like_beadseg(tmp_path):
    image, labels = render_beads(np.random.default_rng(5), 160, 25, "brightfield", bit_depth=8)
    beadseg = ModelPredictor(load_network(shipped_checkpoint()), tile=160)
    probability, _ = beadseg.predict(image)
    found = PostProcess(threshold=beadseg.threshold)(probability)[1].max()
    assert abs(int(found) - int(labels.max())) <= 3  # the exported model finds the drawn beads

    done = subprocess.run([str(Path(sys.executable).parent / "beadseg-export"), "format=bioimageio", "tile=128",
                           f"ckpt={shipped_checkpoint()}", f"output={tmp_path / 'pkg'}"], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    package = tmp_path / "pkg" / "beadseg_model.zip"
    summary = core.test_model(package, weight_format="torchscript")
    assert summary.status == "passed", summary.format()

    sample = core.predict(model=package, inputs={"raw": image.astype(np.float32)[None, None]})
    theirs = next(iter(sample.members.values())).data.values[0]
    channels = np.atleast_3d(np.moveaxis(theirs, 0, -1))
    ours = probability if probability.ndim == 3 else probability[None]
    assert channels.shape[-1] == len(ours)
    np.testing.assert_allclose(np.moveaxis(channels, -1, 0), ours, atol=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("normalization", [{"method": "dataset_max", "vmin": 0.0, "vmax": 40000.0},
                                           {"method": "fixed", "vmin": 1000.0, "vmax": 30000.0}])
def test_a_package_of_every_normalisation_predicts_like_beadseg(tmp_path, normalization):
    """The declared preprocessing (a linear scaling for dataset_max and fixed) and the test output agree with
    beadseg's own prediction: bioimageio.core's test passes and its prediction on a new 16-bit frame is beadseg's."""
    import torch

    from beadseg.checkpoint import read_checkpoint
    from beadseg.packaging.bioimageio import export_bioimageio

    checkpoint = read_checkpoint(shipped_checkpoint())
    checkpoint["hyper_parameters"]["normalization"] = {"method": "percentile", "low": 1.0, "high": 99.8,
                                                       **normalization}
    torch.save(checkpoint, tmp_path / "model.ckpt")
    network = load_network(tmp_path / "model.ckpt")
    package, _ = export_bioimageio(network, tmp_path / "pkg", tile=128)  # runs bioimageio.core's test: it passes
    image, _ = render_beads(np.random.default_rng(6), 128, 20, "brightfield", bit_depth=16)
    ours, _ = ModelPredictor(network, tile=128).predict(image)
    sample = core.predict(model=package, inputs={"raw": image.astype(np.float32)[None, None]})
    theirs = next(iter(sample.members.values())).data.values[0]
    np.testing.assert_allclose(theirs, ours if ours.ndim == 3 else ours[None], atol=1e-3)
