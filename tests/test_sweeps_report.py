"""Sweeps at scale: the generated report, Optuna, DDP on CPU processes, launchers and study presets."""

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from torch.utils.tensorboard import SummaryWriter

from beadseg.config import CONFIG_DIR
from beadseg.report.writer import write_report
from tests.helpers import BIN, table

FAKE_RUNS = [  # overrides, model choice, lr, val Jaccard per epoch
    (["model=unet", "optimizer.lr=0.001"], "unet", 0.001, [0.20, 0.55, 0.61, 0.58]),
    (["model=unet", "optimizer.lr=0.0001"], "unet", 0.0001, [0.10, 0.30, 0.42]),
    (["model=attention_unet", "optimizer.lr=0.001"], "attention_unet", 0.001, [0.25, 0.66, 0.64]),
]


def fake_sweep(root: Path) -> None:
    for number, (overrides, model, lr, val) in enumerate(FAKE_RUNS):
        run = root / str(number)
        (run / ".hydra").mkdir(parents=True)
        (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
        config = {"model": {"_target_": f"beadseg.models.{model}", "dropout": 0.0}, "optimizer": {"lr": lr},
                  "data": {"batch_size": 8}, "loss": {"_target_": "x.DiceLoss"}}
        (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
        choices = {"hydra": {"runtime": {"choices": {"model": model, "loss": "dice"}}}}
        (run / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(choices))
        writer = SummaryWriter(str(run / "tensorboard"))
        for epoch, value in enumerate(val):
            writer.add_scalar("val/jaccard", value, 10 * epoch + 9)
            writer.add_scalar("train/jaccard", value + 0.1, 10 * epoch + 9)
            writer.add_scalar("val/loss", 1 - value, 10 * epoch + 9)
            writer.add_scalar("lr-Adam", lr / 2 ** (epoch // 2), 10 * epoch)
        writer.close()
        (run / "result.json").write_text(json.dumps({"wall_time_s": 100.0 + number}))
    (root / "classical").mkdir()
    (root / "classical" / "metrics.json").write_text(json.dumps({"model": "classical", "pixel": {"iou": 0.52}}))


def markdown_table(report: str, heading: str) -> list[list[str]]:
    section = report.split(heading, 1)[1]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    block = []
    for line in lines:
        block.append([c.strip() for c in line.strip("|").split("|")])
        if len(block) > 2 and not section.split(line, 1)[1].lstrip().startswith("|"):
            break
    return [row for row in block[2:]]


def test_report_numbers_come_from_the_logs(tmp_path):
    fake_sweep(tmp_path)
    report = write_report(tmp_path, target=0.5).read_text()
    summary = markdown_table(report, "## Summary")
    assert len(summary) == 3
    for row, (_, model, lr, val) in zip(summary, FAKE_RUNS):
        best = max(val)
        assert row[1] == model and float(row[2]) == lr
        assert float(row[6]) == pytest.approx(best, abs=1e-4) and int(row[7]) == val.index(best) + 1  # epochs counted from 1
        assert int(row[8]) == len(val) and float(row[9]) >= 100
    lr_impact = markdown_table(report, "### `optimizer.lr`")
    assert [float(r[0]) for r in lr_impact] == [0.0001, 0.001]
    assert float(lr_impact[1][2]) == pytest.approx((0.61 + 0.66) / 2, abs=1e-4)  # mean of the best of two runs
    assert float(lr_impact[1][4]) == pytest.approx(0.66, abs=1e-4)
    model_impact = markdown_table(report, "### `model`")
    assert [r[0] for r in model_impact] == ["attention_unet", "unet"]
    assert "Best validation Jaccard **0.6600** at epoch 2" in report and "IoU 0.5200" in report
    for figure in re.findall(r"\((figure\d_\w+\.png|impact_\w+\.png)\)", report):
        assert (tmp_path / figure).stat().st_size > 0
    assert len(re.findall(r"\(figure\d", report)) == 5


@pytest.mark.slow
def test_two_trial_optuna_sweep_has_a_best_trial(tmp_path):
    sweep = tmp_path / "optuna"
    done = subprocess.run([str(BIN / "beadseg-train"), "hparams_search=optuna", "hydra.sweeper.n_trials=2", "debug=fast",
                           "model.base_channels=4", f"hydra.sweep.dir={sweep}"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert set(results["best_params"]) == {"optimizer.lr", "data.batch_size", "model.dropout", "loss", "model"}
    rows = list(table(sweep / "summary.csv"))
    assert [row["status"] for row in rows] == ["completed", "completed"]
    assert results["best_value"] == pytest.approx(max(float(row["best_score"]) for row in rows))
    report = write_report(sweep).read_text()
    assert len(markdown_table(report, "## Summary")) == 2


@pytest.mark.slow
def test_ddp_with_two_cpu_processes_trains_one_epoch(tmp_path):
    run = tmp_path / "ddp"
    done = subprocess.run([str(BIN / "beadseg-train"), "debug=fast", "model.base_channels=4", "trainer=ddp",
                           "trainer.accelerator=cpu", "trainer.devices=2", f"hydra.run.dir={run}"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("beadseg-train: best val Jaccard") == 1  # one summary, from rank 0
    assert sorted(p.name for p in (run / "checkpoints").iterdir())[-1] == "last.ckpt"
    assert len(list((run / "checkpoints").glob("epoch*.ckpt"))) == 1
    assert json.loads((run / "result.json").read_text())["status"] == "completed"


@pytest.mark.parametrize("launcher, target", [
    ("joblib", "JoblibLauncher"), ("submitit_slurm", "SlurmLauncher"), ("slurm", "SlurmLauncher"),
])
def test_launcher_configs_compose(launcher, target):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", [f"hydra/launcher={launcher}"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith(target)
    if launcher == "slurm":
        assert cfg.hydra.launcher.partition == "gpu" and cfg.hydra.launcher.gpus_per_node == 1


def test_study_presets_sweep_what_they_say(compose_config):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        size = compose("train", ["study=dataset_size"], return_hydra_config=True)
        lab = compose("train", ["study=lab_comparison"], return_hydra_config=True)
    assert size.hydra.sweeper.params["data.train_fraction"] == "0.1,0.2,0.5,0.75,1.0"
    assert lab.hydra.sweeper.params["lab_params"] == "mitochondria,microbead"
    for choice, lr in (("mitochondria", 1e-3), ("microbead", 1e-4)):
        assert compose_config("train", [f"lab_params={choice}"]).optimizer.lr == lr


def test_the_report_counts_epochs_from_one_as_training_does(tmp_path):
    """Issue 29: beadseg-report said "best epoch 0" where training, checkpoints and result.json say 1."""
    from beadseg.report.logs import RunLog

    run = RunLog(tmp_path, ["model=unet"], {}, {"val/jaccard": [0.61, 0.72, 0.70]})
    assert run.best() == (0.72, 2)  # the second epoch: epoch002-... in the checkpoint's name
    assert RunLog(tmp_path, [], {}, {}).best() == (None, None)
