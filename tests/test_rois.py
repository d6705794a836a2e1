"""Beads as Fiji ROI sets and QuPath GeoJSON detections: read back, each outline encloses exactly its bead's
pixels in the instance labels (the independent truth), also for a frame post-processed in chunks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from skimage.draw import polygon as fill_polygon

from beadseg.data.synthetic import render_beads
from beadseg.formats.rois import trace_outline
from beadseg.inference.predict import predict
from tests.helpers import table

roifile = pytest.importorskip("roifile")


def filled(outline_rows: np.ndarray, outline_cols: np.ndarray, shape) -> np.ndarray:
    """The pixels a pixel-corner polygon encloses (pixel (r, c) spans r..r+1, c..c+1: its centre is inside)."""
    mask = np.zeros(shape, bool)
    mask[fill_polygon(np.asarray(outline_rows) - 0.5, np.asarray(outline_cols) - 0.5, shape)] = True
    return mask



@pytest.fixture(scope="module")
def predicted(tmp_path_factory) -> Path:
    from hydra import compose, initialize_config_dir

    from beadseg.config import CONFIG_DIR

    folder = tmp_path_factory.mktemp("frames")
    image, _ = render_beads(np.random.default_rng(4), 192, 60, "brightfield", bit_depth=16, n_debris=3)
    tifffile.imwrite(folder / "beads.tif", image)
    out = tmp_path_factory.mktemp("run") / "pred"
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("predict", [f"input={folder}", f"output={out}", f"paths.output_dir={out}",
                                  "rois=[imagej,geojson]", "image.pixel_size_um=0.65"])
    predict(cfg)  # from Python, image.* as the command line honours it
    return out


def test_imagej_roi_set_holds_one_polygon_per_bead_enclosing_its_pixels(predicted):
    labels = tifffile.imread(predicted / "instances" / "beads.tif")
    beads = table(predicted / "objects.csv")
    assert len(beads) > 20  # the model finds the beads: the checks below are not vacuous
    rois = roifile.roiread(predicted / "rois" / "beads_rois.zip")
    assert len(rois) == len(beads)
    counted = int(table(predicted / "counts.csv")[0]["count"])
    assert counted < len(beads) and sum(roi.group == 1 for roi in rois) == counted  # the edge rule left some out
    for roi, bead in zip(rois, beads):
        edge = "" if bead["counted"] == "True" else " (edge, not counted)"
        assert roi.name == f"bead {bead['bead_id']}{edge}"  # as QuPath names it, objects.csv's bead_id
        assert roi.group == (2 if edge else 1)
        x, y = roi.coordinates().T
        pixels = filled(y, x, labels.shape)
        assert (pixels == (labels == int(bead["bead_id"]))).all()  # exactly the bead's pixels
        assert pixels.sum() == int(bead["area"])  # Fiji's Measure: the area of objects.csv
        rows, cols = np.nonzero(pixels)
        assert abs(rows.mean() - float(bead["centroid_y"])) < 0.5 and abs(cols.mean() - float(bead["centroid_x"])) < 0.5


def test_geojson_is_valid_and_counts_what_counts_csv_counts(predicted):
    collection = json.loads((predicted / "rois" / "beads.geojson").read_text())
    count = int(table(predicted / "counts.csv")[0]["count_all"])  # every bead, those the edge rule leaves out too
    assert collection["type"] == "FeatureCollection" and len(collection["features"]) == count > 20
    counted = sum(f["properties"]["measurements"]["counted"] for f in collection["features"])
    assert counted == int(table(predicted / "counts.csv")[0]["count"]) < count  # QuPath's class says which count
    labels = tifffile.imread(predicted / "instances" / "beads.tif")
    for feature, bead in zip(collection["features"], table(predicted / "objects.csv")):
        assert feature["type"] == "Feature" and feature["properties"]["objectType"] == "detection"
        assert feature["geometry"]["type"] == "Polygon"
        ring = np.array(feature["geometry"]["coordinates"][0])
        assert len(ring) >= 5 and (ring[0] == ring[-1]).all()  # closed
        assert feature["properties"]["measurements"]["area"] == int(bead["area"])
        edge = "" if bead["counted"] == "True" else " (edge, not counted)"
        assert feature["properties"]["name"] == f"bead {bead['bead_id']}{edge}"
        assert feature["properties"]["classification"]["name"] == f"Bead{edge}"
        assert feature["properties"]["measurements"]["counted"] == (0 if edge else 1)
        assert filled(ring[:, 1], ring[:, 0], labels.shape).sum() == int(bead["area"])


def test_label_tiffs_carry_the_calibration_fiji_reads(predicted):
    with tifffile.TiffFile(predicted / "instances" / "beads.tif") as tif:
        assert tif.imagej_metadata["unit"] == "um"
        numerator, denominator = tif.pages[0].tags["XResolution"].value
        assert denominator / numerator == pytest.approx(0.65)


def test_a_240_character_image_name_gets_every_output(tmp_path, compose_config):
    """Valid names up to the file system's 255 bytes: the temporary files beside the outputs have short names
    (``<name>_rois.zip.partial`` was too long and aborted the run)."""
    name = "b" * 240
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / f"{name}.tif", render_beads(np.random.default_rng(2), 96, 12, "fluorescence", bit_depth=8)[0])
    out = tmp_path / "out"
    result = predict(compose_config("predict", [f"input={tmp_path / 'in'}", f"output={out}", f"paths.output_dir={out}",
                                                "method=classical", "rois=[imagej,geojson]"]))
    assert result["done"] == 1 and not result["failed"] and int(table(out / "counts.csv")[0]["count_all"]) > 5
    assert (out / "rois" / f"{name}_rois.zip").is_file() and (out / "rois" / f"{name}.geojson").is_file()
    assert not [path for path in out.rglob("*.partial")]


def test_uncalibrated_label_tiffs_say_pixel(tmp_path):
    from beadseg.formats.images import write_tiff

    path = write_tiff(np.arange(64, dtype=np.uint16).reshape(8, 8), tmp_path / "beads.tif", np.asarray, np.uint16)
    with tifffile.TiffFile(path) as tif:
        assert tif.imagej_metadata["unit"] == "pixel"  # ImageJ showed a blank unit
        assert np.array_equal(tif.asarray(), np.arange(64).reshape(8, 8))


def test_chunked_frame_rois_sit_at_full_frame_coordinates(tmp_path, compose_config):
    image, _ = render_beads(np.random.default_rng(8), 2048, 1400, "fluorescence", bit_depth=8)
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / "big.tif", image)
    out = tmp_path / "out"
    predict(compose_config("predict", [f"input={tmp_path / 'in'}", f"output={out}", f"paths.output_dir={out}",
                                       "method=classical", "postprocess.chunk=700", "rois=geojson", "overlays=0"]))
    labels = tifffile.imread(out / "instances" / "big.tif")
    features = json.loads((out / "rois" / "big.geojson").read_text())["features"]
    assert len(features) == int(table(out / "counts.csv")[0]["count_all"]) > 1000
    far = [f for f in features if min(np.array(f["geometry"]["coordinates"][0]).min(0)) > 1400]
    assert len(far) > 70  # beads of the last chunks, where a chunk's own coordinates would stop short
    for feature in far[:100] + features[:: len(features) // 100]:
        ring = np.array(feature["geometry"]["coordinates"][0])
        x0, y0 = ring.min(0).astype(int)
        x1, y1 = ring.max(0).astype(int)
        window = labels[y0:y1, x0:x1]
        inside = filled(ring[:, 1] - y0, ring[:, 0] - x0, window.shape)
        bead = int(feature["id"].split("-")[1])
        assert (inside == (window == bead)).all(), bead


def test_outline_of_touching_pieces_and_holes():
    mask = np.zeros((6, 6), bool)
    mask[1:4, 1:4] = True
    mask[2, 2] = False  # a hole: filled, as post-processing fills them
    mask[4, 4] = True  # a piece touching only at a corner: not part of this outline
    outline = trace_outline(mask)
    assert filled(outline[:, 0], outline[:, 1], mask.shape).sum() == 9
    assert sorted(map(tuple, outline)) == [(1, 1), (1, 4), (4, 1), (4, 4)]
