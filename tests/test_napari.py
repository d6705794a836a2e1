"""The napari plugin, headless: the dock widget counts beads on a synthetic image and adds them as layers; the
reader opens a beadseg-predict output folder; the npe2 manifest names both."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
napari = pytest.importorskip("napari", reason="the napari plugin needs pip install 'beadseg[napari]'")
pytest.importorskip("pytestqt", reason="the widget test needs pytest-qt (pip install 'beadseg[dev]')")

from napari.components import ViewerModel  # noqa: E402  (a viewer without an OpenGL canvas: runs headless)

from beadseg.data.synthetic import render_beads  # noqa: E402
from beadseg.napari_plugin.reader import get_reader  # noqa: E402
from beadseg.napari_plugin.widget import BeadCounter  # noqa: E402


@pytest.fixture
def beads():
    image, labels = render_beads(np.random.default_rng(5), 160, 25, "brightfield", 8)
    return image, int(labels.max())


def test_widget_counts_beads_and_adds_them_as_layers(qtbot, beads):
    image, truth = beads
    viewer = ViewerModel()
    viewer.add_image(image, name="sample")
    widget = BeadCounter(viewer)
    qtbot.addWidget(widget)
    assert widget.layer_box.currentText() == "sample"
    widget.count()
    found = int(viewer.layers["sample beads"].data.max())
    assert abs(found - truth) <= 3, (found, truth)  # the shipped model finds the drawn beads
    assert len(viewer.layers["sample centres"].data) == found
    assert widget.table.rowCount() == found and widget.result.text().startswith(f"{found} beads")
    assert widget.progress.value() == widget.progress.maximum() > 0
    assert set(viewer.layers["sample centres"].features.columns) >= {"bead_id", "area", "circularity"}
    widget.slider.setValue(99)  # a stricter threshold re-draws from the kept maps: fewer or equal beads
    assert int(viewer.layers["sample beads"].data.max()) <= found
    assert [layer.name for layer in viewer.layers].count("sample beads") == 1


def test_reader_opens_a_prediction_folder(beads, tmp_path):
    image, _ = beads
    inputs = tmp_path / "in"
    inputs.mkdir()
    tifffile.imwrite(inputs / "sample.tif", image)
    out = tmp_path / "pred"
    done = subprocess.run([str(Path(sys.executable).parent / "beadseg-predict"), f"input={inputs}", f"output={out}",
                           "image.pixel_size_um=0.65"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    count = int(next(csv.DictReader(open(out / "counts.csv")))["count"])
    assert count > 10
    reader = get_reader(str(out))
    assert reader is not None and get_reader(str(inputs)) is None
    layers = {kind: (data, meta) for data, meta, kind in reader(str(out))}
    assert set(layers) == {"image", "labels", "points"}
    assert np.array_equal(layers["image"][0], image) and layers["labels"][0].max() == count
    points, meta = layers["points"]
    assert len(points) == count and meta["scale"] == (0.65, 0.65)
    assert np.allclose(meta["features"]["equivalent_diameter_um"], meta["features"]["equivalent_diameter"] * 0.65, atol=1e-3)
    assert "contrast_snr" in meta["features"]
    (inputs / "sample.tif").write_bytes(b"")  # the input is gone bad since: its layer is skipped, the rest shown
    kinds = [kind for _, _, kind in reader(str(out))]
    assert kinds == ["labels", "points"]


def test_manifest_names_the_reader_and_the_widget():
    npe2 = pytest.importorskip("npe2")
    manifest = npe2.PluginManifest.from_distribution("beadseg")  # found through the napari.manifest entry point
    assert {c.python_name for c in manifest.contributions.commands} == {
        "beadseg.napari_plugin.reader:get_reader", "beadseg.napari_plugin.widget:BeadCounter"}


def test_widget_names_what_it_cannot_count(qtbot, tmp_path):
    viewer = ViewerModel()
    viewer.add_image(np.zeros((3, 4, 32, 32)), name="stack")
    widget = BeadCounter(viewer)
    qtbot.addWidget(widget)
    widget.count()
    assert "layer 'stack'" in widget.result.text() and "2-D" in widget.result.text()
    widget.checkpoint.setText(str(tmp_path / "missing.ckpt"))
    viewer.add_image(np.zeros((32, 32)), name="flat")
    widget.layer_box.setCurrentText("flat")
    widget.count()
    assert "missing.ckpt" in widget.result.text() and "sample centres" not in viewer.layers
