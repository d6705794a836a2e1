"""Runs never collide and always say how they ended; bad input is named, never counted."""

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from scipy.ndimage import gaussian_filter

from beadseg.cli.app import quote_values
from beadseg.data.io import BeadDataError, mask_kind, open_image, read_image, read_mask
from beadseg.data.synthetic import render_beads
from beadseg.training.task import StopOnSignal, train
from tests.helpers import BIN, table, write_pair


def test_last_checkpoint_is_the_last_epoch_even_without_improvement(compose_config, tmp_path):
    # lr=0: the model never changes, validation never improves after epoch 0
    result = train(compose_config("train", ["debug=fast", "model.base_channels=4", "optimizer.lr=1e-12",
                                            "trainer.max_epochs=3", f"paths.output_dir={tmp_path}"]))
    assert torch.load(result["checkpoint"], map_location="cpu", weights_only=True)["epoch"] == 0
    assert torch.load(result["last_checkpoint"], map_location="cpu", weights_only=True)["epoch"] == 2
    assert json.loads((tmp_path / "result.json").read_text())["status"] == "completed"


@pytest.mark.slow
def test_two_runs_started_in_the_same_second_get_their_own_directories(tmp_path):
    commands = [[BIN / "beadseg-synth", f"out={tmp_path / name}", "n=1", "size=16"] for name in ("a", "b")]
    env = {**os.environ, "BEADSEG_LOG_DIR": str(tmp_path / "outputs")}
    processes = [subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
                 for command in commands]
    assert all(process.wait() == 0 for process in processes)
    runs = sorted((tmp_path / "outputs" / "synth" / "runs").iterdir())
    assert len(runs) == 2 and runs[0].name[:19] <= runs[1].name[:19]


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["kill", "ctrl-c"])
def test_a_stopped_run_records_how_to_resume(tmp_path, stop):
    run = tmp_path / "run"
    process = subprocess.Popen([BIN / "beadseg-train", "model.base_channels=4", "data.source.n_images=8",
                                "data.source.image_size=64", "data.patch_size=32", "trainer.max_epochs=500",
                                "callbacks.image_grid=null", f"hydra.run.dir={run}"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (run / "checkpoints" / "last.ckpt").exists() and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)
    process.send_signal(stop)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode != 0
    result = json.loads((run / "result.json").read_text())
    assert result["status"] == "interrupted" and Path(result["last_checkpoint"]).is_file(), (result, stderr[-3000:])
    assert result["best_score"] is not None and Path(result["checkpoint"]).is_file() and result["best_epoch"] >= 1
    assert f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}" in result["resume"] and "data.source.n_images=8" in result["resume"]
    assert "resume with: beadseg-train" in stderr


def test_a_swallowed_stop_signal_stops_training_at_the_next_batch():
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach only the main thread")
    stop, before = StopOnSignal(), signal.getsignal(signal.SIGINT)
    stop.on_train_batch_end()  # no signal, no stop
    with stop.installed():
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
        except KeyboardInterrupt:
            pass  # as Python does when the signal lands in a finaliser
        with pytest.raises(KeyboardInterrupt):
            stop.on_validation_batch_end()
    assert signal.getsignal(signal.SIGINT) is before  # the handler is put back


def test_nan_in_a_memory_mapped_frame_is_refused_by_name(tmp_path):
    image = np.ones((256, 256), np.float32)
    image[100:110, 100:110] = np.nan
    tifffile.imwrite(tmp_path / "nan.tif", image)
    with pytest.raises(BeadDataError, match=r"nan\.tif holds NaN"):
        open_image(tmp_path / "nan.tif")


@pytest.mark.slow
def test_duplicate_stems_in_an_input_folder_are_refused_by_name(tmp_path, compose_config):
    from beadseg.inference.predict import predict

    image, _ = render_beads(np.random.default_rng(0), 64, 5, "brightfield", bit_depth=8)
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / "sample.tif", image)
    import imageio.v3 as iio

    iio.imwrite(tmp_path / "in" / "sample.png", image)
    with pytest.raises(BeadDataError, match="sample.png, sample.tif"):  # a ValueError: the CLI's one line
        predict(compose_config("predict", ["method=classical", f"input={tmp_path / 'in'}", f"output={tmp_path / 'o'}",
                                           f"paths.output_dir={tmp_path / 'h'}"]))
    assert not (tmp_path / "o" / "counts.csv").exists()


def test_blurred_masks_are_refused_and_label_images_up_to_255_accepted(tmp_path):
    _, labels = render_beads(np.random.default_rng(1), 128, 60, "brightfield", bit_depth=8)
    blurred = (gaussian_filter((labels > 0).astype(float), 1.0) * 252).round().astype(np.uint8)
    tifffile.imwrite(tmp_path / "blurred.tif", blurred)
    with pytest.raises(BeadDataError, match=r"blurred\.tif is neither binary nor instance labels"):
        read_mask(tmp_path / "blurred.tif")
    high = np.where(labels > 0, labels + 200, 0).clip(0, 255).astype(np.uint8)  # labels 201..255
    assert mask_kind(high) == "labels" and mask_kind((labels > 0).astype(np.uint8) * 255) == "binary"


def test_eval_counts_label_masks_with_gaps_and_names_a_blurred_mask(compose_config, tmp_path):
    from beadseg.evaluation.evaluate import evaluate

    labels = np.zeros((64, 64), np.uint16)
    for value, (y, x) in zip((1, 3, 4), ((10, 10), (30, 40), (50, 20))):  # label 2 is missing
        labels[y - 3 : y + 4, x - 3 : x + 4] = value
    image = (1000 + 20000 * (labels > 0)).astype(np.uint16)
    write_pair(tmp_path / "gaps", "a", image, labels)
    cfg = compose_config("eval", ["method=classical", f"data.root={tmp_path / 'gaps'}", f"output={tmp_path / 'e'}"])
    metrics = evaluate(cfg)["metrics"]
    assert metrics["count"]["total_true"] == 3 and metrics["objects"]["centroid"]["f1"] == 1.0
    write_pair(tmp_path / "blur", "b", image, (gaussian_filter((labels > 0) * 1.0, 1) * 250).astype(np.uint8))
    with pytest.raises(BeadDataError, match=r"b\.tif is neither binary"):
        evaluate(compose_config("eval", ["method=classical", f"data.root={tmp_path / 'blur'}", f"output={tmp_path / 'f'}"]))


def test_empty_non_image_and_tiny_files_are_named_for_what_they_are(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.png").write_text("not an image")
    import imageio.v3 as iio

    iio.imwrite(tmp_path / "dot.png", np.zeros((1, 1), np.uint8))
    for name, reason in (("empty.png", "is empty"), ("notes.png", "is not an image"), ("dot.png", "1x1 px: too small")):
        with pytest.raises(BeadDataError, match=reason) as error:
            read_image(tmp_path / name)
        assert "pip install" not in str(error.value)


@pytest.mark.slow
def test_paths_with_spaces_and_accents_need_no_quotes(tmp_path):
    assert quote_values(["input=/data/my beads", "out=/données", "a=b", "x='q r'", "-m"]) == \
        ["input='/data/my beads'", "out='/données'", "a=b", "x='q r'", "-m"]
    out = tmp_path / "my beads é"
    done = subprocess.run([BIN / "beadseg-synth", f"out={out}", "n=1", "size=16", f"hydra.run.dir={tmp_path / 'h'}"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-1500:]
    assert len(list((out / "images").iterdir())) == 1


def test_masks_that_are_class_maps_or_all_bead_are_named(tmp_path):
    classes = np.zeros((40, 40), np.uint8)
    for index, (y, x) in enumerate(((5, 5), (5, 25), (25, 5), (25, 25), (15, 15), (33, 33))):
        classes[y : y + 4, x : x + 4] = 1 + index % 2  # values 0, 1, 2: each class in several places
    tifffile.imwrite(tmp_path / "classes.tif", classes)
    with pytest.raises(BeadDataError, match="class map"):
        read_mask(tmp_path / "classes.tif")
    tifffile.imwrite(tmp_path / "full.tif", np.full((40, 40), 255, np.uint8))
    with pytest.raises(BeadDataError, match="every pixel as bead"):
        read_mask(tmp_path / "full.tif")


def test_a_tiny_tiff_and_a_looping_link_are_named_not_predicted(tmp_path):
    from beadseg.data.io import list_images

    folder = tmp_path / "in"
    folder.mkdir()
    tifffile.imwrite(folder / "tiny.tif", np.zeros((1, 1), np.uint8))  # uncompressed: the memory-map path
    with pytest.raises(BeadDataError, match="too small"):
        open_image(folder / "tiny.tif")
    (folder / "loop.png").symlink_to(folder / "loop.png")
    assert folder / "loop.png" in list_images(folder)
    with pytest.raises(BeadDataError, match="link that leads nowhere"):
        read_image(folder / "loop.png")


def test_prediction_names_dangling_and_looping_links_and_goes_on(tmp_path, compose_config):
    """The README's promise: such files are named in errors.csv and skipped (the resume fingerprint stats every
    file first, and stopped the run with Errno 2 / 40)."""
    from beadseg.inference.predict import predict

    folder = tmp_path / "in"
    folder.mkdir()
    tifffile.imwrite(folder / "beads.tif", render_beads(np.random.default_rng(0), 64, 5, "fluorescence", bit_depth=8)[0])
    (folder / "gone.tif").symlink_to(tmp_path / "deleted.tif")
    (folder / "loop.png").symlink_to(folder / "loop.png")
    out = tmp_path / "out"
    result = predict(compose_config("predict", [f"input={folder}", f"output={out}", f"paths.output_dir={out}",
                                                "method=classical"]))
    assert result["done"] == 1 and table(out / "counts.csv")[0]["image"] == "beads"
    errors = {Path(row["image"]).name: row["error"] for row in table(out / "errors.csv")}
    assert set(errors) == {"gone.tif", "loop.png"} and all("link" in error for error in errors.values())


def test_qc_on_a_training_folder_checks_its_images_not_its_masks(tmp_path):
    from beadseg.analysis.qc import QCThresholds, run_qc
    from beadseg.beads.classical import detect_beads

    for index in range(3):
        image, labels = render_beads(np.random.default_rng(index), 64, 8, "brightfield", bit_depth=8)
        write_pair(tmp_path / "data", f"f{index}", image, (labels > 0).astype(np.uint8) * 255)
    run_qc(tmp_path / "data", tmp_path / "qc", QCThresholds(1, 8.0, 2.0, 0.005, 0.5), detect_beads, workers=1)
    checked = (tmp_path / "qc" / "qc.csv").read_text()
    assert checked.count("\n") == 4 and "masks" not in checked and checked.count("images") >= 3


def test_a_training_run_stopped_by_bad_data_records_it(tmp_path):
    for index in range(3):
        write_pair(tmp_path / "data", f"f{index}", np.zeros((32, 32), np.uint8), np.zeros((32, 32), np.uint8))
    done = subprocess.run([BIN / "beadseg-train", "data=folder", f"data.root={tmp_path / 'data'}",
                           f"hydra.run.dir={tmp_path / 'run'}"], capture_output=True, text=True)
    assert done.returncode == 1 and "every mask" in done.stderr
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["status"] == "failed" and "every mask" in result["error"]


@pytest.mark.slow
def test_a_checkpoint_save_killed_half_way_leaves_the_one_before_it(tmp_path, monkeypatch):
    from pytorch_lightning.plugins import TorchCheckpointIO

    from beadseg.training.callbacks import AtomicCheckpointIO

    target = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"epoch": 1}, target)

    def killed_half_way(self, checkpoint, path, storage_options=None):
        Path(path).write_bytes(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(TorchCheckpointIO, "save_checkpoint", killed_half_way)
    with pytest.raises(KeyboardInterrupt):
        AtomicCheckpointIO().save_checkpoint({"epoch": 2}, target)
    assert torch.load(target, weights_only=True) == {"epoch": 1} and os.listdir(tmp_path) == ["last.ckpt"]


def interrupted_training(compose_config, run: Path) -> dict:
    """A short training run in ``run`` that a planted stop interrupts: its ``result.json``."""
    with pytest.raises(SystemExit):
        train(compose_config("train", ["debug=fast", "model.base_channels=4", "trainer.max_epochs=6",
                                       f"paths.output_dir={run}"]))
    result = json.loads((run / "result.json").read_text())
    assert result["status"] == "interrupted", result
    return result


def test_a_stop_while_a_new_best_is_written_records_the_best_on_disk(compose_config, tmp_path, monkeypatch):
    from beadseg.training.callbacks import AtomicCheckpointIO

    write = AtomicCheckpointIO.save_checkpoint
    named = []

    def stopped_on_the_second_best(self, checkpoint, path, storage_options=None):
        if Path(path).name.startswith("epoch"):
            named.append(str(path))
            if len(named) == 2:  # Lightning has already named it the best; the stop lands before it is on disk
                raise KeyboardInterrupt
        write(self, checkpoint, path, storage_options)

    monkeypatch.setattr(AtomicCheckpointIO, "save_checkpoint", stopped_on_the_second_best)
    result = interrupted_training(compose_config, tmp_path)
    assert len(named) == 2 and not Path(named[1]).exists()  # the fault was planted
    assert Path(result["checkpoint"]) == Path(named[0]).resolve() and Path(result["checkpoint"]).is_file()
    assert result["best_epoch"] == torch.load(named[0], map_location="cpu", weights_only=True)["epoch"] + 1


def test_a_stop_after_a_new_best_replaced_the_old_one_records_the_new_one(compose_config, tmp_path, monkeypatch):
    from pytorch_lightning.plugins import TorchCheckpointIO

    from beadseg.training.callbacks import AtomicCheckpointIO

    removed = []

    def stopped_once_the_old_best_is_gone(self, path):
        TorchCheckpointIO.remove_checkpoint(self, path)
        removed.append(str(path))
        raise KeyboardInterrupt  # the new best is on disk; the callback's own hooks have not run yet

    monkeypatch.setattr(AtomicCheckpointIO, "remove_checkpoint", stopped_once_the_old_best_is_gone)
    result = interrupted_training(compose_config, tmp_path)
    assert len(removed) == 1 and not Path(removed[0]).exists()  # the fault was planted
    best = list((tmp_path / "checkpoints").glob("epoch*.ckpt"))
    assert len(best) == 1, result
    assert Path(result["checkpoint"]) == best[0].resolve()
    assert result["best_epoch"] == torch.load(best[0], map_location="cpu", weights_only=True)["epoch"] + 1 >= 2


def test_a_tuned_checkpoint_save_killed_half_way_blocks_no_retry(tmp_path, monkeypatch):
    from beadseg.checkpoint import read_checkpoint, write_tuned_checkpoint
    from beadseg.pretrained import CHECKPOINT

    source = tmp_path / "epoch001.ckpt"
    source.write_bytes(CHECKPOINT.read_bytes())
    save = torch.save

    def killed_half_way(content, path):
        Path(path).write_bytes(b"PK\x03\x04 half")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", killed_half_way)
    with pytest.raises(KeyboardInterrupt):
        write_tuned_checkpoint(source, 0.4, tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["epoch001.ckpt"]  # nothing half-written is left to block a retry
    monkeypatch.setattr(torch, "save", save)
    written = write_tuned_checkpoint(source, 0.4, tmp_path)
    assert read_checkpoint(written)["hyper_parameters"]["threshold"] == 0.4
    with pytest.raises(FileExistsError, match="exists already"):
        write_tuned_checkpoint(source, 0.6, tmp_path)
