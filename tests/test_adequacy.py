"""The adequacy check: frame QC, a ResNet frame classifier that learns, and attributions on the beads."""

import builtins
import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from hydra.utils import instantiate
from scipy import ndimage as ndi

from beadseg.analysis.explain import attribute, explain
from beadseg.analysis.qc import run_qc
from beadseg.checkpoint import load_network
from beadseg.data.synthetic import render_beads
from beadseg.datasets.classify import SyntheticClassSource
from beadseg.training.task import train
from tests.helpers import table


def test_qc_flags_planted_frames_and_keeps_clean_ones(tmp_path, compose_config):
    frames = tmp_path / "frames"
    frames.mkdir()
    for index in range(6):
        tifffile.imwrite(frames / f"clean{index}.tif", render_beads(np.random.default_rng(index), 128, 30, "fluorescence", bit_depth=16)[0])
    tifffile.imwrite(frames / "empty.tif", render_beads(np.random.default_rng(20), 128, 0, "fluorescence", bit_depth=16)[0])
    beads = render_beads(np.random.default_rng(21), 128, 30, "fluorescence", bit_depth=16)[0].astype(float)
    noise = np.random.default_rng(0).normal(0, 1500, beads.shape)
    tifffile.imwrite(frames / "noisy.tif", np.clip(beads + noise, 0, 65535).astype(np.uint16))
    tifffile.imwrite(frames / "saturated.tif", np.clip(beads * 20, 0, 65535).astype(np.uint16))
    tifffile.imwrite(frames / "blurred.tif", ndi.gaussian_filter(beads, 3).astype(np.uint16))
    before = {p.name: p.read_bytes() for p in frames.iterdir()}
    cfg = compose_config("qc", [f"data.root={frames}"])
    result = run_qc(frames, tmp_path / "qc", instantiate(cfg.qc), instantiate(cfg.detector), workers=2, symlinks=True)
    rows = {Path(r["frame"]).stem: r for r in table(tmp_path / "qc" / "qc.csv")}
    assert rows["empty"]["flags"] == "empty" and rows["noisy"]["flags"] == "noisy"
    assert "overexposed" in rows["saturated"]["flags"] and rows["blurred"]["flags"] == "out_of_focus"
    assert all(rows[f"clean{i}"]["keep"] == "yes" and rows[f"clean{i}"]["flags"] == "" for i in range(6))
    kept = (tmp_path / "qc" / "kept.txt").read_text().split()
    assert sorted(Path(k).stem for k in kept) == [f"clean{i}" for i in range(6)] and result["kept"] == 6
    assert len(list((tmp_path / "qc" / "kept").iterdir())) == 6
    assert {p.name: p.read_bytes() for p in frames.iterdir()} == before  # nothing deleted or changed


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    from hydra import compose, initialize_config_dir

    from beadseg.config import CONFIG_DIR

    out = tmp_path_factory.mktemp("classify")
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", ["task=classify", "data=classify", "data.source.synthetic.n_images=160",
                                "trainer.max_epochs=12", "data.val_fraction=0.25", "callbacks.progress_bar=null",
                                "model.model_name=resnet10t",  # the smallest ResNet timm builds: the same verdict, sooner
                                f"paths.output_dir={out}"])
    return train(cfg), out


@pytest.mark.slow
def test_a_tiny_classifier_learns_and_states_adequacy(classifier):
    result, out = classifier
    assert result["monitor"] == "val/accuracy" and result["best_score"] >= 0.75  # chance is 0.5
    assert result["adequacy"].startswith(f"Validation accuracy {result['best_score']:.3f} clears the adequacy bar of 0.80")
    network = load_network(result["checkpoint"], "classify")
    assert network.hparams["class_names"] == ["empty", "beads"]
    assert network.hparams["net"]["architecture"] == "resnet"
    recipe = network.hparams["normalization"]
    assert recipe["method"] == "dataset_max" and recipe["vmax"] > 255  # 16-bit maximum, fitted once and stored
    assert json.loads((out / "result.json").read_text())["best_score"] == result["best_score"]


def test_the_verdict_follows_the_accuracy():
    from beadseg.metrics.adequacy import adequacy_verdict

    assert "clears the adequacy bar of 0.80: the data look learnable" in adequacy_verdict(0.85, 0.8)
    assert "stays under the adequacy bar of 0.80" in adequacy_verdict(0.62, 0.8)
    assert "clears" not in adequacy_verdict(0.79, 0.8)


def test_dataset_max_keeps_16_bit_precision():
    source = SyntheticClassSource(6, 32, bit_depth=16)
    from beadseg.data.io import Normalization

    rows = source.entries()
    norm = Normalization("dataset_max").fit([row["vmax"] for row in rows])
    brightest = max((source.read(row) for row in rows), key=lambda frame: frame.max())
    assert norm(brightest).max() == pytest.approx(1.0)
    assert len(np.unique(norm(brightest))) == len(np.unique(brightest))


@pytest.mark.slow
@pytest.mark.parametrize("method", ["integrated_gradients", "occlusion"])
def test_attributions_have_the_input_shape_and_sit_on_the_beads(classifier, method):
    import torch

    from beadseg.data.io import Normalization

    network = load_network(classifier[0]["checkpoint"], "classify")
    normalization = Normalization(**network.hparams["normalization"])
    ratios = []
    for index in (1, 3, 5, 7):  # frames with beads
        _, frame, _, labels = SyntheticClassSource(200, 64).render(1001 + 2 * index)
        image = torch.from_numpy(normalization(frame))[None, None]
        values = attribute(network.net, image, target=1, method=method)
        assert values.shape == frame.shape
        beads = ndi.binary_dilation(labels > 0, iterations=2)
        ratios.append(np.abs(values[beads]).mean() / np.abs(values[~beads]).mean())
    assert np.median(ratios) > 1.5, ratios


@pytest.mark.slow
def test_explain_writes_overlays_and_names_a_missing_captum(classifier, tmp_path, monkeypatch):
    frames = tmp_path / "frames"
    frames.mkdir()
    tifffile.imwrite(frames / "f.tif", SyntheticClassSource(4, 64).render(1)[1])
    (frames / "a_truncated.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))  # first: a bad frame does not stop it
    out = explain(classifier[0]["checkpoint"], [frames / "a_truncated.png", frames / "f.tif"], tmp_path / "explain",
                  ["integrated_gradients", "occlusion"])
    assert {p.name for p in out.iterdir()} == {"f_integrated_gradients.png", "f_occlusion.png", "predictions.csv"}
    rows = {Path(row["frame"]).name: row for row in table(out / "predictions.csv")}
    assert "a_truncated.png" in rows["a_truncated.png"]["error"] and rows["f.tif"]["predicted"] and not rows["f.tif"]["error"]
    real_import = builtins.__import__

    def no_captum(name, *args, **kwargs):
        if name.startswith("captum"):
            raise ImportError("no captum")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_captum)
    with pytest.raises(ImportError, match=r"pip install 'beadseg\[explain\]'"):
        explain(classifier[0]["checkpoint"], [frames / "f.tif"], tmp_path / "x", ["occlusion"])
