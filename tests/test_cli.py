"""The real command-line tools, run as a user runs them."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import BIN, table


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


def test_help_lists_the_config_groups():
    done = run(str(BIN / "beadseg-train"), "--help")
    assert done.returncode == 0
    groups = dict(line.split(": ", 1) for line in done.stdout.split("== Config ==")[0].splitlines() if ": " in line)
    expected = {"model": {"unet", "attention_unet", "attention_resunet", "smp"},
                "loss": {"bce", "dice", "focal", "tversky", "bce_dice", "dice_focal"}, "data": {"synthetic", "folder"},
                "augmentation": {"none", "light", "heavy", "microscope"}, "trainer": {"default", "cpu", "gpu", "ddp"},
                "optimizer": {"adam", "adamw", "sgd"}, "scheduler": {"plateau", "cosine", "none"},
                "logger": {"tensorboard", "csv"}, "callbacks": {"default"}, "debug": {"fast"}, "task": {"segment", "classify"},
                "experiment": {"microbeads_real"}, "lab_params": {"microbead", "mitochondria"},
                "study": {"dataset_size", "lab_comparison"}, "method": {"checkpoint", "classical"}}
    for group, options in expected.items():
        assert options <= set(groups[group].split(", ")), group


def test_a_typo_in_an_override_key_is_one_line_naming_it_with_the_nearest_keys():
    from beadseg.cli.app import preflight

    done = run(str(BIN / "beadseg-train"), "optimzer.lr=1e-3")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip() == ("beadseg-train: error: no setting optimzer.lr (did you mean optimizer.lr "
                                   "or optimizer?)")
    # Hydra's own hint, +optimzer.lr, would run and ignore the setting
    assert "there is no optimzer to add lr to" in preflight("train", ["+optimzer.lr=1e-3"])
    assert "did you mean postprocess.min_area" in preflight("predict", ["input=x", "postprocess.min_ares=3"])
    assert "no setting optimzer.lr" in preflight("train", ["-m", "optimizer.lr=1e-3,1e-4", "optimzer.lr=1,2"])
    assert preflight("train", ["optimizer.lr=1e-3", "+trainer.limit_train_batches=2", "model=unet"]) is None
    done = run(str(BIN / "beadseg-train"), "model=unetx")
    assert "Could not find 'model/unetx'" in done.stderr and "Traceback" not in done.stderr


def test_a_run_directory_that_cannot_be_made_is_named(tmp_path):
    from beadseg.cli.app import preflight

    (tmp_path / "a_file").write_text("x")
    problem = preflight("train", [f"hydra.run.dir={tmp_path / 'a_file' / 'run'}"])
    assert problem.startswith(f"cannot make the run directory {tmp_path / 'a_file' / 'run'}: {tmp_path / 'a_file'} "
                              "is not a folder")


def test_a_missing_value_is_one_line_naming_the_key(tmp_path):
    done = run(str(BIN / "beadseg-predict"), f"hydra.run.dir={tmp_path / 'h'}")
    assert done.returncode == 1 and done.stderr.strip() == "beadseg-predict: error: input has no value: give input=..."
    # found without resolving the config's interpolations: the precision resolver would import torch (seconds)
    probe = ("import sys; from omegaconf import OmegaConf; import beadseg.config; from beadseg.cli.app import "
             "refuse_missing_values as refuse\ntry:\n refuse(OmegaConf.create({'trainer': {'precision': "
             "'${beadseg.precision:}'}, 'data': {'root': '???'}}))\nexcept Exception as error:\n print(error)\n"
             "print('torch' in sys.modules)")
    printed = run(sys.executable, "-c", probe).stdout.split("\n")
    assert printed[0] == "Missing mandatory value: data.root" and printed[1] == "False"


def test_a_file_that_is_not_a_checkpoint_is_named_for_what_it_is(tmp_path):
    from beadseg.checkpoint import CheckpointError, read_checkpoint

    for content, kind in [(b"", "empty"), (b"hello, not weights\n", "a text file"),
                          (b"\x89PNG\r\n\x1a\n0000", "a PNG image")]:
        (tmp_path / "model.ckpt").write_bytes(content)
        with pytest.raises(CheckpointError, match=rf"is not a checkpoint \({kind}\)") as refused:
            read_checkpoint(tmp_path / "model.ckpt")
        assert "could run code" not in str(refused.value)
    done = run(str(BIN / "beadseg-predict"), f"ckpt={tmp_path / 'model.ckpt'}", f"input={one_frame(tmp_path / 'in')}",
               f"hydra.run.dir={tmp_path / 'h'}")
    assert done.returncode == 1 and "Traceback" not in done.stderr and "is not a checkpoint (a PNG image)" in done.stderr


def test_an_impossible_pixel_size_is_refused(compose_config):
    from beadseg.settings import SettingError, check_settings

    for size in ("inf", "nan", "0.0", "-1.0"):
        with pytest.raises(SettingError, match="image.pixel_size_um=.*a finite number > 0"):
            check_settings(compose_config("predict", [f"image.pixel_size_um={size}"]), "predict")


def one_frame(folder: Path) -> Path:
    import numpy as np
    import tifffile

    folder.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(folder / "frame.tif", np.full((32, 32), 100, np.uint8))
    return folder


@pytest.mark.slow
def test_synth_then_train_on_the_folder_with_python_m(tmp_path):
    done = run(str(BIN / "beadseg-synth"), f"out={tmp_path / 'synth'}", "n=4", "size=64", f"hydra.run.dir={tmp_path / 'synth_run'}")
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "synth" / "masks").glob("*.tif"))) == 4
    run_dir = tmp_path / "train_run"
    done = run(sys.executable, "-m", "beadseg.train", "debug=fast", "data=folder", f"data.root={tmp_path / 'synth'}",
               "model.base_channels=4", "data.val_fraction=0.25", f"hydra.run.dir={run_dir}")
    assert done.returncode == 0, done.stderr
    assert f"checkpoint {run_dir}/checkpoints/" in done.stdout
    assert f"tensorboard --logdir {run_dir}/tensorboard" in done.stdout
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert re.search(r"epoch 1/1: .*val/jaccard [0-9.]+.* \[\d+ s\]\n", done.stdout)  # plain lines off a terminal
    noise = done.stdout + done.stderr
    assert "LeafSpec" not in noise and "litlogger" not in noise  # no library chatter
    assert "GPU available" not in noise and "FLOPs" not in noise
    result = json.loads((run_dir / "result.json").read_text())  # one epoch numbering: lines, files, record
    assert result["best_epoch"] == 1 and "/epoch001-" in result["checkpoint"]


@pytest.mark.slow
def test_multirun_writes_a_summary_row_per_run_and_records_failures(tmp_path):
    sweep = tmp_path / "sweep"
    done = run(str(BIN / "beadseg-train"), "-m", "debug=fast", "model.base_channels=4", "optimizer=sgd",
               "optimizer.lr=0.01,1e+30", "trainer.limit_train_batches=8", f"hydra.sweep.dir={sweep}")
    rows = list(table(sweep / "summary.csv"))
    assert [row["overrides"] for row in rows] == [
        "debug=fast model.base_channels=4 optimizer=sgd optimizer.lr=0.01 trainer.limit_train_batches=8",
        "debug=fast model.base_channels=4 optimizer=sgd optimizer.lr=1e+30 trainer.limit_train_batches=8",
    ]
    assert rows[0]["status"] == "completed" and Path(rows[0]["checkpoint"]).is_file()
    assert f"jaccard{float(rows[0]['best_val_jaccard']):.4f}.ckpt" in rows[0]["checkpoint"]
    assert rows[0]["epochs_run"] == "1" and float(rows[0]["wall_time_s"]) > 0
    assert rows[1]["status"] == "failed" and rows[1]["error"].startswith("FloatingPointError: train loss became")
    assert done.returncode != 0  # the sweep reports that a run failed, after running them all


def test_epoch_lines_give_each_epochs_time_and_the_time_left(monkeypatch, capsys):
    """Off a terminal a user still tells 6 minutes from 60: each line ends with the epoch's time and the estimate of
    the rest at the mean pace so far."""
    from types import SimpleNamespace

    from beadseg.training import callbacks

    clock = iter([0.0, 30.0, 30.0, 60.0 + 30.0, 90.0, 100.0])  # epoch 1: 30 s, epoch 2: 60 s, epoch 3: 10 s
    monkeypatch.setattr(callbacks.time, "monotonic", lambda: next(clock))
    lines = callbacks.EpochLines()
    monkeypatch.setattr(lines, "get_metrics", lambda trainer, module: {"val/jaccard": 0.5, "v_num": 1})
    trainer = SimpleNamespace(current_epoch=0, max_epochs=3, is_global_zero=True)
    for epoch in range(3):
        trainer.current_epoch = epoch
        lines.on_train_epoch_start(trainer, None)
        lines.on_train_epoch_end(trainer, None)
    assert capsys.readouterr().out.splitlines() == [
        "epoch 1/3: val/jaccard 0.5000 [30 s, about 1 min 0 s left]",  # 30 s an epoch, 2 to go
        "epoch 2/3: val/jaccard 0.5000 [1 min 0 s, about 45 s left]",  # 90 s for 2 epochs, 1 to go
        "epoch 3/3: val/jaccard 0.5000 [10 s]"]
