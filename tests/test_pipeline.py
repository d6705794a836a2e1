"""Prediction and evaluation as a pipeline: the network batched over whole frames, post-processing and writing in
worker processes. Every file and table must equal the serial path's (one frame at a time, all in one process)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import threading
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from beadseg.beads.instances import centre_peaks, peak_markers
from beadseg.beads.postprocess import MaskAndPeaks, PostProcess
from beadseg.data.synthetic import render_beads
from beadseg.evaluation.evaluate import evaluate
from beadseg.inference.predict import predict
from beadseg.inference.predictor import ModelPredictor, load_predictor
from beadseg.inference.task import PredictionWriter, start_reader
from beadseg.inference.writers import OutputOptions, overlay_every
from beadseg.workers.handover import SharedArray, SharedBlocks, call_placed
from beadseg.workers.pool import WorkerPool
from tests.helpers import table, write_pair


@pytest.fixture(scope="module")
def frames(tmp_path_factory) -> Path:
    """Four 16-bit frames of one size with 20-90 beads, one of another size, and a damaged file."""
    folder = tmp_path_factory.mktemp("frames")
    rng = np.random.default_rng(5)
    for index, beads in enumerate((20, 45, 90, 60)):
        image, _ = render_beads(rng, 192, beads, "brightfield", bit_depth=16, n_debris=4)
        tifffile.imwrite(folder / f"f{index}.tif", image[:160])
    image, _ = render_beads(rng, 128, 30, "fluorescence", bit_depth=16)
    tifffile.imwrite(folder / "other_size.tif", image)
    (folder / "damaged.tif").write_bytes(b"II*\x00 cut short")
    return folder



def test_batched_frames_equal_one_at_a_time():
    predictor = load_predictor(None)
    rng = np.random.default_rng(2)
    images = [render_beads(rng, 96, 25, "brightfield", bit_depth=8)[0] for _ in range(3)]
    together = predictor.predict_frames(images + [images[0][:64]])
    for image, (maps, _, found) in zip(images + [images[0][:64]], together):
        assert found is None  # only asked for by the prediction pipeline
        alone, _ = predictor.predict(image)
        np.testing.assert_allclose(maps, alone, atol=1e-5)
        assert maps.shape == (2, *image.shape)


def test_threshold_and_peaks_found_on_the_device_equal_the_hosts():
    predictor = load_predictor(None)
    post = PostProcess().for_model(predictor)
    rng = np.random.default_rng(4)
    images = [render_beads(rng, 128, beads, "brightfield", bit_depth=16, n_debris=3)[0] for beads in (15, 60)]
    for image, (maps, _, found) in zip(images, predictor.predict_frames(images, post)):
        on_host = post.candidates(maps)
        assert on_host.max() >= 10  # the model finds the beads: the comparison is not vacuous
        np.testing.assert_array_equal(found.mask, maps[0] > predictor.threshold)
        np.testing.assert_array_equal(found.peaks, centre_peaks(maps[1], found.mask, post.min_peak, post.peak_distance))
        np.testing.assert_array_equal(post.candidates(maps, found), on_host)
        chunked = replace(post, chunk=48, halo=24)  # the found pixels and peaks cropped chunk by chunk
        np.testing.assert_array_equal(chunked.instances(maps, image, found=found).labels,
                                      chunked.instances(maps, image).labels)


def test_under_mixed_precision_the_pipeline_brings_maps_back_in_half_precision():
    predictor = load_predictor(None, partial(ModelPredictor, amp=True))  # fp16 autocast, here on the CPU
    post = PostProcess().for_model(predictor)
    image = render_beads(np.random.default_rng(4), 128, 40, "brightfield", bit_depth=16)[0]
    maps, _, found = predictor.predict_frames([image], post)[0]
    assert maps.dtype == np.float16 and predictor.predict(image)[0].dtype == np.float32  # only the pipeline's
    full_precision = load_predictor(None)
    beads = full_precision.predict(image)[0]
    expected = post.candidates(beads).max()
    assert expected >= 30 and abs(int(post.candidates(maps, found).max()) - expected) <= 1


def test_peaks_are_local_maxima_and_a_plateau_is_one_bead():
    heat = np.zeros((12, 20), np.float32)
    heat[3, 3], heat[3, 6], heat[8, 12], heat[8, 13] = 0.9, 0.8, 0.7, 0.7  # (3, 6): 3 px from a higher peak
    heat[10, 2] = 0.2  # under the peak threshold
    mask = np.ones(heat.shape, bool)
    assert centre_peaks(heat, mask, 0.3, 2).tolist() == [[3, 3], [3, 6], [8, 12], [8, 13]]
    assert centre_peaks(heat, mask, 0.3, 3).tolist() == [[3, 3], [8, 12], [8, 13]]  # (3, 6) within 3 px of a higher
    markers = peak_markers(centre_peaks(heat, mask, 0.3, 3), heat.shape)
    assert markers.max() == 2 and markers[8, 12] == markers[8, 13] == 2  # the plateau's two pixels: one marker
    assert centre_peaks(heat, heat < 0.85, 0.3, 3).tolist() == [[3, 6], [8, 12], [8, 13]]  # outside the mask: 0


def test_the_loader_measures_each_frames_noise_while_the_network_runs(frames):
    """The finishing step's contrast rule takes the noise the loader measured: the same number as measuring it there
    (so that the step between network passes is shorter, and every table stays as it was)."""
    from beadseg.beads.measure import image_noise
    from beadseg.inference.task import InputImages

    frame = InputImages([frames / "f2.tif"], [0])[0]
    assert frame.readable and frame.noise == image_noise(tifffile.imread(frames / "f2.tif")) and frame.noise > 0
    assert InputImages([frames / "damaged.tif"], [0])[0].noise is None


def test_worker_pool_and_batches_write_what_the_serial_path_writes(frames, tmp_path, compose_config):
    runs = {}
    for name, overrides in {"serial": ["post_workers=0", "frames_per_step=1", "num_workers=0"],
                            "pipeline": ["post_workers=2", "frames_per_step=4", "overlays=2"]}.items():
        out = tmp_path / name
        cfg = compose_config("predict", [f"input={frames}", f"output={out}", f"paths.output_dir={out}", *overrides])
        runs[name] = predict(cfg)
    serial, pipeline = tmp_path / "serial", tmp_path / "pipeline"
    counts = table(serial / "counts.csv")
    assert [row["image"] for row in counts] == ["f0", "f1", "f2", "f3", "other_size"]
    found = [int(row["count"]) for row in counts]  # the model finds the beads: the comparison is not vacuous
    assert sum(found) >= 100 and sum(n >= 10 for n in found) >= 4, found  # (f1's beads drown in its noise)
    for name in ("counts.csv", "objects.csv", "errors.csv"):
        assert (serial / name).read_bytes() == (pipeline / name).read_bytes(), name
    for folder in ("masks", "instances"):
        for path in sorted((serial / folder).iterdir()):
            assert path.read_bytes() == (pipeline / folder / path.name).read_bytes(), path
    assert sorted(p.name for p in (serial / "overlays").iterdir()) == [f"{n}.png" for n in
                                                                       ("f0", "f1", "f2", "f3", "other_size")]
    # overlays=2: every second frame of the input (its 6 files sorted by name: damaged, f0, f1, f2, f3, other_size)
    assert sorted(p.name for p in (pipeline / "overlays").iterdir()) == ["f1.png", "f3.png"]
    assert runs["pipeline"]["failed"] and "damaged.tif" in runs["pipeline"]["failed"][0]["image"]


def test_eval_sweep_in_workers_equals_the_serial_sweep(tmp_path, compose_config):
    rng = np.random.default_rng(9)
    for index in range(3):
        image, labels = render_beads(rng, 96, 20 + 15 * index, "brightfield", bit_depth=8)
        write_pair(tmp_path / "data", f"i{index}", image, ((labels > 0) * 255).astype(np.uint8))
    metrics = {}
    for workers in (0, 2):
        out = tmp_path / f"eval{workers}"
        cfg = compose_config("eval", [f"data.root={tmp_path / 'data'}", f"output={out}", f"paths.output_dir={out}",
                                      f"post_workers={workers}", "thresholds=[0.3,0.5,0.7]", "peak_thresholds=[0.2]"])
        evaluate(cfg)
        metrics[workers] = json.loads((out / "metrics.json").read_text())
        metrics[workers].pop("ckpt", None)
    assert metrics[0]["objects"]["centroid"]["f1"] > 0.5  # it finds the beads
    assert metrics[0] == metrics[2]
    assert (tmp_path / "eval0" / "per_image.csv").read_bytes() == (tmp_path / "eval2" / "per_image.csv").read_bytes()


def test_arrays_reach_workers_through_shared_blocks_unchanged(monkeypatch):
    rng = np.random.default_rng(0)
    frame = {"image": rng.integers(0, 2**16, (300, 400), dtype=np.uint16), "name": "f0",
             "probability": rng.random((2, 300, 400)).astype(np.float16), "small": np.arange(5),
             "found": MaskAndPeaks(rng.random((300, 400)) > 0.5, np.array([[1, 2], [3, 4]]))}
    blocks = SharedBlocks(1)
    try:
        index, placed = blocks.place((frame, "options"))
        assert isinstance(placed[0]["image"], SharedArray) and isinstance(placed[0]["probability"], SharedArray)
        assert isinstance(placed[0]["found"], MaskAndPeaks) and isinstance(placed[0]["found"].mask, SharedArray)
        assert placed[0]["small"] is frame["small"] and placed[1] == "options"  # small arrays are pickled as they are

        def same(seen: dict, options: str) -> bool:
            return options == "options" and all(np.array_equal(seen[key], frame[key]) and seen[key].dtype == frame[key].dtype
                                                for key in ("image", "probability", "small")) and \
                np.array_equal(seen["found"].mask, frame["found"].mask)

        assert call_placed(same, placed)
        blocks.release(index)
        first = blocks.blocks[index].name
        bigger = {**frame, "image": np.ones((600, 800), np.uint16)}  # more than the block holds: it grows
        index, placed = blocks.place((bigger, "options"))
        assert call_placed(lambda seen, _: np.array_equal(seen["image"], bigger["image"]), placed)
        assert blocks.blocks[index].name != first and blocks.blocks[index].size >= bigger["image"].nbytes  # grown
        monkeypatch.setattr("shutil.disk_usage", lambda path: type("Usage", (), {"free": 10})())
        blocks.release(index)
        huge = {"image": np.ones((2000, 2000), np.uint16)}
        assert blocks.place((huge,)) == (None, (huge,)) and blocks.free  # no room in /dev/shm: pickled instead
    finally:
        blocks.close()


def test_overlays_auto_caps_the_pictures_of_a_large_input():
    assert overlay_every("auto", 150) == 1 and overlay_every("auto", 40_000) == 200
    options = OutputOptions(overlays=overlay_every("auto", 40_000))
    assert sum(options.overlay_for(index) for index in range(40_000)) == 200
    assert overlay_every(False, 10) == 0 and overlay_every(3, 10) == 3
    with pytest.raises(ValueError, match="overlays=al"):
        overlay_every("al", 10)


def test_without_workers_a_steps_frames_finish_side_by_side_on_threads_within_the_step(monkeypatch):
    """post_workers=0 (a network on the CPU): the frames of a step are finished together on this process's threads
    (each call waits at a barrier only two calls running at once pass), handed on in the order they were
    submitted, and all before end_step returns (the network's next pass gets every core)."""
    monkeypatch.setattr("beadseg.workers.pool.usable_cpus", lambda: 2)
    together = threading.Barrier(2, timeout=10)
    results: list[tuple[str, bool]] = []

    def finish(name: str, seconds: float) -> tuple[str, bool]:
        together.wait()  # a BrokenBarrierError if the calls ran one after the other
        time.sleep(seconds)
        return name, threading.current_thread() is not threading.main_thread()

    with WorkerPool(0, results.append) as pool:
        pool.submit(finish, "first", 0.3)  # done last
        pool.submit(finish, "second", 0.0)
        pool.end_step()
        assert results == [("first", True), ("second", True)]


class SchedulingPolicies(torch.utils.data.Dataset):
    """Each item: the scheduling policy of the process that reads it."""

    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> int:
        return os.sched_getscheduler(0)


FRESH_PAGES = """
import resource, sys
import numpy as np
from beadseg.system import keep_freed_memory
if sys.argv[1] == "keep":
    keep_freed_memory()
def frame_arrays():  # a frame's work: arrays of 6-12 MB made and freed
    values = np.ones((1080, 1440)); return float((values.astype(np.float32) > 0.5).astype(np.int32).sum())
frame_arrays()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    frame_arrays()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc settings")
def test_a_process_that_keeps_its_freed_memory_takes_no_fresh_pages_for_the_next_frame():
    """keep_freed_memory (loader and finishing workers): ten frames' arrays after the first take no fresh pages
    from the kernel, where by default each is mapped anew (hundreds of page faults a frame, or fewer huge
    pages)."""
    faults = {how: int(subprocess.run([sys.executable, "-c", FRESH_PAGES, how], capture_output=True, text=True,
                                      check=True).stdout) for how in ("default", "keep")}
    assert faults["default"] >= 10 * 10 and faults["keep"] < faults["default"] / 20, faults  # >= 10 a frame


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="Linux's idle scheduling class")
def test_helpers_beside_a_network_on_the_cpu_take_only_the_cores_it_leaves_idle(frames, tmp_path, compose_config,
                                                                                 monkeypatch):
    """Loader and finishing workers beside a CPU network run as SCHED_IDLE (a helper at the network's priority
    stalls its threads); beside none (or with yield_cores off) as ordinary processes. beadseg-predict on the CPU
    asks for it."""
    policies: list[int] = []
    with WorkerPool(1, policies.append, yield_cores=True) as pool:
        pool.submit(os.sched_getscheduler, 0)
    with WorkerPool(1, policies.append) as pool:
        pool.submit(os.sched_getscheduler, 0)
    assert policies == [os.SCHED_IDLE, os.SCHED_OTHER]
    loader = torch.utils.data.DataLoader(SchedulingPolicies(), num_workers=1, worker_init_fn=partial(start_reader, yield_cores=True))
    assert [int(policy) for policy in loader] == [os.SCHED_IDLE, os.SCHED_IDLE]
    assert os.sched_getscheduler(0) == os.SCHED_OTHER  # this process is left as it was
    asked = []

    class Recorded(PredictionWriter):
        def __init__(self, *args, **kwargs) -> None:
            asked.append(kwargs.get("yield_cores"))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr("beadseg.inference.predict.PredictionWriter", Recorded)
    out = tmp_path / "out"
    predict(compose_config("predict", [f"input={frames}", f"output={out}", f"paths.output_dir={out}"]))
    assert asked == [True] and int(table(out / "counts.csv")[0]["count"]) > 0
