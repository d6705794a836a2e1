"""Microscope files through bioio: plane choice with clear errors, the pixel size into µm columns, label outputs
as OME-TIFF and OME-Zarr that carry it."""

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from bioio import BioImage

from beadseg.data.io import BeadDataError, image_name, list_images, read_image
from beadseg.data.readers import MicroscopeError, PlaneChoice, pixel_size_um, tiff_pixel_size
from beadseg.data.synthetic import render_beads
from tests.helpers import table

OME_SIZE = {"PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5, "PhysicalSizeXUnit": "µm", "PhysicalSizeYUnit": "µm"}


@pytest.fixture
def planes():
    beads, labels = render_beads(np.random.default_rng(0), 128, 20, "fluorescence", bit_depth=16)
    other, _ = render_beads(np.random.default_rng(1), 128, 35, "fluorescence", bit_depth=16)
    return beads, other, int(labels.max())


def write_two_channels(path: Path, beads, other) -> Path:
    tifffile.imwrite(path, np.stack([other, beads]), ome=True,
                     metadata={"axes": "CYX", **OME_SIZE, "Channel": {"Name": ["BF", "FL"]}})
    return path


def test_channel_by_name_or_index_and_a_clear_error_otherwise(planes, tmp_path):
    beads, other, _ = planes
    path = write_two_channels(tmp_path / "two.ome.tif", beads, other)
    assert np.array_equal(read_image(path, PlaneChoice(channel="FL")), beads)
    assert np.array_equal(read_image(path, PlaneChoice(channel=0)), other)
    with pytest.raises(BeadDataError, match=r"two.ome.tif holds 2 channels \(BF, FL\).*image.channel="):
        read_image(path)
    with pytest.raises(BeadDataError, match=r"two.ome.tif has no channel 'GFP'; it holds BF, FL"):
        read_image(path, PlaneChoice(channel="GFP"))
    assert image_name(path) == "two" and list_images(tmp_path) == [path]


def test_scene_choice(planes, tmp_path):
    beads, other, _ = planes
    path = tmp_path / "plate.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tif:
        tif.write(other, metadata={"axes": "YX", "Name": "A1"})
        tif.write(beads, metadata={"axes": "YX", "Name": "B2"})
    scenes = list(BioImage(path).scenes)
    assert len(scenes) == 2
    with pytest.raises(BeadDataError, match="holds 2 scenes.*image.scene="):
        read_image(path)
    assert np.array_equal(read_image(path, PlaneChoice(scene=1)), beads)
    assert np.array_equal(read_image(path, PlaneChoice(scene="Image:1")), beads)


def test_pixel_size_from_metadata_imagej_tiff_or_config(planes, tmp_path):
    beads, other, _ = planes
    assert pixel_size_um(write_two_channels(tmp_path / "a.ome.tif", beads, other), PlaneChoice(channel=1)) == 0.5
    imagej = tmp_path / "fiji.tif"
    tifffile.imwrite(imagej, beads, imagej=True, resolution=(1 / 0.325, 1 / 0.325), metadata={"unit": "micron"})
    assert tiff_pixel_size(imagej) == pytest.approx(0.325)
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, beads)
    assert pixel_size_um(plain, PlaneChoice()) is None
    assert pixel_size_um(plain, PlaneChoice(pixel_size_um=0.8)) == 0.8
    with pytest.raises(MicroscopeError, match="plain.tif records no pixel size.*image.pixel_size_um="):
        pixel_size_um(plain, PlaneChoice(require_pixel_size=True))


def test_missing_reader_names_the_extra(tmp_path):
    path = tmp_path / "scan.czi"
    path.write_bytes(b"ZISRAWFILE" + bytes(100))
    with pytest.raises(BeadDataError, match=r"scan.czi.*beadseg\[czi\]"):
        read_image(path)


@pytest.mark.slow
@pytest.mark.parametrize("label_format", ["ome-tiff", "ome-zarr"])
def test_predict_reports_microns_and_writes_labels_at_scale(planes, tmp_path, label_format, predict_here):
    beads, other, _ = planes
    inputs = tmp_path / "in"
    inputs.mkdir()
    write_two_channels(inputs / "two.ome.tif", beads, other)
    out = tmp_path / "out"
    predict_here("method=classical", f"input={inputs}", f"output={out}", "image.channel=FL", f"label_format={label_format}")
    counts = table(out / "counts.csv")[0]
    count = int(counts["count"])
    assert count > 10 and float(counts["pixel_size_um"]) == 0.5
    assert float(counts["beads_per_mm2"]) == pytest.approx(count / (128 * 128 * 0.25e-6), rel=1e-4)
    objects = list(table(out / "objects.csv"))
    for row in objects:
        assert float(row["area_um2"]) == pytest.approx(int(row["area"]) * 0.25, abs=1e-3)
        assert float(row["equivalent_diameter_um"]) == pytest.approx(float(row["equivalent_diameter"]) * 0.5, abs=1e-3)
    suffix = ".ome.tif" if label_format == "ome-tiff" else ".ome.zarr"
    labels = BioImage(out / "instances" / f"two{suffix}")
    assert labels.physical_pixel_sizes.X == pytest.approx(0.5)
    assert labels.get_image_data("YX").max() == int(counts["count_all"]) == len(objects)
    assert count == sum(row["counted"] == "True" for row in objects) < len(objects)  # the edge rule leaves out some


def test_analyze_reports_bead_sizes_in_microns(bead_folder, compose_config, tmp_path):
    from beadseg.analysis.analyze import analyze

    written = analyze(compose_config("analyze", [f"data.root={bead_folder}", f"out={tmp_path / 'a'}",
                                                 "image.pixel_size_um=0.5"]))
    summary = json.loads(written["summary"].read_text())
    assert summary["pixel_size_um"] == 0.5
    pixels, microns = summary["bead_equivalent_diameter_px"], summary["bead_equivalent_diameter_um"]
    assert microns["median"] == pytest.approx(pixels["median"] * 0.5, abs=1e-3)
    assert summary["bead_area_um2"]["mean"] == pytest.approx(summary["bead_area_px"]["mean"] * 0.25, abs=1e-3)
    assert "In µm (pixel size 0.5 µm)" in written["report"].read_text()
    unknown = analyze(compose_config("analyze", [f"data.root={bead_folder}", f"out={tmp_path / 'b'}"]))
    assert "Pixel size unknown" in unknown["report"].read_text()


def test_an_ome_zarr_folder_is_one_image(planes, tmp_path):
    from beadseg.formats.images import write_ome_zarr

    beads, _, _ = planes
    folder = tmp_path / "frames"
    folder.mkdir()
    path = write_ome_zarr(beads, folder / "big.ome.zarr", lambda block: block, beads.dtype, pixel_size_um=0.65, chunk=48)
    assert list_images(folder) == [path] and image_name(path) == "big"
    assert np.array_equal(read_image(path), beads)
    assert pixel_size_um(path, PlaneChoice()) == pytest.approx(0.65)


def test_invalid_ome_metadata_and_an_empty_zarr_are_named_not_blamed_on_a_missing_reader(tmp_path):
    import numpy as np
    import tifffile

    from beadseg.data.io import BeadDataError, read_image
    from beadseg.data.readers import PlaneChoice, pixel_size_um

    image = (np.random.default_rng(0).random((64, 64)) * 200).astype(np.uint8)
    tifffile.imwrite(tmp_path / "zero.ome.tif", image, ome=True, metadata={"axes": "YX", "PhysicalSizeX": 0.0,
                                                                           "PhysicalSizeY": 0.0})
    assert np.array_equal(read_image(tmp_path / "zero.ome.tif"), image)  # the pixels are fine
    assert pixel_size_um(tmp_path / "zero.ome.tif", PlaneChoice(pixel_size_um=0.5)) == 0.5  # the given size serves
    (tmp_path / "empty.ome.zarr").mkdir()
    with pytest.raises(BeadDataError, match="installed") as refused:
        read_image(tmp_path / "empty.ome.zarr")
    assert "pip install" not in str(refused.value)


def test_evaluate_from_python_reads_the_plane_its_config_names(tmp_path, compose_config):
    """``evaluate(cfg)`` honours ``image.*`` as the command line does: the channel the config names is scored."""
    from beadseg.evaluation.evaluate import evaluate

    beads, labels = render_beads(np.random.default_rng(0), 128, 20, "fluorescence", bit_depth=16)
    other, _ = render_beads(np.random.default_rng(1), 128, 35, "fluorescence", bit_depth=16)
    (tmp_path / "data" / "images").mkdir(parents=True)
    (tmp_path / "data" / "masks").mkdir()
    write_two_channels(tmp_path / "data" / "images" / "two.ome.tif", beads, other)
    tifffile.imwrite(tmp_path / "data" / "masks" / "two.tif", labels.astype(np.uint16))
    scores = {}
    for channel in ("FL", "BF"):
        out = tmp_path / f"eval_{channel}"
        cfg = compose_config("eval", ["method=classical", f"data.root={tmp_path / 'data'}", f"image.channel={channel}",
                                      "thresholds=[]", "peak_thresholds=[]", "worst_images=0", f"output={out}",
                                      f"paths.output_dir={out}"])
        scores[channel] = evaluate(cfg)["metrics"]["objects"]["centroid"]["f1"]
    assert scores["FL"] > 0.9 > scores["BF"]  # the beads' channel matches its mask; the other does not
