"""Bounded by design: no checkpoint field, archive, setting or input makes beadseg allocate, fork or wait without a
stated limit. A fuzz of a few hundred crafted checkpoints (each refused by name, or harmless) runs in a child
process whose peak memory and time are measured; settings, inputs and runs are tried one by one."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from hydra import compose, initialize_config_dir

from beadseg.config import CONFIG_DIR
from beadseg.models.registry import build_network
from beadseg.settings import SettingError, check_settings
from tests.helpers import table, write_pair

SMALL_NET = {"architecture": "unet", "in_channels": 1, "out_channels": 2, "base_channels": 4, "depth": 2}
SETTINGS = {"threshold": 0.5, "peak_threshold": 0.3, "bead_area": 40.0, "bead_diameter": 7.0,
            "normalization": {"method": "percentile", "low": 1.0, "high": 99.8, "vmin": 0.0, "vmax": None}}


def nested(depth: int) -> list:
    value: list = [1.0]
    for _ in range(depth):
        value = [value, value]
    return value


# (field a checkpoint carries, a hostile value): each alone must be refused naming the field
HOSTILE = [
    ("normalization", {"method": "percentile", "low": nested(16), "high": 99.8}),
    ("normalization", {"method": "percentile", "low": torch.zeros(1).expand(30000, 30000), "high": 99.8}),
    ("normalization", {"method": "percentile", "low": float("nan"), "high": 99.8}),
    ("normalization", {"method": "percentile", "low": 99.0, "high": 1.0}),
    ("normalization", {"method": "percentile", "low": 1.0, "high": 500.0}),
    ("normalization", {"method": "evil", "low": 1.0, "high": 99.8}),
    ("normalization", {"method": "fixed", "vmin": 5.0, "vmax": 1.0}),
    ("normalization", {"method": "percentile", "_target_": "os.system"}),
    ("normalization", "percentile"),
    ("threshold", float("nan")), ("threshold", 1.0), ("threshold", [0.5]), ("threshold", "0.5"),
    ("peak_threshold", float("inf")), ("peak_threshold", -1.0),
    ("bead_area", 1e300), ("bead_area", -5.0), ("bead_area", float("nan")),
    ("bead_diameter", 0.0), ("bead_diameter", 1e9),
    ("class_names", ["=cmd|' /C calc'!A0", "beads"]), ("class_names", {"a": 1}), ("class_names", ["only"]),
    ("class_names", ["x" * 10_000, "y"]),
    ("beadseg_split", ["a"]), ("beadseg_split", {"a": "evil"}),
    ("net", {"architecture": "x" * 10_000_000}), ("net", {"architecture": "smp", "encoder": "resnext101_32x48d"}),
    ("net", {**SMALL_NET, "depth": 7}), ("net", {**SMALL_NET, "base_channels": 4096}),
    ("state_dict", "wrong shape"),
]


def write_checkpoint(path: Path, changes: list[tuple[str, object]]) -> None:
    state = {f"net.{key}": value for key, value in build_network(SMALL_NET).state_dict().items()}
    checkpoint = {"state_dict": state, "hyper_parameters": {"net": SMALL_NET, **SETTINGS}, "beadseg_split": {}}
    for field, value in changes:
        if field == "beadseg_split":
            checkpoint["beadseg_split"] = value
        elif field == "state_dict":
            first = next(iter(state))
            state[first] = torch.zeros(1).expand(4096, 4096)
        else:
            checkpoint["hyper_parameters"][field] = value
    torch.save(checkpoint, path)


LOADER = """
import json, resource, sys, time
from pathlib import Path
from beadseg.checkpoint import CheckpointError, load_network
results = {}
for path in sorted(Path(sys.argv[1]).glob("*.ckpt")):
    start = time.perf_counter()
    try:
        load_network(path)
        outcome = "loaded"
    except CheckpointError as error:
        outcome = "refused: " + str(error)
    results[path.name] = [outcome[:400], len(outcome), time.perf_counter() - start]
print(json.dumps({"results": results, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


@pytest.mark.slow
def test_a_few_hundred_crafted_checkpoints_are_refused_by_name_in_bounded_memory_and_time(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    expected = {}
    rng = np.random.default_rng(0)
    for index, (field, value) in enumerate(HOSTILE):
        write_checkpoint(folder / f"one_{index:03d}.ckpt", [(field, value)])
        expected[f"one_{index:03d}.ckpt"] = {field}
    for index in range(200):  # two or three hostile fields at once: refused naming one of them
        chosen = [HOSTILE[i] for i in rng.choice(len(HOSTILE), size=int(rng.integers(2, 4)), replace=False)]
        write_checkpoint(folder / f"mix_{index:03d}.ckpt", chosen)
        expected[f"mix_{index:03d}.ckpt"] = {field for field, _ in chosen}
    write_checkpoint(folder / "good.ckpt", [])
    bomb = folder / "bomb.ckpt"  # the good checkpoint re-zipped with DEFLATE and a 512 MB record of zeros
    with zipfile.ZipFile(folder / "good.ckpt") as good, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as out:
        for record in good.infolist():
            out.writestr(record.filename, good.read(record.filename))
        with out.open("good/unused", "w") as zeros:
            for _ in range(512):
                zeros.write(bytes(2**20))
    assert bomb.stat().st_size < 8 * 2**20
    done = subprocess.run([sys.executable, "-c", LOADER, str(folder)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    results = report["results"]
    assert len(results) == len(expected) + 2 and results["good.ckpt"][0] == "loaded"  # the check refuses no good one
    assert results["bomb.ckpt"][0].startswith("refused") and "archive" in results["bomb.ckpt"][0]
    for name, fields in expected.items():
        outcome, length, seconds = results[name]
        named = {"state_dict": "weights", "beadseg_split": "beadseg_split"}
        assert outcome.startswith("refused") and any(named.get(f, f) in outcome for f in fields), (name, outcome)
        assert length < 600 and seconds < 10, (name, length, seconds)  # one short line each, quickly
    assert report["peak_mb"] < 2048, report["peak_mb"]


def test_resume_state_that_belongs_to_another_network_is_refused(tmp_path):
    from beadseg.checkpoint import CheckpointError, trusted_resume

    state = {f"net.{key}": value for key, value in build_network(SMALL_NET).state_dict().items()}
    checkpoint = {"state_dict": state, "hyper_parameters": {"net": SMALL_NET, **SETTINGS},
                  "optimizer_states": [{"state": {0: {"exp_avg": torch.zeros(1, dtype=torch.float64).expand(28000, 28000)}},
                                        "param_groups": [{"lr": 1e-3, "params": [0]}]}]}
    torch.save(checkpoint, tmp_path / "last.ckpt")
    assert (tmp_path / "last.ckpt").stat().st_size < 2**20
    with pytest.raises(CheckpointError, match=r"optimizer_states\[0\]"):
        trusted_resume(tmp_path / "last.ckpt", tmp_path / "run")


BAD_SETTINGS = [
    ("qc", "workers=100000", "workers"), ("synth", "size=100000", "size"), ("train", "data.patch_size=100000",
                                                                           "data.patch_size"),
    ("predict", "inference.tile=1000000", "inference.tile"), ("predict", "inference.window=100000", "inference.window"),
    ("export", "tile=100000", "tile"), ("explain", "window=100000", "window"), ("eval", "match_distance=-5",
                                                                              "match_distance"),
    ("eval", "thresholds=[2,nan,-1]", r"thresholds\[0\]"), ("pack", "chunk_bytes=0B", "chunk_bytes"),
    ("train", "optimizer.lr=[0.001]", "optimizer.lr"), ("predict", "postprocess.threshold=[0.5]",
                                                        "postprocess.threshold"),
    ("predict", "postprocess.min_area=[1,2]", "postprocess.min_area"), ("train", "optimizer.lr=1" + "0" * 400,
                                                                        "optimizer.lr"),
    ("train", "data.normalization.low=99", "data.normalization.low"),
    ("train", "+tune_thresholds.thresholds=[2.0,nan,-1]", r"tune_thresholds.thresholds\[0\]"),
    ("train", "module.threshold=1.0", "module.threshold"),
]


@pytest.mark.parametrize("command, override, key", BAD_SETTINGS)
def test_every_setting_is_bounded_and_refused_by_key(command, override, key):
    overrides = [override] + (["data.normalization.high=1"] if "normalization.low" in override else [])
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(command, overrides)
    with pytest.raises(SettingError, match=key) as refused:
        check_settings(cfg, command)
    assert len(str(refused.value)) < 300


def test_overlays_must_be_a_whole_number_auto_or_false():
    from beadseg.inference.writers import overlay_every

    for bad in (float("inf"), 0.5, -1, "often"):
        with pytest.raises(ValueError, match="overlays="):
            overlay_every(bad, 10)
    assert overlay_every(True, 10) == 1 and overlay_every(3, 10) == 3


def test_a_composite_frames_regex_that_backtracks_is_stopped_by_name(tmp_path):
    from beadseg.data.composite import CompositeSource
    from beadseg.data.synthetic import render_beads

    image, labels = render_beads(np.random.default_rng(0), 64, 5, "brightfield", bit_depth=8)
    write_pair(tmp_path, "x" * 34, image, labels.astype(np.uint16))
    source = CompositeSource(tmp_path, n_images=1, frames="(x+x+)+y")
    with pytest.raises(ValueError, match="data.composite_frames=.*takes longer than"):
        _ = source.library


def test_links_to_a_fifo_and_a_device_are_recorded_and_the_run_goes_on(tmp_path, predict_here):
    from beadseg.data.synthetic import render_beads

    inputs = tmp_path / "in"
    inputs.mkdir()
    tifffile.imwrite(inputs / "good.tif", render_beads(np.random.default_rng(0), 96, 10, "fluorescence",
                                                       bit_depth=8)[0])
    os.mkfifo(tmp_path / "pipe")
    (inputs / "piped.tif").symlink_to(tmp_path / "pipe")
    (inputs / "zero.tif").symlink_to("/dev/zero")
    out = tmp_path / "out"
    result = predict_here("method=classical", f"input={inputs}", f"output={out}")
    errors = {Path(row["image"]).name: row["error"] for row in table(out / "errors.csv")}
    assert result["done"] == 1 and "FIFO" in errors["piped.tif"] and "character device" in errors["zero.tif"]


def test_a_name_too_long_for_the_file_system_gets_short_file_names_and_its_full_name_in_the_tables(tmp_path,
                                                                                                   predict_here):
    from beadseg.data.synthetic import render_beads
    from beadseg.files import file_stem

    name = "b" * 251
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / f"{name}.tif", render_beads(np.random.default_rng(2), 96, 12, "fluorescence",
                                                                   bit_depth=8)[0])
    out = tmp_path / "out"
    result = predict_here("method=classical", f"input={tmp_path / 'in'}", f"output={out}", "rois=[imagej,geojson]",
                          "label_format=ome-tiff")
    assert result["done"] == 1 and not result["failed"] and table(out / "counts.csv")[0]["image"] == name
    stem = file_stem(name)
    assert (out / "rois" / f"{stem}_rois.zip").is_file() and (out / "instances" / f"{stem}.ome.tif").is_file()


def test_a_training_run_directory_is_claimed_by_one_run_at_a_time(tmp_path):
    from beadseg.training.task import CLAIM, claim_run_directory

    run = tmp_path / "run"
    run.mkdir()
    (run / CLAIM).write_text(str(os.getppid()))  # a live process trains there
    with pytest.raises(FileExistsError, match="another beadseg-train's run directory"):
        claim_run_directory(run)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (run / CLAIM).write_text(gone.stdout.strip())  # that run has ended: its directory may be continued
    claim_run_directory(run)
    assert (run / CLAIM).read_text() == str(os.getpid())


def test_eval_refuses_an_output_inside_its_data(tmp_path, compose_config):
    from beadseg.evaluation.evaluate import evaluate

    write_pair(tmp_path / "data", "a", np.zeros((32, 32), np.uint8), np.zeros((32, 32), np.uint8))
    out = tmp_path / "data" / "images"
    with pytest.raises(ValueError, match="inside data.root"):
        evaluate(compose_config("eval", [f"data.root={tmp_path / 'data'}", f"output={out}", f"paths.output_dir={out}"]))
    assert sorted(p.name for p in out.iterdir()) == ["a.tif"]  # nothing written into the data set


def test_the_napari_reader_survives_any_outline_file(tmp_path):
    from beadseg.napari_plugin.reader import _outlines

    (tmp_path / "rois").mkdir()
    bad = {"a": json.dumps({"features": [{"geometry": {"coordinates": [[[1], [2], [3], [4], [1]]]}}]}),
           "b": "[" * 100_000 + "]" * 100_000, "c": "not json", "d": json.dumps({"features": 5})}
    for name, text in bad.items():
        (tmp_path / "rois" / f"{name}.geojson").write_text(text)
    good = [[0, 0], [0, 4], [4, 4], [4, 0], [0, 0]]
    (tmp_path / "rois" / "e.geojson").write_text(json.dumps({"features": [{"geometry": {"coordinates": [good]}}]}))
    polygons = _outlines(tmp_path, ["a", "b", "c", "d", "e"])
    assert len(polygons) == 1 and polygons[0][0, 0] == 4  # the good file's outline, on its frame (index 4)


def test_nan_weights_fail_exports_own_check(tmp_path):
    from beadseg.packaging.export import export

    state = {f"net.{key}": value for key, value in build_network(SMALL_NET).state_dict().items()}
    state[next(iter(state))] = torch.full_like(state[next(iter(state))], float("nan"))
    torch.save({"state_dict": state, "hyper_parameters": {"net": SMALL_NET, **SETTINGS}}, tmp_path / "nan.ckpt")
    with pytest.raises(RuntimeError, match="differs from the checkpoint by nan"):
        export(str(tmp_path / "nan.ckpt"), "checkpoint", tmp_path / "export", tile=64)


def test_a_run_directory_whose_record_is_odd_is_refused_and_relative_paths_are_the_runs(tmp_path):
    from beadseg.checkpoint import CheckpointError, run_checkpoint

    (tmp_path / "run").mkdir()
    for record in ("[1, 2]", '{"checkpoint": ["a"]}', "[" * 100_000):
        (tmp_path / "run" / "result.json").write_text(record)
        with pytest.raises(CheckpointError, match="names no checkpoint"):
            run_checkpoint(tmp_path / "run")
    (tmp_path / "run" / "result.json").write_text('{"checkpoint": "checkpoints/best.ckpt"}')
    assert run_checkpoint(tmp_path / "run") == tmp_path / "run" / "checkpoints" / "best.ckpt"


def test_deleting_a_config_group_is_refused_in_one_line():
    from beadseg.cli.app import preflight

    problem = preflight("train", ["~model"])
    assert problem is not None and problem.startswith("~model: model is a config group this command needs")
    assert preflight("train", ["~optimizer.weight_decay"]) is None  # deleting a value is Hydra's own business


def test_a_huge_frame_whose_maps_cannot_be_mapped_fails_alone(tmp_path, predict_here, monkeypatch):
    from beadseg.data.synthetic import render_beads
    from beadseg.formats import images
    from beadseg.inference.task import PredictionTask

    inputs = tmp_path / "in"
    inputs.mkdir()
    tifffile.imwrite(inputs / "a_normal.tif", render_beads(np.random.default_rng(0), 64, 8, "brightfield", bit_depth=8)[0])
    tifffile.imwrite(inputs / "b_huge.tif", render_beads(np.random.default_rng(1), 160, 20, "brightfield", bit_depth=8)[0])
    monkeypatch.setattr(images, "LARGE", 100 * 100)  # the 160² frame counts as huge: its maps go to memory maps

    def no_memory(self, frame):
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(PredictionTask, "_huge", no_memory)
    out = tmp_path / "out"
    result = predict_here(f"input={inputs}", f"output={out}", "num_workers=0")
    errors = {Path(row["image"]).name: row["error"] for row in table(out / "errors.csv")}
    assert result["done"] == 1 and "Cannot allocate memory" in errors["b_huge.tif"]
    assert [row["image"] for row in table(out / "counts.csv")] == ["a_normal"]
