"""Bead size given or found: the estimate on beads of known size, frames brought to the model's bead size and their
beads counted on their own grid, the settings refused by name."""

import math

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi
from skimage.transform import rescale

from beadseg.beads.postprocess import PostProcess
from beadseg.beads.size import BeadSizeError, BeadSizing, estimate_diameter
from beadseg.checkpoint import learned_diameter
from beadseg.inference.predictor import load_predictor
from beadseg.settings import SettingError, check_settings
from tests.helpers import table

DIAMETER = 14.0


def bead_centres(rng: np.random.Generator, diameter: float, count: int, size: int) -> list[np.ndarray]:
    """``count`` centres of beads of ``diameter`` px in a ``size``² frame, none touching another or the edge."""
    centres: list[np.ndarray] = []
    while len(centres) < count:
        centre = rng.uniform(diameter / 2 + 8, size - diameter / 2 - 8, 2)
        if all(math.dist(centre, other) > diameter + 3 for other in centres):
            centres.append(centre)
    return centres


def scene(diameter: float = DIAMETER, count: int = 24, size: int = 256, seed: int = 0, bright: bool = False,
          ringed: bool = False) -> tuple[np.ndarray, int]:
    """A frame of ``count`` beads of ``diameter`` px, none touching another or the edge: dark disks on a bright
    field (``bright``: the reverse; ``ringed``: a bright centre in a dark ring), blurred, with noise; 8-bit."""
    rng = np.random.default_rng(seed)
    radius, centres = diameter / 2, bead_centres(rng, diameter, count, size)
    yy, xx = np.mgrid[:size, :size] + 0.5
    distance = np.min([np.hypot(yy - cy, xx - cx) for cy, cx in centres], axis=0)
    disk = np.clip(radius - distance + 0.5, 0, 1)
    if ringed:
        core = np.clip(0.7 * radius - distance + 0.5, 0, 1)
        profile = 0.9 * core - 0.5 * (disk - core)
    else:
        profile = disk if bright else -disk
    image = 120 + 60 * ndi.gaussian_filter(profile, 1.0) + rng.normal(0, 3, (size, size))
    return np.clip(image, 0, 255).astype(np.uint8), count


@pytest.mark.parametrize("kind", ["dark", "bright", "ringed"])
def test_the_estimate_finds_the_beads_size_at_any_scale(kind):
    image, _ = scene(bright=kind == "bright", ringed=kind == "ringed")
    measured = {}
    for factor in (0.5, 1, 2):
        frame = image if factor == 1 else np.clip(rescale(image.astype(float), factor, order=3, preserve_range=True,
                                                          anti_aliasing=factor < 1), 0, 255)
        estimate = estimate_diameter(frame)
        assert estimate.trusted and estimate.polarity == ("dark" if kind == "dark" else "bright"), estimate
        measured[factor] = estimate.diameter
    if kind != "ringed":  # a ringed bead is measured by its bright centre (as the trackpy tutorial's colloids)
        assert measured[1] == pytest.approx(DIAMETER, rel=0.1)
    assert measured[0.5] == pytest.approx(measured[1] / 2, rel=0.12)
    assert measured[2] == pytest.approx(measured[1] * 2, rel=0.12)


def test_no_beads_or_two_sizes_are_not_trusted():
    rng = np.random.default_rng(3)
    noise = rng.normal(100, 5, (256, 256))
    assert not estimate_diameter(noise).trusted and estimate_diameter(noise).reason
    small, _ = scene(6, 30, 384, seed=1)
    large, _ = scene(20, 12, 384, seed=2)
    mixed = np.minimum(small, large)  # two stocks in one frame
    estimate = estimate_diameter(mixed)
    assert not estimate.trusted and ("two bead sizes" in estimate.reason or "disagree" in estimate.reason)
    assert estimate_diameter(small).trusted and estimate_diameter(large).trusted


def test_sizing_given_in_px_or_um_estimated_or_the_models():
    frame = np.zeros((128, 128))
    assert BeadSizing(14.0, model_diameter=7.0).for_frame(frame).zoom == 0.5
    assert BeadSizing("auto", diameter_um=2.8, model_diameter=7.0).for_frame(frame, 0.2).diameter == pytest.approx(14)
    with pytest.raises(BeadSizeError, match="image.bead_diameter_um"):
        BeadSizing("auto", diameter_um=2.8, model_diameter=7.0).for_frame(frame, None)
    with pytest.raises(BeadSizeError, match="image.bead_diameter: beads of 200.0 px do not fit"):
        BeadSizing(200.0, model_diameter=7.0).for_frame(frame)
    fallback = BeadSizing("auto", model_diameter=7.0).for_frame(np.random.default_rng(0).normal(0, 1, (128, 128)))
    assert (fallback.source, fallback.diameter, fallback.zoom) == ("model", 7.0, 1.0) and fallback.note
    assert BeadSizing("model", model_diameter=7.0).for_frame(scene()[0]).zoom == 1.0
    assert BeadSizing(8.5, model_diameter=7.0).for_frame(frame).zoom == 1.0  # within the tolerance: as it is
    assert BeadSizing(0.5, model_diameter=7.0).for_frame(frame).zoom == 8.0  # bounded either way


@pytest.fixture(scope="module")
def shipped():
    predictor = load_predictor()
    assert predictor.bead_diameter and 4 < predictor.bead_diameter < 12  # the shipped model stores what it learned
    return predictor


def count(predictor, image, sizing: BeadSizing) -> tuple[int, np.ndarray, float]:
    size = sizing.for_frame(image)
    maps, _ = predictor.predict(image, zoom=size.zoom)
    labels = PostProcess(edge_rule="none").for_model(predictor).at_scale(1 / size.zoom).instances(maps, image).labels
    return int(labels.max()), labels, size.zoom


def test_a_frame_of_14_px_beads_is_counted_with_the_size_given_estimated_and_at_other_scales(shipped):
    image, truth = scene()
    for setting in (DIAMETER, "auto"):
        found, labels, zoom = count(shipped, image, BeadSizing(setting, model_diameter=shipped.bead_diameter))
        assert found == truth and labels.shape == image.shape and zoom < 1
    for factor in (0.5, 2.0):
        frame = np.clip(rescale(image.astype(float), factor, order=3, preserve_range=True, anti_aliasing=factor < 1),
                        0, 255).astype(np.uint8)
        for setting in (DIAMETER * factor, "auto"):
            found, labels, _ = count(shipped, frame, BeadSizing(setting, model_diameter=shipped.bead_diameter))
            assert found == truth and labels.shape == frame.shape, (factor, setting, found)
        if factor == 2:  # beads four times the model's, as they are: miscounted (the fault the resizing mends)
            as_it_is, _, _ = count(shipped, frame, BeadSizing("model", model_diameter=shipped.bead_diameter))
            assert abs(as_it_is - truth) > 0.2 * truth


def test_huge_frames_are_resized_window_by_window(shipped):
    image, truth = scene(size=320, count=40, seed=4)
    size = BeadSizing(DIAMETER, model_diameter=shipped.bead_diameter).for_frame(image)
    whole, _ = shipped.predict(image, zoom=size.zoom)
    shipped.tile, shipped.window = 128, 96  # as a frame larger than inference.tile goes
    passes: list[int] = []
    try:
        windows, _ = shipped.predict(image, zoom=size.zoom, on_tile_row=passes.append)
        assert sum(passes) == shipped.tiles(image.shape, size.zoom) > 1  # what the widget's progress bar expects
    finally:
        shipped.tile, shipped.window = 2048, 512
    post = PostProcess(edge_rule="none").for_model(shipped).at_scale(1 / size.zoom)
    assert windows.shape == whole.shape == (2, 320, 320)
    assert post.instances(windows, image).labels.max() == post.instances(whole, image).labels.max() == truth


def test_counts_name_the_diameter_and_its_source(shipped, tmp_path, predict_here):
    import imageio.v3 as iio

    folder = tmp_path / "frames"
    folder.mkdir()
    image, truth = scene()
    iio.imwrite(folder / "big_beads.png", image)
    iio.imwrite(folder / "empty.png", np.random.default_rng(0).normal(120, 3, (128, 128)).clip(0, 255).astype(np.uint8))
    out = tmp_path / "given"
    predict_here(f"input={folder}", f"output={out}", "image.bead_diameter=14", "postprocess.edge_rule=none")
    rows = {row["image"]: row for row in table(out / "counts.csv")}
    assert rows["big_beads"]["bead_diameter"] == "14.0" and rows["big_beads"]["bead_diameter_source"] == "given"
    assert float(rows["big_beads"]["network_zoom"]) == pytest.approx(shipped.bead_diameter / 14, rel=1e-3)
    assert int(rows["big_beads"]["count"]) == truth
    out = tmp_path / "auto"
    predict_here(f"input={folder}", f"output={out}", "postprocess.edge_rule=none")
    rows = {row["image"]: row for row in table(out / "counts.csv")}
    assert rows["big_beads"]["bead_diameter_source"] == "estimated" and int(rows["big_beads"]["count"]) == truth
    assert float(rows["big_beads"]["bead_diameter"]) == pytest.approx(DIAMETER, rel=0.1)
    assert rows["empty"]["bead_diameter_source"] == "model" and rows["empty"]["count"] == "0"  # no error, no beads
    assert float(rows["empty"]["network_zoom"]) == 1.0


@pytest.mark.parametrize("override, key", [("image.bead_diameter=0", "image.bead_diameter"),
                                           ("image.bead_diameter=-3", "image.bead_diameter"),
                                           ("image.bead_diameter=nan", "image.bead_diameter"),
                                           ("image.bead_diameter=big", "image.bead_diameter"),
                                           ("image.bead_diameter_um=0", "image.bead_diameter_um"),
                                           ("image.diameter_tolerance=0.5", "image.diameter_tolerance")])
def test_bad_sizes_are_refused_by_name(compose_config, override, key):
    for command in ("predict", "eval"):
        overrides = [override, "input=x"] if command == "predict" else [override, "data.root=x"]
        with pytest.raises(SettingError, match=f"^{key}="):
            check_settings(compose_config(command, overrides), command)


def test_a_size_the_frames_cannot_hold_stops_before_any_output(tmp_path, predict_here):
    import imageio.v3 as iio

    folder = tmp_path / "frames"
    folder.mkdir()
    iio.imwrite(folder / "a.png", scene()[0])
    with pytest.raises(BeadSizeError, match="image.bead_diameter_um=2.5 needs a pixel size"):
        predict_here(f"input={folder}", f"output={tmp_path / 'um'}", "image.bead_diameter_um=2.5")
    with pytest.raises(BeadSizeError, match="image.bead_diameter: beads of 300.0 px do not fit"):
        predict_here(f"input={folder}", f"output={tmp_path / 'huge'}", "image.bead_diameter=300")
    assert not (tmp_path / "um").exists() and not (tmp_path / "huge").exists()


def test_the_learned_diameter_travels_in_the_checkpoint():
    from beadseg.pretrained import CHECKPOINT

    stored = torch.load(CHECKPOINT, map_location="cpu", weights_only=True)["hyper_parameters"]
    assert learned_diameter(stored) == stored["bead_diameter"]
    assert learned_diameter({"bead_area": math.pi * 16}) == pytest.approx(8.0)


def test_fine_tuning_reads_folder_frames_at_the_models_bead_size(tmp_path):
    import imageio.v3 as iio

    from beadseg.data.composite import CompositeSource
    from beadseg.data.folder import FolderSource
    from beadseg.data.sources import ConcatSource
    from beadseg.training.task import read_at_bead_size

    for sub in ("images", "masks"):
        (tmp_path / sub).mkdir()
    image, truth = scene()
    mask = (image < 100).astype(np.uint8) * 255  # the dark disks
    iio.imwrite(tmp_path / "images" / "a.png", image)
    iio.imwrite(tmp_path / "masks" / "a.png", mask)
    folder = FolderSource(tmp_path)
    composites = CompositeSource(tmp_path, n_images=1)
    told = read_at_bead_size(ConcatSource([folder], train_only=[composites]), BeadSizing(14.0, model_diameter=7.0))
    assert told == 2 and folder.sizing is composites.folder.sizing is not None
    sample = folder.read(folder.entries()[0])
    assert sample.image.shape == (128, 128) and sample.image.dtype == np.uint8
    areas = np.bincount(sample.labels.ravel())[1:]
    assert sample.labels.max() == truth and np.median(np.sqrt(4 * areas / np.pi)) == pytest.approx(7, rel=0.15)
    folder.sizing = BeadSizing("model", model_diameter=7.0)  # image.bead_diameter=model: frames as they are
    assert folder.read(folder.entries()[0]).image.shape == (256, 256)


def test_the_learned_size_comes_from_whole_beads_and_enough_of_them():
    from beadseg.training.module import MIN_SIZED_BEADS, learned_bead_size, whole_bead_areas

    labels = np.zeros((32, 32), int)
    for index, (row, col) in enumerate([(4, 4), (4, 20), (20, 12)], start=1):
        labels[row:row + 8, col:col + 8] = index  # three whole 8x8 beads
    labels[26:32, 26:32] = 4  # one the patch cuts: 36 px of a larger bead
    assert sorted(whole_bead_areas(labels)) == [64, 64, 64]
    assert learned_bead_size([64] * (MIN_SIZED_BEADS - 1)) is None  # a fine-tune keeps its start's diameter
    assert learned_bead_size([64] * MIN_SIZED_BEADS) == (64.0, pytest.approx(9.027, abs=1e-3))
    area, diameter = learned_bead_size([20] * 20 + [120] * 20)  # beads of every size: no debris fallback
    assert area is None and diameter == pytest.approx(math.sqrt(4 * 70 / math.pi), abs=1e-3)


def large_scene(diameter: float, count: int, size: int = 1024, seed: int = 0) -> np.ndarray:
    """:func:`scene`'s dark beads on a frame over the estimate's ``MAX_PIXELS`` (each pixel's distance to the
    nearest centre, without a map per bead)."""
    rng = np.random.default_rng(seed)
    radius, centres = diameter / 2, bead_centres(rng, diameter, count, size)
    fine = 4  # centres placed to a quarter px
    grid = np.zeros((size * fine, size * fine), bool)
    for cy, cx in centres:
        grid[int(cy * fine), int(cx * fine)] = True
    distance = ndi.distance_transform_edt(~grid)[fine // 2 :: fine, fine // 2 :: fine] / fine
    image = 120 - 60 * ndi.gaussian_filter(np.clip(radius - distance + 0.5, 0, 1), 1.0) + rng.normal(0, 3, distance.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("diameter, count", [(4.0, 300), (12.0, 120), (28.0, 30)])
def test_frames_over_the_pixel_bound_are_searched_shrunk_and_measured_where_beads_keep_their_size(diameter, count):
    """A 1024² frame is searched shrunk 2x2: beads of 28 px are measured there, beads of 12 px (6 px there) found
    there and measured in the frame itself, beads of 4 px (2 px there: too small to survive it) found in the
    frame's centre at full size; each within 10 % of the drawn diameter."""
    from beadseg.beads.size import MAX_PIXELS

    frame = large_scene(diameter, count)
    assert frame.size > MAX_PIXELS
    estimate = estimate_diameter(frame)
    assert estimate.trusted and estimate.polarity == "dark", estimate
    assert estimate.diameter == pytest.approx(diameter, rel=0.1)


def test_the_estimates_vectorised_steps_equal_numpy_to_the_bit():
    """The estimate measures its beads in stacks and takes its medians with one partition: numpy's per-row
    percentile, median and block mean are the independent truth, bit for bit (ties, odd and even sizes)."""
    from beadseg.beads.size import _median, _percentile_within, _shrunk

    rng = np.random.default_rng(4)
    values = np.round(rng.normal(0, 3, (50, 81))).astype(np.float32)  # many ties
    within = rng.random((50, 81)) < rng.uniform(0.02, 1, (50, 1))
    within[:, 0] = True
    for percent in (25, 75):
        expected = [np.percentile(row[keep], percent) for row, keep in zip(values, within)]
        assert _percentile_within(values, within, percent).tolist() == expected
    for size in (1, 2, 7, 10, 4097):
        sample = rng.normal(0, 1e3, size).astype(np.float32)
        assert _median(sample.copy()) == np.median(sample)
    for factor in (2, 3, 5):
        frame = rng.integers(0, 65536, (100 + factor, 90)).astype(np.uint16)  # rows and columns left over
        height, width = frame.shape[0] // factor, frame.shape[1] // factor
        blocks = frame[: height * factor, : width * factor].astype(np.float32).reshape(height, factor, width, factor)
        expected = blocks.mean(axis=(1, 3))
        assert np.array_equal(_shrunk(frame, factor, band=7), expected)
