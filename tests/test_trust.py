"""Trust: checkpoints are data, never code; every setting is checked before any work."""

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from beadseg.checkpoint import CheckpointError
from beadseg.data.synthetic import render_beads
from beadseg.settings import SettingError
from beadseg.training.task import train
from tests.helpers import BIN, write_pair


class WritesAFile:
    """Unpickling this opens (and so creates) ``path``: what a hostile checkpoint could do."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    from hydra import compose, initialize_config_dir

    from beadseg.config import CONFIG_DIR

    out = tmp_path_factory.mktemp("run")
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", ["debug=fast", "model.base_channels=4", f"paths.output_dir={out}"])
    return Path(train(cfg)["last_checkpoint"])


@pytest.fixture
def hostile(checkpoint, tmp_path) -> dict:
    """Two hostile checkpoints and the files they would write: a pickle that runs code, and a ``_target_``."""
    content = torch.load(checkpoint, map_location="cpu", weights_only=True)
    victims = {"pickle": tmp_path / "written_by_pickle", "target": tmp_path / "written_by_target"}
    torch.save({**content, "extra": WritesAFile(victims["pickle"])}, tmp_path / "pickle.ckpt")
    settings = {**content["hyper_parameters"], "net": {"_target_": "builtins.open", "file": str(victims["target"]), "mode": "w"}}
    torch.save({**content, "hyper_parameters": settings}, tmp_path / "target.ckpt")
    return {kind: (tmp_path / f"{kind}.ckpt", victims[kind]) for kind in victims}


@pytest.mark.parametrize("kind", ["pickle", "target"])
def test_every_command_that_takes_a_checkpoint_refuses_a_hostile_one(hostile, kind, compose_config, tmp_path):
    from beadseg.analysis.explain import explain
    from beadseg.beads.classical import detect_beads
    from beadseg.inference.predictor import load_predictor
    from beadseg.packaging.export import export

    path, victim = hostile[kind]
    folder = tmp_path / "beads"
    image, labels = render_beads(np.random.default_rng(0), 64, 5, "brightfield", bit_depth=8)
    write_pair(folder, "a", image, labels.astype(np.uint16))
    attempts = {
        "predict": lambda: load_predictor(str(path)),
        "eval split": lambda: load_predictor(str(path), detect=detect_beads),  # the baseline borrowing its split
        "export": lambda: export(str(path), "torchscript", tmp_path / "export"),
        "explain": lambda: explain(str(path), [folder / "images" / "a.tif"], tmp_path / "explain", ["occlusion"]),
        "train init_from": lambda: train(compose_config("train", ["debug=fast", f"init_from={path}",
                                                                   f"paths.output_dir={tmp_path / 'init'}"])),
        "train resume": lambda: train(compose_config("train", ["debug=fast", f"ckpt_path={path}",
                                                                f"paths.output_dir={tmp_path / 'resume'}"])),
    }
    for command, attempt in attempts.items():
        with pytest.raises(CheckpointError, match="refused") as refused:
            attempt()
        assert str(path) in str(refused.value), command
        assert not victim.exists(), f"{command} ran the checkpoint's code"
    if kind == "target":
        assert "builtins.open" in str(refused.value)


ATTACKS = {
    "prefix walk to os.open": lambda victim: {"_target_": "torch.nn.parallel.distributed.os.open",
                                               "_args_": [str(victim), 577]},
    "prefix walk to os.system": lambda victim: {"_target_": "torch.nn.parallel.distributed.os.system",
                                                 "_args_": [f"touch {victim}"]},
    "prefix walk to subprocess.Popen": lambda victim: {"_target_": "torch.nn.parallel.distributed.subprocess.Popen",
                                                       "_args_": [["touch", str(victim)]]},
    "builtins.exec": lambda victim: {"_target_": "builtins.exec", "_args_": [f"open({str(victim)!r}, 'w')"]},
    "through _args_": lambda victim: {"_target_": "beadseg.models.UNet", "_args_": [
        {"_target_": "torch.nn.modules.module.os.open", "_args_": [str(victim), 577]}]},
    "nested target": lambda victim: {"_target_": "beadseg.models.UNet", "activation": {
        "_target_": "torch.optim.sgd.os.system", "command": f"touch {victim}"}},
    "through _partial_": lambda victim: {"_target_": "torch.nn.functional.os.open", "_partial_": True,
                                         "path": str(victim), "flags": 577},
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_targets_are_checked_by_what_they_resolve_to(checkpoint, tmp_path, attack):
    from beadseg.inference.predictor import load_predictor

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    content = torch.load(checkpoint, map_location="cpu", weights_only=True)
    hostile = tmp_path / "hostile.ckpt"
    torch.save({**content, "hyper_parameters": {**content["hyper_parameters"], "net": ATTACKS[attack](victim)}}, hostile)
    with pytest.raises(CheckpointError, match="refused: its setting net"):
        load_predictor(str(hostile))
    assert victim.read_text() == "precious"  # not truncated, not touched


def test_every_shipped_model_config_and_the_shipped_model_are_described_and_built(compose_config):
    from beadseg.checkpoint import load_network
    from beadseg.models.registry import build_network, describe

    for model in ("unet", "attention_unet", "attention_resunet", "smp", "resnet"):
        extra = ["task=classify", "data=classify"] if model == "resnet" else []
        description = describe(dict(compose_config("train", [f"model={model}", *extra]).model), "model")
        assert description["architecture"] == model and "_target_" not in description
        assert isinstance(build_network(description), torch.nn.Module)
    shipped = load_network(None or __import__("beadseg.pretrained", fromlist=["CHECKPOINT"]).CHECKPOINT)
    assert shipped.hparams["net"] == {"architecture": "unet", "in_channels": 1, "out_channels": 2, "base_channels": 16,
                                      "depth": 4, "bilinear": False, "dropout": 0.0}  # translated from its _target_


@pytest.mark.slow
def test_the_cli_refuses_with_one_line_and_no_traceback(hostile, tmp_path):
    path, victim = hostile["pickle"]
    image, _ = render_beads(np.random.default_rng(0), 64, 5, "brightfield", bit_depth=8)
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / "a.tif", image)
    done = subprocess.run([BIN / "beadseg-predict", f"ckpt={path}", f"input={tmp_path / 'in'}", f"output={tmp_path / 'o'}",
                           f"hydra.run.dir={tmp_path / 'h'}"], capture_output=True, text=True)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"beadseg-predict: error: ckpt={path}: refused" in done.stderr and not victim.exists()
    traced = subprocess.run([BIN / "beadseg-predict", f"ckpt={path}", f"input={tmp_path / 'in'}", f"output={tmp_path / 'o2'}",
                             f"hydra.run.dir={tmp_path / 'h2'}"], capture_output=True, text=True,
                            env={"HYDRA_FULL_ERROR": "1", "PATH": str(BIN)})
    assert traced.returncode == 1 and "Traceback" in traced.stderr  # the trace, on request


def files_in(folder: Path) -> dict[str, float]:
    return {str(path): path.stat().st_mtime for path in folder.rglob("*")}


def with_settings(checkpoint: Path, out: Path, **settings) -> Path:
    content = torch.load(checkpoint, map_location="cpu", weights_only=True)
    torch.save({**content, "hyper_parameters": {**content["hyper_parameters"], **settings}}, out)
    return out


def test_a_checkpoint_that_would_fetch_weights_into_a_package_folder_is_refused(checkpoint, tmp_path):
    """Issue 27, reproducer 1: timm would copy a file:// URL into cache_dir (a folder Python imports from)."""
    from beadseg.inference.predictor import load_predictor

    payload, watched = tmp_path / "payload", tmp_path / "site-packages"
    payload.mkdir(), watched.mkdir()
    (payload / "zz_evil.pth").write_text("import os; os.system('touch pwned')\n")
    before = files_in(watched)
    timm_attack = {"_target_": "timm.create_model", "model_name": "resnet18", "pretrained": True, "in_chans": 1,
                   "num_classes": 1, "pretrained_cfg_overlay": {"url": f"file://{payload / 'zz_evil.pth'}",
                                                                "hf_hub_id": ""}, "cache_dir": str(watched)}
    smp_attack = {"_target_": "beadseg.models.SmpModel", "encoder": "tu-resnet18", "encoder_weights": "imagenet",
                  "in_channels": 1, "out_channels": 1}
    smp_extra = {**smp_attack, "encoder_weights": None, "pretrained_cfg_overlay": timm_attack["pretrained_cfg_overlay"]}
    for name, net in {"timm": timm_attack, "smp": smp_attack, "smp extra": smp_extra}.items():
        evil = with_settings(checkpoint, tmp_path / f"{name}.ckpt", net=net)
        with pytest.raises(CheckpointError, match="refused: its setting net"):
            load_predictor(str(evil))
    assert files_in(watched) == before and not Path("pwned").exists()


def test_a_checkpoints_loss_is_never_built(checkpoint, tmp_path):
    """Issue 27, reproducer 3: a loss that truncates a file when built. Inference builds the network only; the slim
    export drops training settings; loading the LightningModule from a checkpoint is refused."""
    from beadseg.inference.predictor import load_predictor
    from beadseg.packaging.export import export
    from beadseg.training.module import BeadSegModule

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    loss = {"_target_": "torch.nn.parallel.distributed.os.open", "_args_": [str(victim), os.O_WRONLY | os.O_TRUNC]}
    evil = with_settings(checkpoint, tmp_path / "loss.ckpt", loss=loss)
    assert load_predictor(str(evil)).net is not None  # the network is all prediction builds
    path, _ = export(str(evil), "checkpoint", tmp_path / "export", tile=64)
    slim = torch.load(path, map_location="cpu", weights_only=True)["hyper_parameters"]
    assert "loss" not in slim and "optimizer" not in slim and slim["net"]["architecture"] == "unet"
    with pytest.raises(TypeError, match="load_network"):
        BeadSegModule.load_from_checkpoint(path, weights_only=True)
    assert victim.read_text() == "precious"


@pytest.mark.parametrize("net, refused", [
    (None, "net is NoneType"), ("beadseg.models.UNet", "net is str"), ({"architecture": "unet", "depth": 9}, "net.depth=9"),
    ({"architecture": "unet", "base_channels": 512, "depth": 6}, "base_channels × 2\\^depth"),
    ({"architecture": "unet", "dropout": float("nan")}, "net.dropout=nan"), ({"architecture": "vit"}, "architecture='vit'"),
    ({"_target_": "beadseg.models.UNet", "activation": "relu"}, "net.activation: not a setting of the unet"),
])
def test_a_network_description_that_does_not_fit_is_refused_by_name(checkpoint, tmp_path, net, refused):
    from beadseg.inference.predictor import load_predictor

    with pytest.raises(CheckpointError, match=refused):
        load_predictor(str(with_settings(checkpoint, tmp_path / "odd.ckpt", net=net)))
    content = torch.load(checkpoint, map_location="cpu", weights_only=True)
    torch.save({**content, "hyper_parameters": {k: v for k, v in content["hyper_parameters"].items() if k != "net"}},
               tmp_path / "no_net.ckpt")
    with pytest.raises(CheckpointError, match="describes no network"):
        load_predictor(str(tmp_path / "no_net.ckpt"))


def test_resume_never_deletes_a_file_the_checkpoint_names(checkpoint, compose_config, tmp_path, caplog):
    """Issue 27, reproducer 2: callback state naming a file outside the new run ('previous best') is dropped."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    run = tmp_path / "resumed"
    content = torch.load(checkpoint, map_location="cpu", weights_only=True)
    for state in content["callbacks"].values():
        if isinstance(state, dict) and "best_model_path" in state:
            state["best_model_path"] = str(run / "checkpoints" / ".." / ".." / "victim.txt")
            state["best_k_models"] = {state["best_model_path"]: torch.tensor(0.0)}
            state["best_model_score"] = torch.tensor(0.0)  # any new score is better: it would delete the "previous"
    evil = tmp_path / "evil.ckpt"
    torch.save(content, evil)
    result = train(compose_config("train", ["debug=fast", "model.base_channels=4", "trainer.max_epochs=2",
                                            f"ckpt_path={evil}", f"paths.output_dir={run}"]))
    assert result["status"] == "completed" and victim.read_text() == "precious"
    assert "dropped callback state naming a file outside this run" in caplog.text
    assert not list(run.glob("resumed_from.*"))  # the trusted copy is gone after the run


def random_settings(rng: np.random.Generator, depth: int = 0):
    """A value drawn from what a hostile checkpoint could hold: names from the modules beadseg and its libraries
    use, paths, nested structures, numbers of every kind."""
    import timm

    names = ["beadseg.models.UNet", "beadseg.models.SmpModel", "timm.create_model", "builtins.open", "os.system",
             "torch.nn.parallel.distributed.os.open", *(f"torch.nn.{n}" for n in dir(torch.nn)[:40]),
             *(f"timm.{n}" for n in dir(timm)[:30]), *(f"os.{n}" for n in ("remove", "open", "makedirs", "rename"))]
    keys = ["_target_", "_args_", "_partial_", "architecture", "pretrained", "pretrained_cfg_overlay", "cache_dir",
            "checkpoint_path", "url", "file", "mode", "model_name", "encoder", "encoder_weights", "in_channels",
            "out_channels", "base_channels", "depth", "dropout", "bilinear", "arch", "num_classes", "in_chans"]
    kind = rng.integers(8 if depth < 3 else 5)
    if kind == 0:
        return str(rng.choice(names))
    if kind == 1:
        return str(rng.choice(["unet", "smp", "resnet", "attention_unet", "file:///tmp/x.pth", "imagenet", "resnet18",
                               "../../victim", "tu-resnet18", ""]))
    if kind == 2:
        return rng.choice([0, 1, 2, 4, -1, 10**9, 0.5, float("nan"), float("inf"), True, False, None])
    if kind in (3, 4):
        return int(rng.integers(1, 6)) if kind == 3 else float(rng.uniform(-1, 2))
    if kind == 5:
        return [random_settings(rng, depth + 1) for _ in range(rng.integers(0, 3))]
    return {str(rng.choice(keys)): random_settings(rng, depth + 1) for _ in range(rng.integers(1, 6))}


def test_fuzzed_network_settings_are_refused_or_built_and_touch_no_file(tmp_path, monkeypatch):
    """Hundreds of random network settings: each is refused by name or builds a network; none creates, changes or
    deletes a file in a watched folder (the working directory)."""
    from beadseg.models.registry import DescriptionError, build_network, describe

    monkeypatch.chdir(tmp_path)
    (tmp_path / "victim").write_text("precious")
    before = files_in(tmp_path)
    rng = np.random.default_rng(27)
    outcomes = {"refused": 0, "built": 0}
    valid = [{"architecture": "unet", "base_channels": 4, "depth": 2, "out_channels": 2},
             {"_target_": "beadseg.models.AttentionUNet", "base_channels": 2, "depth": 2},
             {"architecture": "resnet", "model_name": "resnet10t", "num_classes": 2},
             {"architecture": "smp", "arch": "Unet", "encoder": "resnet18"}]
    for case in range(400):
        settings = random_settings(rng)
        if case % 3 == 1:  # a real description with one setting replaced or added
            settings = {**valid[case % len(valid)], str(rng.choice(list(valid[case % len(valid)]) + ["cache_dir"])):
                        random_settings(rng)}
        elif case % 3 == 2 and case % 12 < 8:
            settings = valid[case % len(valid)]
        try:
            description = describe(settings)
        except DescriptionError as error:
            assert str(error).startswith("net")  # one line naming the setting
            outcomes["refused"] += 1
            continue
        assert isinstance(build_network(description), torch.nn.Module)
        outcomes["built"] += 1
    assert outcomes["refused"] > 200 and outcomes["built"] > 60 and files_in(tmp_path) == before


BAD_TRAIN = [("optimizer.lr=nan", "optimizer.lr=nan"), ("data.batch_size=null", "data.batch_size=None"),
             ("model.dropout=nan", "model.dropout=nan"), ("optimizer.lr=abc", "optimizer.lr='abc'"),
             ("data.val_fraction=1.5", "data.val_fraction=1.5"), ("data.batch_size=0", "data.batch_size=0")]
BAD_PREDICT = [("postprocess.threshold=2", "postprocess.threshold=2"), ("postprocess.threshold=nan", "postprocess.threshold=nan"),
               ("dilution.volume_ul=-1", "dilution.volume_ul=-1"), ("dilution.volume_ul=abc", "dilution.volume_ul='abc'"),
               ("dilution.confidence=1.5", "dilution.confidence=1.5"), ("dilution.tolerance=-1", "dilution.tolerance=-1"),
               ("dilution.tolerance=nan", "dilution.tolerance=nan"), ("group_regex='('", "group_regex='\\('"),
               ("group_regex='^x'", "group_regex='\\^x': accepts a regular expression with 1 capture group"),
               ("frames_per_step=0", "frames_per_step=0"), ("tiff_compression=xyz", "tiff_compression='xyz'"),
               ("inference.mc_samples=-2", "inference.mc_samples=-2"), ("postprocess.edge_rule=centre", "postprocess.edge_rule")]


@pytest.mark.parametrize("override, key", BAD_TRAIN)
def test_bad_training_settings_are_named_before_any_data_is_read(compose_config, tmp_path, override, key, monkeypatch):
    monkeypatch.setattr("beadseg.data.synthetic.SyntheticSource.entries", lambda self: pytest.fail("data was read"))
    with pytest.raises(SettingError, match=f"^{key}.*accepts") as refused:
        train(compose_config("train", [override, f"paths.output_dir={tmp_path / 'run'}"]))
    assert "\n" not in str(refused.value) and not (tmp_path / "run").exists()


@pytest.mark.parametrize("override, key", BAD_PREDICT)
def test_bad_prediction_settings_are_named_before_any_output_exists(compose_config, tmp_path, override, key):
    from beadseg.inference.predict import predict

    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / "a.tif", np.zeros((32, 32), np.uint8))
    out = tmp_path / "out"
    with pytest.raises(SettingError, match=f"^{key}") as refused:
        predict(compose_config("predict", [f"input={tmp_path / 'in'}", f"output={out}", f"paths.output_dir={out}",
                                           "method=classical", override]))
    assert "\n" not in str(refused.value) and not out.exists()


BAD_ANYWHERE = [
    ("train", "augmentation.transforms.0.p=3", "augmentation.transforms.0.p=3: accepts a finite number ≥ 0 and ≤ 1"),
    ("train", "scheduler.scheduler.factor=2", "scheduler.scheduler.factor=2"),
    ("train", "loss.weights.bce=abc", "loss.weights.bce='abc': accepts a finite number"),
    ("train", "model.bilinear=3", "model.bilinear=3: accepts true or false"),
    ("train", "callbacks.early_stopping.patience=-1", "callbacks.early_stopping.patience=-1"),
    ("qc", "qc.max_saturated=2", "qc.max_saturated=2"), ("qc", "detector.polarity=up", "detector.polarity='up'"),
    ("analyze", "qa.max_shift=-1", "qa.max_shift=-1"), ("export", "format=xyz", "format='xyz'"),
    ("export", "tile=8", "tile=8"), ("explain", "window=0", "window=0"), ("synth", "n=0", "n=0"),
    ("synth", "bit_depth=12", "bit_depth=12: accepts one of 8, 16, or mixed"),
    ("synth", "source.touching_fraction=2", "source.touching_fraction=2"),
    ("synth", "source.min_beads=-1", "source.min_beads=-1"),
    ("report", "target_jaccard=abc", "target_jaccard='abc'"), ("pack", "chunk_bytes=64QB", "chunk_bytes='64QB'"),
    ("pack", "workers=0", "workers=0"), ("predict", "image.pixel_size_um=-1", "image.pixel_size_um=-1"),
]
REQUIRED = {"train": ["scheduler=plateau"],  # its factor: a range known by name
            "synth": ["source=composite", "source.root=x"], "qc": ["data.root=x"], "analyze": ["data.root=x"], "explain": ["ckpt=x", "input=x"],
            "report": ["dir=x"], "pack": ["data.root=x", "out=y"], "predict": ["input=x"]}


@pytest.mark.parametrize("command, override, refusal", BAD_ANYWHERE, ids=[f"{c}:{o}" for c, o, _ in BAD_ANYWHERE])
def test_every_commands_settings_are_checked_before_the_run_starts(command, override, refusal, tmp_path):
    """The command line's check (``preflight``), before Hydra makes a run directory: every command, keys known by
    name anywhere (an augmentation's ``p``), and any number or true/false against its default's kind."""
    from beadseg.cli.app import preflight

    run = tmp_path / "run"
    problem = preflight(command, [*REQUIRED.get(command, []), override, f"hydra.run.dir={run}"])
    assert problem is not None and problem.startswith(refusal) and "\n" not in problem
    assert preflight(command, [*REQUIRED.get(command, []), f"hydra.run.dir={run}"]) is None  # the defaults pass
    assert not run.exists()


def test_a_grouping_regex_that_never_ends_is_stopped_before_any_output(tmp_path, compose_config):
    """``group_regex='^(a+)+b'`` with a frame named ``aaa…a.png`` backtracks for hours: it is stopped, by name."""
    from beadseg.data.split import group_names

    with pytest.raises(ValueError, match=r"^group_regex='\^\(a\+\)\+b' takes longer than 0.5 s on the name a{40}"):
        group_names(["b", "a" * 40], "^(a+)+b", "group_regex", seconds=0.5)
    assert group_names(["640x_a", "b"], r"^(\d+)x_", "group_regex", seconds=0.5) == ["640", "b"]
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / f"{'a' * 40}.tif", np.zeros((32, 32), np.uint8))
    from beadseg.inference.predict import predict

    out = tmp_path / "out"
    with pytest.raises(ValueError, match="^group_regex='.*' takes longer than 5 s on the name a{40}"):
        predict(compose_config("predict", [f"input={tmp_path / 'in'}", f"output={out}", f"paths.output_dir={out}",
                                           "method=classical", "group_regex='^(a+)+b'"]))
    assert not out.exists()


def test_a_checkpoint_with_a_nan_threshold_is_refused(checkpoint, tmp_path):
    from beadseg.inference.predictor import load_predictor

    for key, value in (("threshold", float("nan")), ("peak_threshold", 1.5), ("bead_area", -3.0)):
        with pytest.raises(CheckpointError, match=f"refused: its setting {key}="):
            load_predictor(str(with_settings(checkpoint, tmp_path / f"{key}.ckpt", **{key: value})))


def test_help_lists_each_setting_with_what_it_accepts():
    done = subprocess.run([BIN / "beadseg-predict", "--help"], capture_output=True, text=True)
    assert done.returncode == 0
    assert "dilution.confidence" in done.stdout and "a finite number > 0 and < 1" in done.stdout
    assert "group_regex" in done.stdout and "a regular expression with 1 capture group, or null" in done.stdout


def test_a_checkpoint_written_before_descriptions_still_loads(checkpoint, tmp_path):
    """What checkpoints of earlier versions (main 63acd02) hold: the network's _target_ and its arguments."""
    from beadseg.inference.predictor import load_predictor

    old = {"_target_": "beadseg.models.UNet", "in_channels": 1, "out_channels": 1, "base_channels": 4, "depth": 4,
           "bilinear": False, "dropout": 0.0}
    predictor = load_predictor(str(with_settings(checkpoint, tmp_path / "old.ckpt", net=old)))
    assert predictor.net is not None and predictor.channels == 1
    assert isinstance(predictor.predict(np.zeros((40, 40), np.uint8))[0], np.ndarray)


def test_post_processing_defaults_live_in_the_config():
    from omegaconf import OmegaConf

    from beadseg.beads.postprocess import PostProcess
    from beadseg.config import CONFIG_DIR, configured_postprocess

    composed = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "postprocess" / "default.yaml"))
    composed.pop("_target_")
    assert configured_postprocess() == PostProcess(**composed)
    assert configured_postprocess(threshold=0.4).threshold == 0.4
    assert PostProcess() == configured_postprocess()  # the class's own defaults agree with the config's
