"""The real command-line tools, run as a user runs them."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


def test_help_lists_the_config_groups():
    done = run(str(BIN / "beadseg-train"), "--help")
    assert done.returncode == 0
    groups = dict(line.split(": ", 1) for line in done.stdout.split("== Config ==")[0].splitlines() if ": " in line)
    expected = {"model": {"unet", "attention_unet", "attention_resunet", "smp"},
                "loss": {"bce", "dice", "focal", "tversky", "bce_dice", "dice_focal"}, "data": {"synthetic", "folder"},
                "augmentation": {"none", "light", "heavy"}, "trainer": {"default", "cpu", "gpu", "ddp"},
                "optimizer": {"adam", "adamw", "sgd"}, "scheduler": {"plateau", "cosine", "none"},
                "logger": {"tensorboard", "csv"}, "callbacks": {"default"}, "debug": {"fast"}, "task": {"segment", "classify"},
                "experiment": {"microbeads_real"}, "lab_params": {"microbead", "mitochondria"},
                "study": {"dataset_size", "lab_comparison"}, "method": {"checkpoint", "classical"}}
    for group, options in expected.items():
        assert options <= set(groups[group].split(", ")), group


def test_a_typo_in_an_override_gets_hydras_message_not_a_traceback():
    done = run(str(BIN / "beadseg-train"), "model.dropot=0.1")
    assert done.returncode != 0
    assert "Could not override 'model.dropot'" in done.stderr and "Traceback" not in done.stderr
    done = run(str(BIN / "beadseg-train"), "model=unetx")
    assert "Could not find 'model/unetx'" in done.stderr and "Traceback" not in done.stderr


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
    assert "epoch 1/1: " in done.stdout and "val/jaccard" in done.stdout  # plain epoch lines off a terminal
    noise = done.stdout + done.stderr
    assert "LeafSpec" not in noise and "litlogger" not in noise  # no library chatter


@pytest.mark.slow
def test_multirun_writes_a_summary_row_per_run_and_records_failures(tmp_path):
    sweep = tmp_path / "sweep"
    done = run(str(BIN / "beadseg-train"), "-m", "debug=fast", "model.base_channels=4", "optimizer=sgd",
               "optimizer.lr=0.01,1e+30", "trainer.limit_train_batches=8", f"hydra.sweep.dir={sweep}")
    rows = list(csv.DictReader(open(sweep / "summary.csv")))
    assert [row["overrides"] for row in rows] == [
        "debug=fast model.base_channels=4 optimizer=sgd optimizer.lr=0.01 trainer.limit_train_batches=8",
        "debug=fast model.base_channels=4 optimizer=sgd optimizer.lr=1e+30 trainer.limit_train_batches=8",
    ]
    assert rows[0]["status"] == "completed" and Path(rows[0]["checkpoint"]).is_file()
    assert f"jaccard{float(rows[0]['best_val_jaccard']):.4f}.ckpt" in rows[0]["checkpoint"]
    assert rows[0]["epochs_run"] == "1" and float(rows[0]["wall_time_s"]) > 0
    assert rows[1]["status"] == "failed" and rows[1]["error"].startswith("FloatingPointError: train loss became")
    assert done.returncode != 0  # the sweep reports that a run failed, after running them all
