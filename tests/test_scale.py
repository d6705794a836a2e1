"""Data sets of any size: manifests, on-demand reading, packs; prediction that resumes, spreads and chunks."""

import json
import os
import pickle
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
from scipy.ndimage import gaussian_filter

from beadseg.beads.postprocess import PostProcess
from beadseg.data import manifest
from beadseg.data.folder import FolderSource
from beadseg.data.io import BeadDataError
from beadseg.data.synthetic import SyntheticSource, render_beads
from beadseg.datasets.datamodule import BeadDataModule
from beadseg.metrics.objects import match_by_centroid, match_by_iou
from beadseg.training.task import train
from tests.helpers import BIN, table, write_pair


@pytest.fixture
def synthetic_folder(tmp_path) -> Path:
    """Eight 96² synthetic images with exact instance-label masks."""
    root = tmp_path / "beads"
    source = SyntheticSource(8, 96, seed=3)
    for index in range(8):
        name, image, labels = source.render(index)
        write_pair(root, name, image, labels.astype(np.uint16))
    return root


def test_manifest_is_reused_and_only_changed_files_are_read_again(synthetic_folder, monkeypatch):
    measured: list[str] = []
    real_measure = manifest.build_manifest

    def counting(items, measure, path, workers=None, description=""):
        def spy(item):
            measured.append(item["name"])
            return measure(item)
        return real_measure(items, spy, path, workers, description)

    monkeypatch.setattr("beadseg.data.folder.build_manifest", counting)
    rows = FolderSource(synthetic_folder).entries()
    assert len(measured) == 8 and (synthetic_folder / ".beadseg").is_dir()
    truth = {name: int(labels.max()) for name, _, labels in map(SyntheticSource(8, 96, seed=3).render, range(8))}
    assert {row["name"]: row["bead_count"] for row in rows} == truth  # instance labels: the exact count
    measured.clear()
    assert FolderSource(synthetic_folder).entries() == rows and measured == []  # warm: nothing read
    changed = synthetic_folder / "masks" / f"{rows[2]['name']}.tif"
    tifffile.imwrite(changed, np.zeros((96, 96), np.uint16))
    write_pair(synthetic_folder, "zz_new", np.ones((96, 96), np.uint8), np.eye(96, dtype=np.uint8))
    again = {row["name"]: row for row in FolderSource(synthetic_folder).entries()}
    assert sorted(measured) == sorted([rows[2]["name"], "zz_new"])
    assert again[rows[2]["name"]]["bead_count"] == 0 and len(again) == 9


def test_a_read_only_data_folder_keeps_its_manifest_in_the_cache(synthetic_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("BEADSEG_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    FolderSource(synthetic_folder).entries()
    assert len(list((tmp_path / "cache" / "manifests").glob("beads-*.json"))) == 1


def _patches(datamodule: BeadDataModule, count: int = 6) -> list[tuple[np.ndarray, np.ndarray]]:
    datamodule.setup()
    dataset = datamodule.datasets["train"]
    return [(dataset[i]["image"].numpy(), dataset[i]["mask"].numpy()) for i in range(count)]


def test_streamed_cached_and_packed_loading_give_the_same_samples(synthetic_folder, tmp_path):
    import multiprocessing

    from beadseg.datasets.packed import PackedSource, pack

    start_method = multiprocessing.get_start_method(allow_none=True)
    pack(FolderSource(synthetic_folder), tmp_path / "pack", chunk_bytes="64KB")
    assert multiprocessing.get_start_method(allow_none=True) != "spawn" or start_method == "spawn"  # litdata's undone
    options = dict(patch_size=48, val_fraction=0.25, num_workers=0, seed=5)
    streamed = _patches(BeadDataModule(FolderSource(synthetic_folder), cache_mb=0, **options))
    cached = BeadDataModule(FolderSource(synthetic_folder), cache_mb=64, **options)
    packed = BeadDataModule(PackedSource(str(tmp_path / "pack")), cache_mb=0, **options)
    for other in (_patches(cached), _patches(packed)):
        for (image, mask), (image2, mask2) in zip(streamed, other):
            np.testing.assert_array_equal(image, image2)
            np.testing.assert_array_equal(mask, mask2)
    assert any(mask.any() for _, mask in streamed)  # the patches hold beads: the comparison is not of empties
    assert cached.split_table == packed.split_table


def test_a_file_that_vanishes_after_indexing_is_named_and_skipped(synthetic_folder, tmp_path, caplog):
    datamodule = BeadDataModule(FolderSource(synthetic_folder), patch_size=48, val_fraction=0.25, num_workers=0,
                                cache_mb=0, output_dir=str(tmp_path / "run"))
    datamodule.setup()
    train_names = [row["name"] for row in datamodule.split_table if row["split"] == "train"]
    (synthetic_folder / "images" / f"{train_names[0]}.tif").unlink()
    batch = [datamodule.datasets["train"][i] for i in range(len(datamodule.datasets["train"]))]
    assert all(item["image"].shape == (1, 48, 48) for item in batch)  # the run goes on
    errors = list(table(tmp_path / "run" / "errors.csv"))
    assert {row["image"] for row in errors} == {train_names[0]} and "disappeared" in errors[0]["error"]
    assert train_names[0] in caplog.text


def test_a_folder_that_is_no_pack_says_so(tmp_path):
    from beadseg.datasets.packed import PackedSource

    (tmp_path / "index.json").write_text("{}")
    with pytest.raises(BeadDataError, match=r"is not a beadseg pack .*beadseg-pack"):
        PackedSource(str(tmp_path))


@pytest.mark.slow
def test_frames_packed_through_the_cli_train(tmp_path, compose_config):
    from beadseg.datasets.classify import SyntheticClassSource

    source = SyntheticClassSource(24, 48)
    for row in source.entries():
        folder = tmp_path / "frames" / source.classes[row["label"]]
        folder.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(folder / f"{row['name']}.tif", source.read(row))
    packed = subprocess.run([BIN / "beadseg-pack", "data=classify", f"data.root={tmp_path / 'frames'}",
                             f"out={tmp_path / 'pack'}", f"hydra.run.dir={tmp_path / 'p'}"], capture_output=True, text=True)
    assert packed.returncode == 0, packed.stderr[-2000:]
    assert "24 frames" in packed.stdout and "data=packed_frames" in packed.stdout
    train(compose_config("train", ["task=classify", "data=packed_frames", f"data.input_dir={tmp_path / 'pack'}",
                                   "data.patch_size=32", "model.model_name=resnet10t", "trainer.max_epochs=1",
                                   f"paths.output_dir={tmp_path / 'run'}"]))  # what the printed command runs
    split = list(table(tmp_path / "run" / "split.csv"))
    assert len(split) == 24 and {row["label"] for row in split} == {"empty", "beads"}


@pytest.mark.slow
def test_chunked_instances_equal_whole_frame_instances():
    _, labels = render_beads(np.random.default_rng(4), 2048, 2500, "fluorescence", bit_depth=8)
    probability = gaussian_filter((labels > 0).astype(np.float32), 0.7)
    image = (probability * 200).astype(np.uint8)
    # the clump and particle rules judge each chunk by its own beads' area (a 300-px chunk's differs from the frame's)
    local_rules = {"split_area_ratio": None, "particle_area_ratio": None}
    whole_labels, whole_rows, _ = PostProcess(chunk=4096, **local_rules).instances(probability, image)
    chunked_labels, chunked_rows, _ = PostProcess(chunk=300, halo=40, **local_rules).instances(probability, image)
    assert len(whole_rows) > 2000  # a dense frame: hundreds of beads cross the chunk edges at 300 px
    assert len(chunked_rows) == len(whole_rows) == chunked_labels.max()
    match = match_by_centroid(whole_labels, chunked_labels, 1.0)
    assert match.false_positives == match.false_negatives == 0
    overlap = match_by_iou(whole_labels, chunked_labels, 0.8)
    assert overlap.false_positives == overlap.false_negatives == 0
    same_area = np.mean(np.equal(sorted(r["area"] for r in whole_rows), sorted(r["area"] for r in chunked_rows)))
    assert same_area > 0.95  # watershed lines inside large clusters may move by a pixel


@pytest.fixture(scope="module")
def many_frames(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("frames")
    for index in range(40):
        image, _ = render_beads(np.random.default_rng(index), 128, 25, "brightfield", bit_depth=8)
        tifffile.imwrite(folder / f"frame_{index:03d}.tif", image)
    return folder


def predict_cmd(frames: Path, out: Path, *extra: str) -> list[str]:
    return [str(BIN / "beadseg-predict"), f"input={frames}", f"output={out}", f"hydra.run.dir={out.parent / 'hydra'}",
            "num_workers=1", *extra]


def tables(out: Path) -> tuple[str, str]:
    return (out / "counts.csv").read_text(), (out / "objects.csv").read_text()


def predict_frames_here(frames: Path, out: Path, *extra: str) -> dict:
    """beadseg-predict in this process (the command's own checks; no interpreter start to wait for); module
    fixtures use it, so it cannot be the function-scoped ``predict_here`` fixture of conftest."""
    from hydra import compose, initialize_config_dir

    from beadseg.config import CONFIG_DIR
    from beadseg.inference.predict import predict

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("predict", [f"input={frames}", f"output={out}", f"paths.output_dir={out.parent / 'hydra'}",
                                  "num_workers=1", *extra])
    return predict(cfg)


@pytest.fixture(scope="module")
def uninterrupted(many_frames, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("whole") / "out"
    predict_frames_here(many_frames, out)
    counts = list(table(out / "counts.csv"))
    assert len(counts) == 40 and all(int(row["count"]) > 10 for row in counts)  # the model finds the beads
    return out


@pytest.mark.slow
def test_a_killed_prediction_resumes_to_the_same_tables(many_frames, uninterrupted, tmp_path):
    out = tmp_path / "out"
    process = subprocess.Popen(predict_cmd(many_frames, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        parts = list((out / "parts").glob("*.jsonl")) if (out / "parts").is_dir() else []
        if sum(p.read_text().count("\n") for p in parts) >= 5:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (out / "counts.csv").exists()  # killed before the end
    # what a kill during a write leaves (it lands there now and then): the killed run's half-written file
    (out / "instances" / f".0123456789ab.{process.pid}.partial").write_bytes(b"half a label image")
    with pytest.raises(FileExistsError, match="resume=true"):
        predict_frames_here(many_frames, out)
    with pytest.raises(ValueError, match="postprocess"):  # resuming with other settings is refused
        predict_frames_here(many_frames, out, "resume=true", "postprocess.min_area=9")
    resumed = predict_frames_here(many_frames, out, "resume=true")
    assert resumed["done"] == 40 and not resumed["failed"]
    assert tables(out) == tables(uninterrupted)
    done_before = sum(1 for p in (out / "parts").glob("*.jsonl") for _ in p.read_text().splitlines())
    assert done_before >= 40  # every image recorded; those finished before the kill were not predicted again
    assert not list(out.rglob(".*.partial")) and not (out / ".scratch").exists()


@pytest.mark.slow
def test_ddp_prediction_with_two_processes_does_every_image_once(many_frames, uninterrupted, tmp_path):
    out = tmp_path / "out"
    done = subprocess.run(predict_cmd(many_frames, out, "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
                                      "post_workers=1"),  # each rank its own finishing pool
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    parts = sorted((out / "parts").glob("*.jsonl"))
    names = [json.loads(line)["image"] for p in parts for line in p.read_text().splitlines()]
    assert len(parts) == 2 and len(names) == len(set(names)) == 40
    assert tables(out) == tables(uninterrupted)


def test_manifest_row_survives_a_damaged_cache(synthetic_folder):
    rows = FolderSource(synthetic_folder).entries()
    cache = next((synthetic_folder / ".beadseg").glob("*.json"))
    cache.write_text('{"version": 1, "rows": [')  # cut short
    assert FolderSource(synthetic_folder).entries() == rows
    assert json.loads(cache.read_text())["rows"] == rows


@pytest.mark.slow
def test_loader_workers_read_every_validation_image_once(synthetic_folder):
    datamodule = BeadDataModule(FolderSource(synthetic_folder), patch_size=48, val_fraction=0.5, num_workers=2)
    datamodule.setup()
    for dataset in datamodule.datasets.values():  # workers started by spawn/forkserver get a pickled copy
        assert len(pickle.loads(pickle.dumps(dataset))) == len(dataset)
    names = [name for batch in datamodule.val_dataloader() for name in batch["name"]]
    expected = [row["name"] for row in datamodule.split_table if row["split"] == "val"]
    assert sorted(names) == sorted(expected) and len(expected) >= 3
    batches = len(datamodule.datasets["train"]) // datamodule.batch_size  # the last, short batch is dropped
    assert sum(len(batch["image"]) for batch in datamodule.train_dataloader()) == batches * datamodule.batch_size


def test_masks_from_another_folder_get_their_own_manifest(synthetic_folder, tmp_path):
    fixed = tmp_path / "fixed masks"
    fixed.mkdir()
    for mask in (synthetic_folder / "masks").iterdir():
        tifffile.imwrite(fixed / mask.name, np.zeros((96, 96), np.uint16) + (tifffile.imread(mask) > 0))
    rows = FolderSource(synthetic_folder, masks=str(fixed)).entries()
    assert {row["files"]["mask"] for row in rows} == {str(p) for p in fixed.iterdir()}
    assert [p.name for p in (synthetic_folder / ".beadseg").iterdir() if p.is_dir()] == []  # one file, no sub-folders
    assert all(row["bead_count"] >= 1 for row in rows)


@pytest.mark.slow
def test_resume_refuses_another_input_and_leaves_the_tables(many_frames, uninterrupted, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    for name in ("frame_000.tif", "frame_001.tif"):  # shares names with the first run's input
        tifffile.imwrite(other / name, render_beads(np.random.default_rng(99), 128, 5, "brightfield", bit_depth=8)[0])
    before = tables(uninterrupted)
    # a ValueError: the command prints it as one line, no traceback
    with pytest.raises(ValueError, match=re.escape(f"input={many_frames.resolve()} (40 files)")):
        predict_frames_here(other, uninterrupted, "resume=true")
    assert tables(uninterrupted) == before


def test_two_runs_claiming_one_output_at_once_never_both_win(tmp_path):
    import threading

    from beadseg.inference.journal import claim_output

    for attempt in range(30):
        out, start = tmp_path / f"out{attempt}", threading.Barrier(2)
        outcomes = []

        def claim(out=out, start=start, outcomes=outcomes):
            start.wait()
            try:
                claim_output(out, {"ckpt": None}, resume=False)
                outcomes.append("claimed")
            except FileExistsError:
                outcomes.append("refused")

        threads = [threading.Thread(target=claim) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes) == ["claimed", "refused"], attempt
        assert not list(out.glob(".*.partial"))


def test_an_output_that_is_a_file_is_named(tmp_path):
    from beadseg.inference.journal import claim_output

    (tmp_path / "out").write_text("not a folder")
    with pytest.raises(FileExistsError, match="is a file, not a folder"):
        claim_output(tmp_path / "out", {}, resume=False)


def test_a_missing_shard_is_named_and_only_skipped_on_request(synthetic_folder, tmp_path):
    from beadseg.datasets.packed import PackedSource, pack

    pack(FolderSource(synthetic_folder), tmp_path / "pack", chunk_bytes="64KB")
    shards = sorted((tmp_path / "pack").glob("*.bin"))
    assert len(shards) >= 2
    shards[0].unlink()
    with pytest.raises(BeadDataError, match=rf"shard\(s\) {shards[0].name} are missing"):
        PackedSource(str(tmp_path / "pack"))
    source = PackedSource(str(tmp_path / "pack"), skip_missing=True)
    assert 0 < len(source.entries()) < len(source.meta["rows"])
