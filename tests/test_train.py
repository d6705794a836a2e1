"""Training end to end in-process (debug=fast): every model, checkpoints, resuming, presets, failures."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from beadseg.checkpoint import load_network
from beadseg.config import CONFIG_DIR
from beadseg.data.sample import BeadSample
from beadseg.datasets import build_datamodule
from beadseg.training.task import train


@pytest.fixture
def run_train(compose_config, tmp_path):
    def _run(overrides: list[str], name: str = "run") -> dict:
        out = tmp_path / name
        return train(compose_config("train", ["debug=fast", f"paths.output_dir={out}", *overrides]))

    return _run


@pytest.mark.parametrize(
    "model",
    [
        ["model=unet", "model.base_channels=4"],
        ["model=attention_unet", "model.base_channels=4"],
        ["model=attention_resunet", "model.base_channels=4"],
        ["model=smp", "model.encoder=resnet18"],
    ],
    ids=lambda o: o[0],
)
def test_every_model_trains_and_writes_checkpoint_and_events(run_train, tmp_path, model):
    result = run_train(model)
    run_dir = tmp_path / "run"
    assert Path(result["checkpoint"]).is_file() and (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert (run_dir / "split.csv").read_text().startswith("name,group,bead_count,density_bin,split")
    assert f"jaccard{result['best_val_jaccard']:.4f}.ckpt" in result["checkpoint"] and result["epochs_run"] == 1


def test_tensorboard_gets_metrics_learning_rate_and_image_grids(run_train, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_train(["model.base_channels=4"])
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard")).Reload()
    scalars = set(events.Tags()["scalars"])
    for stage in ("train", "val"):
        assert {f"{stage}/{m}" for m in ("jaccard", "dice", "precision", "recall")} <= scalars
    assert {"train/loss_step", "train/loss_epoch", "val/loss", "lr-Adam"} <= scalars
    assert events.Tags()["images"] == ["val/image_truth_prediction"]
    grid = events.Images("val/image_truth_prediction")[0]
    assert grid.width == 3 * 256 + 2 * 4  # image | truth | prediction of 256² validation images, side by side
    import io

    from PIL import Image

    picture = np.asarray(Image.open(io.BytesIO(grid.encoded_image_string)).convert("L"))
    for column in range(3):  # a title over each column: text in the top strip above each panel
        assert picture[:14, 4 + column * 256 : 4 + column * 256 + 120].max() > 128


def test_the_centre_heat_map_column_is_stretched_to_its_peak():
    """Early in training the heat-map's peaks are far below 1: shown as they are, the column was nearly black."""
    from types import SimpleNamespace

    from beadseg.training.callbacks import ImageGridLogger

    grid = ImageGridLogger(every_n_epochs=1, max_images=1)
    logits = torch.full((1, 2, 16, 16), -6.0)
    logits[0, 1, 8, 8] = -2.2  # a heat-map peak of sigmoid(-2.2) = 0.1
    batch = {"image": torch.rand(1, 1, 16, 16), "mask": torch.zeros(1, 1, 16, 16)}
    trainer = SimpleNamespace(sanity_checking=False, current_epoch=0)
    grid.on_validation_batch_end(trainer, SimpleNamespace(hparams=SimpleNamespace(threshold=0.5)),
                                 {"logits": logits}, batch, 0)
    heat = grid.rows[0][..., 48:64]
    assert heat.max() == pytest.approx(1.0) and grid.panels == (4, 16)


def test_checkpoint_alone_rebuilds_the_model(run_train, tmp_path):
    run_train(["model=unet", "model.base_channels=4", "data.normalization.method=dataset_max"])
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    network = load_network(checkpoint)
    model = network.net
    assert type(model).__name__ == "UNet" and network.hparams["net"]["architecture"] == "unet"
    recipe = network.hparams["normalization"]
    assert recipe["method"] == "dataset_max" and recipe["vmax"] > 255  # fitted on mixed 8/16-bit synthetic data
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, state[f"net.{key}"])
    with torch.no_grad():
        assert model(torch.rand(1, 1, 45, 33)).shape == (1, 1, 45, 33)


def test_resume_from_last_checkpoint_continues(run_train, tmp_path):
    first = run_train(["model.base_channels=4"], name="first")
    first_state = torch.load(first["last_checkpoint"], map_location="cpu", weights_only=False)
    second = run_train(["model.base_channels=4", f"ckpt_path={first['last_checkpoint']}", "trainer.max_epochs=2"], name="second")
    second_state = torch.load(second["last_checkpoint"], map_location="cpu", weights_only=False)
    assert second["epochs_run"] == 2
    assert second_state["global_step"] == 2 * first_state["global_step"] > 0
    assert second_state["epoch"] == first_state["epoch"] + 1


def test_a_resumed_run_continues_in_its_own_directory(run_train, tmp_path, caplog):
    """``ckpt_path=<run>/checkpoints/last.ckpt`` goes on in ``<run>``: one folder of checkpoints, one TensorBoard,
    one result.json, and no "dirpath has changed" from Lightning; the command line adds ``hydra.run.dir``."""
    from beadseg.cli.app import continue_in_run

    first = run_train(["model.base_channels=4"], name="run")
    last = Path(first["last_checkpoint"])
    arguments = ["model.base_channels=4", f"ckpt_path={last}"]
    assert continue_in_run("train", arguments) == [*arguments, f"hydra.run.dir={tmp_path / 'run'}"]
    assert continue_in_run("train", [*arguments, "hydra.run.dir=elsewhere"])[-1] == "hydra.run.dir=elsewhere"
    assert continue_in_run("predict", arguments) == arguments
    second = run_train(["model.base_channels=4", f"ckpt_path={last}", "trainer.max_epochs=2",
                        "callbacks.early_stopping.patience=5"], name="run")
    assert second["epochs_run"] == 2 and second["stopped"] == "max_epochs: all 2 epochs ran"
    assert Path(second["last_checkpoint"]).parent == last.parent and Path(second["checkpoint"]).is_file()
    assert len(list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))) >= 2  # one curve, two sittings
    assert "dirpath" not in caplog.text and "dropped" not in caplog.text
    assert json.loads((tmp_path / "run" / "result.json").read_text())["epochs_run"] == 2


def test_the_result_says_why_training_stopped(run_train):
    result = run_train(["model.base_channels=4", "trainer.max_epochs=4", "callbacks.early_stopping.patience=1",
                        "callbacks.early_stopping.min_delta=2"])  # no score improves by 2: stops after patience
    assert result["epochs_run"] == 2 and result["stopped"] == (
        "early stopping at epoch 2: val/jaccard had not improved by more than 2 for 1 epochs")


def test_init_from_starts_from_another_runs_weights(run_train):
    first = run_train(["model.base_channels=4"], name="first")
    tuned = run_train(["model.base_channels=4", f"init_from={first['last_checkpoint']}", "trainer.max_epochs=1"], name="tuned")
    tuned_state = torch.load(tuned["last_checkpoint"], map_location="cpu", weights_only=False)
    assert tuned_state["epoch"] == 0  # a new schedule, not a resumed one
    with pytest.raises(ValueError, match=r"init_from=.*do not fit this model"):
        run_train(["model.base_channels=8", f"init_from={first['last_checkpoint']}"], name="misfit")


def test_a_run_directory_is_never_overwritten(run_train, tmp_path):
    first = run_train(["model.base_channels=4"])
    before = Path(first["checkpoint"]).read_bytes()
    with pytest.raises(FileExistsError, match="never overwrites a run"):
        run_train(["model.base_channels=4"])
    assert Path(first["checkpoint"]).read_bytes() == before


def test_nan_loss_stops_with_a_clear_message(run_train):
    with pytest.raises(FloatingPointError, match=r"train loss became nan at epoch 0, step \d+: lower optimizer.lr"):
        run_train(["model.base_channels=4", "optimizer=sgd", "optimizer.lr=1e30", "trainer.limit_train_batches=8"])


def test_test_split_is_evaluated_with_the_best_checkpoint(run_train):
    result = run_train(["model.base_channels=4", "data.val_fraction=0.25", "data.test_fraction=0.25"])
    assert set(result["test"]) >= {"test/jaccard", "test/dice", "test/precision", "test/recall", "test/loss"}


@pytest.mark.parametrize("preset", sorted(f"{group}={p.stem}" for group in ("experiment", "lab_params", "study")
                                           for p in (CONFIG_DIR / group).glob("*.yaml")))
def test_every_preset_composes_and_builds(compose_config, tmp_path, preset):
    cfg = compose_config("train", [preset, f"paths.output_dir={tmp_path}"])
    module = instantiate(cfg.module).eval()
    build_datamodule(cfg.data)
    instantiate(cfg.trainer)
    with torch.no_grad():  # the preset's network runs: an odd-sized image in, maps of the same size out
        assert module(torch.rand(2, 1, 72, 88)).shape == (2, cfg.target.channels, 72, 88)


def test_lab_microbead_preset_has_the_lab_settings(compose_config):
    cfg = compose_config("train", ["lab_params=microbead"])
    assert cfg.model._target_.endswith("UNet") and cfg.model.dropout == 0.3
    assert cfg.optimizer.lr == 1e-4 and cfg.data.batch_size == 32 and cfg.data.patch_size == 256
    assert cfg.loss._target_.endswith("DiceLoss") and cfg.data.val_fraction == 0.15
    assert (cfg.scheduler.scheduler.factor, cfg.scheduler.scheduler.patience, cfg.scheduler.scheduler.min_lr) == (0.5, 10, 1e-6)
    assert cfg.callbacks.early_stopping.patience == 20 and cfg.trainer.gradient_clip_val == 1.0
    mito = compose_config("train", ["lab_params=mitochondria"])
    assert mito.optimizer.lr == 1e-3 and mito.data.batch_size == 8 and mito.loss.gamma == 2.0 and mito.model.dropout == 0.0


def test_debug_fast_works_for_every_task(run_train, tmp_path):
    result = run_train(["task=classify"], name="classify")
    assert result["monitor"] == "val/accuracy" and result["epochs_run"] == 1
    assert Path(result["last_checkpoint"]).is_file()


def test_bf16_mixed_precision_on_the_cpu_runs_losses_metrics_and_tta(run_train, tmp_path):
    """No GPU here: bf16 autocast on the CPU is where the mixed-precision paths run in CI."""
    from beadseg.checkpoint import load_network
    from beadseg.data.synthetic import render_beads
    from beadseg.inference.predictor import ModelPredictor

    result = run_train(["model.base_channels=4", "trainer.precision=bf16-mixed", "trainer.accelerator=cpu"])
    assert torch.isfinite(torch.tensor(result["best_score"]))
    predictor = ModelPredictor(load_network(result["last_checkpoint"]), tile=64, tta=True, amp=True)
    image, _ = render_beads(np.random.default_rng(0), 96, 10, "brightfield", bit_depth=8)
    probability, uncertainty = predictor.predict(image)
    assert probability.dtype == np.float32 and np.isfinite(probability).all() and 0 <= probability.min() <= probability.max() <= 1
    assert uncertainty is not None and uncertainty.shape == image.shape and (uncertainty >= 0).all()


def test_object_metrics_are_logged_and_can_be_the_monitor(run_train, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from beadseg.pretrained import CHECKPOINT

    result = run_train(["target=centres", "model.base_channels=16", f"init_from={CHECKPOINT}", "optimizer.lr=1e-5",
                        "monitor=val/object_f1",
                        "trainer.max_epochs=2", "data.source.n_images=12"])
    assert "object_f1" in Path(result["checkpoint"]).name and result["val_object_f1"] == pytest.approx(result["best_score"])
    assert result["val_object_f1"] > 0.5  # a model that finds beads: the metric measures something
    assert 0 <= result["val_count_error"] < 0.5 and result["best_val_jaccard"] > 0.3
    scalars = set(EventAccumulator(str(tmp_path / "run" / "tensorboard")).Reload().Tags()["scalars"])
    assert {"val/object_f1", "val/count_error"} <= scalars


def test_a_run_tunes_its_thresholds_on_validation_and_predict_takes_the_run(run_train, tmp_path):
    from beadseg.checkpoint import read_checkpoint
    from beadseg.inference.predictor import load_predictor

    result = run_train(["target=centres", "model.base_channels=4",
                        "tune_thresholds={thresholds: [0.4, 0.6], peak_thresholds: [0.2, 0.35]}"])
    tuned = result["tuned"]
    assert result["checkpoint"].endswith(".tuned.ckpt") and Path(result["untuned_checkpoint"]).is_file()
    assert (tuned["threshold"], tuned["peak_threshold"]) in {(0.4, 0.3), (0.6, 0.3), (0.5, 0.2), (0.5, 0.35), (0.5, 0.3)}
    stored = read_checkpoint(result["checkpoint"])["hyper_parameters"]
    assert (stored["threshold"], stored["peak_threshold"]) == (tuned["threshold"], tuned["peak_threshold"])
    predictor = load_predictor(str(tmp_path / "run"))  # ckpt=<the run directory>
    assert predictor.checkpoint == result["checkpoint"] and predictor.threshold == tuned["threshold"]
    assert predictor.peak_threshold == tuned["peak_threshold"]


def test_mean_image_f1_weighs_a_sparse_frame_like_a_dense_one():
    from beadseg.training.tuning import mean_image_f1

    rows = [{"object_f1": 1.0, "true_count": 500, "predicted_count": 500},
            {"object_f1": 0.5, "true_count": 3, "predicted_count": 9},
            {"object_f1": 0.0, "true_count": 0, "predicted_count": 0}]  # empty and found empty: not scored
    assert mean_image_f1(rows) == 0.75


def test_deferred_loss_checks_name_the_step_of_the_first_nan(compose_config, tmp_path):
    """On a GPU, training losses are checked once per logging interval: the error still names the step that broke."""
    module = instantiate(compose_config("train", [f"paths.output_dir={tmp_path}"]).module)
    for step, value in enumerate((0.5, float("nan"), 0.4, float("inf"))):
        module._pending_losses.setdefault("train", []).append((step + 10, torch.tensor(value)))
        if step < 3:
            module._check_losses("train", every=4)  # not yet due: nothing read back from the device
    with pytest.raises(FloatingPointError, match=r"train loss became nan at epoch 0, step 11:"):
        module._check_losses("train", every=4)
    assert module._pending_losses["train"] == []


def test_synthetic_images_rendered_once_are_the_ones_drawn_again():
    from beadseg.data.synthetic import SyntheticSource

    source = SyntheticSource(n_images=3, image_size=64, max_debris=4)
    rows = source.entries()
    for row in rows:
        kept, fresh = source.read(row), BeadSample(*source.render(row["index"]))
        assert kept.image is source._kept[row["index"]][1]  # served from memory, not drawn again
        np.testing.assert_array_equal(kept.image, fresh.image)
        np.testing.assert_array_equal(kept.labels, fresh.labels)
