"""beadseg-predict, beadseg-eval and beadseg-export end to end on a tiny checkpoint and tiny images."""

import json
import subprocess
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
import torch
from hydra import compose, initialize_config_dir

from beadseg.beads.instances import bead_instances
from beadseg.checkpoint import load_network
from beadseg.config import CONFIG_DIR
from beadseg.data.io import open_image, read_image
from beadseg.data.synthetic import render_beads
from beadseg.packaging.export import export
from beadseg.training.task import train
from tests.helpers import BIN, table, write_pair


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A run's checkpoint that finds beads: two tiny steps on from the shipped model (so it has its own split); like
    the shipped model it has the object-aware target, so predict, eval and export below all go through it."""
    from beadseg.pretrained import CHECKPOINT

    out = tmp_path_factory.mktemp("tiny_run")
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", ["debug=fast", "target=centres", "model.base_channels=16", f"init_from={CHECKPOINT}",
                                "optimizer.lr=1e-5", f"paths.output_dir={out}"])
    return Path(train(cfg)["last_checkpoint"])


@pytest.fixture
def bead_images(tmp_path) -> Path:
    """A folder of inputs: 8-bit gray PNG, RGB PNG, 16-bit TIFF (odd size), and a corrupt file."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    image, _ = render_beads(np.random.default_rng(0), 96, 12, "brightfield", bit_depth=8)
    iio.imwrite(folder / "gray.png", image)
    iio.imwrite(folder / "rgb.png", np.repeat(image[..., None], 3, axis=-1))
    deep, _ = render_beads(np.random.default_rng(1), 100, 20, "fluorescence", bit_depth=16)
    tifffile.imwrite(folder / "deep.tif", deep[:77, :91])
    (folder / "corrupt.tif").write_bytes(b"II*\x00 truncated")
    return folder


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_predict_writes_everything_and_names_the_broken_file(tiny_checkpoint, bead_images, tmp_path, predict_here):
    out = tmp_path / "pred"
    done = run(BIN / "beadseg-predict", f"ckpt={tiny_checkpoint}", f"input={bead_images}", f"hydra.run.dir={out}",
               "inference.tta=true", "inference.tile=64", "save_probability=true", "postprocess.threshold=0.3",
               "group_regex='^([a-z]+)'")
    assert done.returncode == 1 and "corrupt.tif" in done.stderr  # reported by name ...
    assert "3 images" in done.stdout  # ... and the others still processed
    counts = {row["image"]: row for row in table(out / "counts.csv")}
    assert set(counts) == {"gray", "rgb", "deep"}
    assert {row["image"] for row in table(out / "errors.csv")} == {str(bead_images / "corrupt.tif")}
    objects = list(table(out / "objects.csv"))
    drawn = {"gray": 12, "rgb": 12, "deep": int(bead_instances(render_beads(np.random.default_rng(1), 100, 20, "fluorescence",
                                                                          bit_depth=16)[1][:77, :91]).max())}
    for name, truth in drawn.items():  # the fixture finds the beads: the checks below compare real outputs
        assert abs(int(counts[name]["count"]) - truth) <= max(2, 0.25 * truth), (name, counts[name]["count"], truth)
    for name in counts:
        labels = tifffile.imread(out / "instances" / f"{name}.tif")
        assert labels.dtype == np.uint16 and labels.max() == int(counts[name]["count_all"])
        assert int(counts[name]["count"]) == sum(row["image"] == name and row["counted"] == "True" for row in objects)
        assert sum(row["image"] == name for row in objects) == labels.max()
        mask = tifffile.imread(out / "masks" / f"{name}.tif")
        assert set(np.unique(mask)) <= {0, 255} and ((mask > 0) == (labels > 0)).all()
        probability = tifffile.imread(out / "probability" / f"{name}.tif")
        assert probability.dtype == np.float16 and probability.shape == labels.shape
        centres = tifffile.imread(out / "centres" / f"{name}.tif")  # the second map of a target=centres model
        assert centres.shape == labels.shape and centres.max() > 0.2
        assert tifffile.imread(out / "uncertainty" / f"{name}.tif").shape == labels.shape
        overlay = iio.imread(out / "overlays" / f"{name}.png")
        banner = overlay.shape[0] - labels.shape[0]  # the count and the legend sit above the image
        assert overlay.shape[1:] == (labels.shape[1], 3) and banner == max(22, labels.shape[1] // 40)
        assert overlay[:banner].max() == 255 and overlay[:banner].min() == 0
        assert counts[name]["flagged"] in ("yes", "no") and float(counts[name]["mean_uncertainty"]) >= 0
    assert tifffile.imread(out / "masks" / "deep.tif").shape == (77, 91)
    groups = {row["group"]: int(row["total_count"]) for row in table(out / "group_counts.csv")}
    assert groups == {name: int(row["count"]) for name, row in counts.items()} and (out / "group_counts.png").is_file()
    with pytest.raises(FileExistsError, match="never overwrites"):  # an OSError: the command's one line
        predict_here(f"ckpt={tiny_checkpoint}", f"input={bead_images / 'gray.png'}", f"output={out}")
    assert {row["image"] for row in table(out / "counts.csv")} == {"gray", "rgb", "deep"}  # nothing lost


@pytest.mark.slow
def test_classical_model_predicts_without_a_checkpoint(bead_images, tmp_path, predict_here):
    predict_here("method=classical", f"input={bead_images / 'gray.png'}", f"output={tmp_path / 'c'}")
    count = int(table(tmp_path / "c" / "counts.csv")[0]["count"])
    assert 8 <= count <= 14  # 12 beads were drawn


@pytest.mark.slow
def test_eval_reports_metrics_and_tunes_the_threshold(tiny_checkpoint, tmp_path, compose_config):
    data = tmp_path / "data"
    for sub in ("images", "masks"):
        (data / sub).mkdir(parents=True)
    for index in range(3):
        image, labels = render_beads(np.random.default_rng(index), 96, 15, "brightfield", bit_depth=8)
        iio.imwrite(data / "images" / f"b{index}.png", image)
        tifffile.imwrite(data / "masks" / f"b{index}.tif", labels.astype(np.uint16))
    out = tmp_path / "eval"
    done = run(BIN / "beadseg-eval", f"ckpt={tiny_checkpoint}", f"data.root={data}", f"hydra.run.dir={out}",
               "write_threshold=true", "inference.tile=64")
    assert done.returncode == 0, done.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["images"] == 3 and set(metrics["pixel"]) == {"iou", "dice", "precision", "recall", "f1", "accuracy"}
    assert set(metrics["objects"]) == {"centroid", "iou", "components", "centres"}
    assert metrics["count"]["total_true"] == 45
    sweep = metrics["threshold_sweep"]  # mask thresholds at the stored peak threshold, peak thresholds at the stored mask one
    assert len({s["threshold"] for s in sweep if s["peak_threshold"] == metrics["peak_threshold"]}) >= 9
    assert len({s["peak_threshold"] for s in sweep if s["threshold"] == metrics["threshold"]}) >= 7
    assert len({s["object_f1"] for s in sweep}) > 1  # the settings make a difference: no tie decides
    best = next(s for s in sweep if (s["threshold"], s["peak_threshold"]) == (metrics["best_threshold"],
                                                                             metrics["best_peak_threshold"]))
    assert best["object_f1"] == max(s["object_f1"] for s in sweep) > 0.8
    tuned = load_network(tiny_checkpoint.with_name(f"{tiny_checkpoint.stem}.tuned.ckpt")).hparams
    assert (tuned["threshold"], tuned["peak_threshold"]) == (metrics["best_threshold"], metrics["best_peak_threshold"])
    assert (out / "worst_images.png").is_file() and (out / "threshold_sweep.png").is_file()
    rows = list(table(out / "per_image.csv"))
    assert [int(r["true_count"]) for r in rows] == [15, 15, 15]
    from beadseg.evaluation.evaluate import evaluate  # the other two in this process: no interpreter to start

    classical = evaluate(compose_config("eval", ["method=classical", f"data.root={data}", f"output={tmp_path / 'evalc'}",
                                                 f"paths.output_dir={tmp_path / 'evalc'}"]))
    assert classical["metrics"]["objects"]["centroid"]["f1"] > 0.8
    with pytest.raises(ValueError, match="is in the val split"):
        evaluate(compose_config("eval", [f"ckpt={tiny_checkpoint}", f"data.root={data}", "split=val",
                                         f"output={tmp_path / 'e3'}", f"paths.output_dir={tmp_path / 'e3'}"]))


def test_torchscript_export_matches_the_checkpoint(tiny_checkpoint, tmp_path):
    path, difference = export(str(tiny_checkpoint), "torchscript", tmp_path / "export", tile=64)
    assert difference <= 1e-4
    module = load_network(tiny_checkpoint).net
    extra = {"beadseg.json": ""}
    scripted = torch.jit.load(str(path), _extra_files=extra)
    probe = torch.rand(3, 1, 128, 96)
    with torch.no_grad():
        torch.testing.assert_close(scripted(probe), module(probe), atol=1e-4, rtol=0)
    recipe = json.loads(extra["beadseg.json"])
    assert recipe["normalization"]["method"] == "percentile" and recipe["target"] == "centres"
    assert scripted(probe).shape == (3, 2, 128, 96)  # bead mask and centre heat-map
    with pytest.raises(ValueError, match="format='pdf'"):
        export(str(tiny_checkpoint), "pdf", tmp_path / "x", tile=64)


@pytest.mark.slow
def test_onnx_export_matches_the_checkpoint(tiny_checkpoint, tmp_path):
    pytest.importorskip("onnxruntime", reason="format=onnx needs the onnx extra (pip install 'beadseg[onnx]')")
    pytest.importorskip("onnxscript", reason="format=onnx needs the onnx extra (pip install 'beadseg[onnx]')")
    path, difference = export(str(tiny_checkpoint), "onnx", tmp_path / "onnx", tile=64)
    assert path.name == "model.onnx" and difference <= 1e-4


def test_16_bit_tiff_round_trips_and_large_tiffs_open_as_memory_maps(tmp_path):
    deep = (np.arange(300 * 200, dtype=np.uint32).reshape(300, 200) % 65536).astype(np.uint16)
    tifffile.imwrite(tmp_path / "deep.tif", deep)
    opened = open_image(tmp_path / "deep.tif")
    assert isinstance(opened, np.memmap) and opened.dtype == np.uint16
    np.testing.assert_array_equal(opened, deep)
    np.testing.assert_array_equal(read_image(tmp_path / "deep.tif"), deep)


def test_eval_marks_the_checkpoints_own_training_images(tiny_checkpoint, compose_config, tmp_path):
    from beadseg.data.synthetic import SyntheticSource
    from beadseg.evaluation.evaluate import evaluate

    split = torch.load(tiny_checkpoint, map_location="cpu", weights_only=True)["beadseg_split"]
    source = SyntheticSource(40, 256, seed=0)  # the data the fixture trained on (debug=fast, default synthetic)
    trained = [index for index in range(40) if split.get(source.render(index)[0]) == "train"][:2]
    for index in trained:
        name, image, labels = source.render(index)
        (tmp_path / "d" / "images").mkdir(parents=True, exist_ok=True)
        (tmp_path / "d" / "masks").mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(tmp_path / "d" / "images" / f"{name}.tif", image)
        tifffile.imwrite(tmp_path / "d" / "masks" / f"{name}.tif", labels.astype(np.uint16))
    metrics = evaluate(compose_config("eval", [f"ckpt={tiny_checkpoint}", f"data.root={tmp_path / 'd'}",
                                              f"output={tmp_path / 'e'}", "inference.tile=128"]))["metrics"]
    assert len(trained) == 2 and metrics["training_images"] == 2


def test_near_ties_in_the_threshold_sweep_keep_the_stored_threshold():
    from beadseg.evaluation.scores import best_setting

    sweep = [{"threshold": t, "object_f1": f} for t, f in ((0.3, 0.90), (0.5, 0.951), (0.7, 0.953), (0.9, 0.9531))]
    stored = {"threshold": 0.5}
    assert best_setting(sweep, stored)["threshold"] == 0.5  # +0.002 F1 is noise: stay
    assert best_setting(sweep, stored, tolerance=0.0)["threshold"] == 0.9
    assert best_setting([{"threshold": 0.5, "object_f1": 0.8}, {"threshold": 0.8, "object_f1": 0.9}], stored)["threshold"] == 0.8
    # a centre-map model: the peak threshold is tuned beside the mask threshold, nearest the stored pair on ties
    cross = [{"threshold": 0.5, "peak_threshold": p, "object_f1": f} for p, f in ((0.1, 0.93), (0.3, 0.80), (0.5, 0.70))]
    assert best_setting(cross, {"threshold": 0.5, "peak_threshold": 0.3}) == cross[0]


def test_eval_scores_a_folder_of_saved_predictions_against_truth(compose_config, tmp_path):
    """Any tool's output: label images for some images, a binary mask for another, scored by beadseg's metrics."""
    from beadseg.evaluation.evaluate import evaluate

    truth_labels = {}
    for index in range(3):
        image, labels = render_beads(np.random.default_rng(index + 20), 96, 12, "brightfield", bit_depth=8)
        write_pair = tmp_path / "data"
        for sub in ("images", "masks"):
            (write_pair / sub).mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(write_pair / "images" / f"i{index}.tif", image)
        tifffile.imwrite(write_pair / "masks" / f"i{index}.tif", labels.astype(np.uint16))
        truth_labels[f"i{index}"] = labels
    saved = tmp_path / "saved"
    saved.mkdir()
    tifffile.imwrite(saved / "i0.tif", truth_labels["i0"].astype(np.uint16))  # perfect
    missed = truth_labels["i1"].copy()
    missed[np.isin(missed, [1, 2, 3])] = 0  # three beads missed
    tifffile.imwrite(saved / "i1.tif", missed.astype(np.uint16))
    iio.imwrite(saved / "i2.png", (truth_labels["i2"] > 0).astype(np.uint8) * 255)  # a binary mask
    metrics = evaluate(compose_config("eval", [f"predictions={saved}", f"data.root={tmp_path / 'data'}",
                                              f"output={tmp_path / 'e'}"]))["metrics"]
    rows = {row["image"]: row for row in table(tmp_path / "e" / "per_image.csv")}
    assert float(rows["i0"]["object_f1"]) == 1.0 and float(rows["i0"]["iou"]) == 1.0
    assert int(rows["i1"]["predicted_count"]) == int(rows["i1"]["true_count"]) - 3
    assert float(rows["i1"]["object_precision"]) == 1.0 and float(rows["i2"]["iou"]) == 1.0
    assert metrics["model"] == "saved predictions" and metrics["images"] == 3
    (saved / "i2.png").unlink()
    with pytest.raises(ValueError, match=r"no prediction for 1 image\(s\) .*i2"):
        evaluate(compose_config("eval", [f"predictions={saved}", f"data.root={tmp_path / 'data'}",
                                         f"output={tmp_path / 'f'}"]))


def test_the_progress_bar_counts_images_not_steps(tmp_path, compose_config, capfd):
    """5 frames in steps of 2 read 5/5, not 3/3."""
    from beadseg.data.synthetic import render_beads
    from beadseg.inference.predict import predict

    (tmp_path / "in").mkdir()
    for index in range(5):
        tifffile.imwrite(tmp_path / "in" / f"f{index}.tif",
                         render_beads(np.random.default_rng(index), 64, 5, "fluorescence", bit_depth=8)[0])
    out = tmp_path / "out"
    predict(compose_config("predict", [f"input={tmp_path / 'in'}", f"output={out}", f"paths.output_dir={out}",
                                       "method=classical", "frames_per_step=2"]))
    captured = capfd.readouterr()
    bar = (captured.out + captured.err).replace("\r", "\n")
    assert "Predicting images" in bar and "5/5" in bar and "3/3" not in bar


def test_one_eval_reads_its_checkpoint_once_and_batches_frames(tmp_path, compose_config, monkeypatch):
    """``evaluate`` reads the checkpoint once (network, thresholds, split) and sends frames through the network
    in steps of ``frames_per_step`` (prediction's batched road), with the scores of one frame at a time."""
    from beadseg.evaluation.evaluate import evaluate
    from beadseg.inference.predictor import ModelPredictor

    for index in range(3):
        image, labels = render_beads(np.random.default_rng(index), 96, 12, "brightfield", bit_depth=8)
        write_pair(tmp_path / "data", f"f{index}", image, (labels > 0).astype(np.uint8) * 255)
    loads, steps = [], []
    real_load, real_frames = torch.load, ModelPredictor.predict_frames
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(a[0]) or real_load(*a, **k))
    monkeypatch.setattr(ModelPredictor, "predict_frames",
                        lambda self, images, *a, **k: steps.append(len(images)) or real_frames(self, images, *a, **k))
    out = tmp_path / "eval"
    scored = evaluate(compose_config("eval", [f"data.root={tmp_path / 'data'}", "frames_per_step=2", f"output={out}",
                                              f"paths.output_dir={out}", "worst_images=0"]))
    assert scored["metrics"]["objects"]["centroid"]["f1"] > 0.8  # the model finds the drawn beads
    assert len(loads) == 1 and steps == [2, 1]
