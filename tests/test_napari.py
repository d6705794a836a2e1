"""The napari plugin: the dock widget counts beads in a thread worker (headless, and in a real viewer under Xvfb); the
reader opens a beadseg-predict output folder; the npe2 manifest names both."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from scipy import ndimage as ndi

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
napari = pytest.importorskip("napari", reason="the napari plugin needs pip install 'beadseg[napari]'")
pytest.importorskip("pytestqt", reason="the widget test needs pytest-qt (pip install 'beadseg[dev]')")

from napari.components import ViewerModel  # noqa: E402  (a viewer without an OpenGL canvas: runs headless)

from beadseg.data.synthetic import render_beads  # noqa: E402
from beadseg.napari_plugin.reader import get_reader  # noqa: E402
from beadseg.napari_plugin.widget import BeadCounter  # noqa: E402


@pytest.fixture
def beads():
    image, labels = render_beads(np.random.default_rng(5), 160, 25, "brightfield", bit_depth=8)
    return image, int(labels.max())


@pytest.fixture
def counter(qtbot, beads):
    """A headless viewer holding the ``beads`` image as layer ``sample``, and the widget docked beside it."""
    viewer = ViewerModel()
    viewer.add_image(beads[0], name="sample")
    widget = BeadCounter(viewer)
    qtbot.addWidget(widget)
    return viewer, widget


def finish(qtbot, widget) -> None:
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)


def test_widget_counts_beads_in_a_worker_as_the_cli_does(qtbot, beads, counter, tmp_path, compose_config):
    from beadseg.inference.predict import predict

    image, truth = beads
    viewer, widget = counter
    assert widget.layer_box.currentText() == "sample"
    widget.count()
    assert widget.worker is not None and not widget.count_button.isEnabled()  # running beside the event loop
    finish(qtbot, widget)
    found = int(viewer.layers["sample beads"].data.max())
    assert abs(found - truth) <= 3, (found, truth)  # the shipped model finds the drawn beads
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / "sample.tif", image)
    out = tmp_path / "cli"
    predict(compose_config("predict", [f"input={tmp_path / 'in'}", f"output={out}", f"paths.output_dir={out}"]))
    with open(out / "counts.csv") as handle:
        counts = next(csv.DictReader(handle))
    assert found == int(counts["count_all"])  # the CLI's beads
    assert len(viewer.layers["sample centres"].data) == found
    counted = sum(viewer.layers["sample centres"].features["counted"])
    assert counted == int(counts["count"]) < found  # and its count by the edge rule: beads on the top/left edge left out
    assert widget.table.rowCount() == found and widget.result.text().startswith(f"{counted} beads")
    assert widget.progress.value() == widget.progress.maximum() > 0
    assert set(viewer.layers["sample centres"].features.columns) >= {"bead_id", "area", "circularity"}
    covered = int((viewer.layers["sample beads"].data > 0).sum())
    widget.slider.setValue(99)  # a stricter threshold re-draws from the kept maps: less mask, the CLI's beads at 0.99
    finish(qtbot, widget)
    strict = tmp_path / "strict"
    predict(compose_config("predict", [f"input={tmp_path / 'in'}", f"output={strict}", f"paths.output_dir={strict}",
                                       "postprocess.threshold=0.99"]))
    with open(strict / "counts.csv") as handle:
        assert int(viewer.layers["sample beads"].data.max()) == int(next(csv.DictReader(handle))["count_all"])
    assert int((viewer.layers["sample beads"].data > 0).sum()) < covered
    assert [layer.name for layer in viewer.layers].count("sample beads") == 1


def test_widget_counts_beads_twice_the_models_size_given_or_estimated(qtbot):
    from tests.test_bead_size import DIAMETER, scene

    image, truth = scene()
    viewer = ViewerModel()
    viewer.add_image(image, name="big")
    widget = BeadCounter(viewer)
    qtbot.addWidget(widget)
    for given in (DIAMETER, 0.0):  # 0: estimated from the image
        widget.diameter.setValue(given)
        widget.count()
        finish(qtbot, widget)
        assert int(viewer.layers["big beads"].data.max()) == truth and viewer.layers["big beads"].data.shape == image.shape
        source = "given" if given else "estimated"
        assert f"px ({source})" in widget.result.text() and widget.bead_size.zoom < 1


def test_beads_corrected_by_hand_move_the_count_and_save_as_training_data(qtbot, beads, counter, tmp_path):
    from beadseg.data.points import PointsSource

    image, truth = beads
    viewer, widget = counter
    widget.count()
    finish(qtbot, widget)
    centres, labels = viewer.layers["sample centres"], viewer.layers["sample beads"]
    found = len(centres.data)
    assert abs(found - truth) <= 3 and labels.data.max() == found  # the model found the beads first
    counted = int(widget.result.text().split()[0])
    empty = np.argwhere(labels.data == 0)
    far = [tuple(p) for p in empty if p.min() > 8 and p.max() < 150 and (labels.data[p[0] - 4:p[0] + 5,
                                                                                       p[1] - 4:p[1] + 5] == 0).all()]
    counted_one = int(np.flatnonzero(centres.features["counted"])[0])
    centres.add(np.array(far[0], float))  # a click on background adds a bead ...
    centres.add(np.array(far[-1], float))
    centres.remove([counted_one])  # ... deleting a point removes one: two added, one removed
    assert int(widget.result.text().split()[0]) == counted + 1 and "2 added, 1 removed" in widget.result.text()
    assert widget.table.rowCount() == found + 1 and len(np.unique(labels.data)) - 1 == found + 1
    assert labels.data[far[0]] > 0 and labels.data[far[-1]] > 0  # the new beads are drawn where they were clicked
    assert set(np.unique(labels.data)[1:]) == set(centres.features["bead_id"])  # labels and points in step
    moved = centres.data.copy()
    bead = int(centres.features["bead_id"][len(moved) - 1])
    moved[-1] += (0, 5)  # dragging a bead moves its pixels
    centres.data = moved
    y, x = np.rint(moved[-1]).astype(int)
    assert labels.data[y, x] == bead and labels.data[y, x - 6] != bead
    top = np.array([[-0.5, -0.5], [-0.5, 159.5], [79.5, 159.5], [79.5, -0.5]])  # two rectangles tiling the frame
    viewer.add_shapes([top, top + (80, 0)], shape_type="rectangle", name="wells")
    widget.count_regions()
    assert [row["region"] for row in widget.region_rows] == ["wells 1", "wells 2"]
    assert sum(row["count"] for row in widget.region_rows) == counted + 1 > widget.region_rows[0]["count"] > 0
    assert [row["area_px"] for row in widget.region_rows] == [80 * 160, 80 * 160]
    widget.training_folder.setText(str(tmp_path / "corrections"))
    widget.save_corrected()
    widget.save_corrected()  # a second save appends, never overwrites
    rows = PointsSource(tmp_path / "corrections", bead_diameter=7.0).entries()
    assert [row["name"] for row in rows] == ["sample", "sample_2"] and rows[0]["bead_count"] == found + 1
    saved = tifffile.imread(tmp_path / "corrections" / "masks" / "sample.tif")
    assert np.array_equal(saved, labels.data) and "data=points" in widget.result.text()


@pytest.mark.slow
def test_retraining_from_the_widget_makes_a_run_and_counts_again(qtbot, beads, counter, tmp_path):
    image, truth = beads
    viewer, widget = counter
    widget.training_folder.setText(str(tmp_path / "fixes"))
    widget.retrain()
    finish(qtbot, widget)
    assert "holds no saved frame" in widget.result.text()  # an empty corrections folder: one clear line
    widget.count()
    finish(qtbot, widget)
    assert abs(len(viewer.layers["sample centres"].data) - truth) <= 3
    widget.save_corrected()
    widget.retrain()
    finish(qtbot, widget)
    assert "save a second" in widget.result.text()  # one frame cannot both train and validate
    widget.save_corrected()
    widget.retrain_overrides = ["debug=fast", "data.patch_size=64"]  # two frames of one name: two groups
    widget.retrain()
    widget.retrain()  # a second one while the first runs: refused in one line
    assert "running" in widget.result.text()
    qtbot.waitUntil(lambda: widget.worker is None and not widget._recount, timeout=300_000)
    assert "beads at" in widget.result.text(), widget.result.text()
    runs = list((tmp_path / "fixes" / "runs").iterdir())
    result = json.loads((runs[0] / "result.json").read_text())
    assert len(runs) == 1 and result["status"] == "completed" and (runs[0] / "tensorboard").is_dir()
    assert widget.checkpoint.text() == result["checkpoint"] and widget.loaded_from == result["checkpoint"]
    assert abs(len(viewer.layers["sample centres"].data) - truth) <= 3  # counted again, by the new model


@pytest.mark.slow
def test_a_cancelled_retraining_leaves_no_half_written_checkpoint(qtbot, tmp_path):
    from beadseg.napari_plugin.corrections import save_correction

    image, labels = render_beads(np.random.default_rng(5), 160, 25, "brightfield", bit_depth=8)
    centres = np.array(ndi.center_of_mass(labels > 0, labels, range(1, labels.max() + 1)))
    for name in ("a", "b"):
        save_correction(tmp_path / "fixes", name, image, centres, labels)
    widget = BeadCounter(ViewerModel())
    qtbot.addWidget(widget)
    widget.training_folder.setText(str(tmp_path / "fixes"))
    widget.retrain_overrides = ["debug=fast", "data.val_fraction=0.5", "trainer.max_epochs=50"]
    widget.retrain()
    qtbot.waitUntil(lambda: "epoch" in widget.result.text() or widget.worker is None, timeout=300_000)
    assert widget.worker is not None, widget.result.text()  # mid-run: an epoch is done
    widget.cancel()
    finish(qtbot, widget)
    assert "retraining cancelled" in widget.result.text()
    run = next((tmp_path / "fixes" / "runs").iterdir())
    assert json.loads((run / "result.json").read_text())["status"] == "interrupted"
    assert not [path for path in run.rglob("*") if path.name.endswith(".partial")]
    for path in run.rglob("*.ckpt"):  # every checkpoint it left loads whole
        torch.load(path, map_location="cpu", weights_only=True)


def test_a_cancelled_count_adds_no_layer_and_errors_stay_in_the_widget(qtbot):
    frame, _ = render_beads(np.random.default_rng(1), 2600, 3000, "brightfield", bit_depth=8)  # 6 rows of 512-px windows
    viewer = ViewerModel()
    viewer.add_image(frame, name="frame")
    widget = BeadCounter(viewer)
    qtbot.addWidget(widget)
    widget.count()
    qtbot.waitUntil(lambda: widget._tiles[1] == 36, timeout=120_000)  # the model runs its first row of 6x6
    widget.cancel()
    finish(qtbot, widget)
    assert widget.result.text().startswith("cancelled") and [layer.name for layer in viewer.layers] == ["frame"]
    assert widget._tiles[0] < widget._tiles[1]  # stopped mid-run
    widget.checkpoint.setText(str(Path(__file__)))  # not a checkpoint: said in the widget, not raised into napari
    widget.count()
    finish(qtbot, widget)
    assert widget.result.text().startswith("could not count") and "not a checkpoint" in widget.result.text()
    assert [layer.name for layer in viewer.layers] == ["frame"]


def test_reader_pages_through_a_prediction_folder(beads, tmp_path, compose_config):
    from beadseg.inference.predict import predict

    image, _ = beads
    inputs = tmp_path / "in"
    inputs.mkdir()
    tifffile.imwrite(inputs / "a.tif", image)
    tifffile.imwrite(inputs / "b.tif", image[::-1].copy())
    tifffile.imwrite(inputs / "c.tif", image[:100])  # another size: its own stack
    out = tmp_path / "pred"
    predict(compose_config("predict", [f"input={inputs}", f"output={out}", f"paths.output_dir={out}",
                                       "rois=geojson", "image.pixel_size_um=0.65"]))
    with open(out / "counts.csv") as handle:
        counts = {row["image"]: int(row["count_all"]) for row in csv.DictReader(handle)}
    assert counts["a"] > 10 and counts["b"] > 10
    reader = get_reader(str(out))
    assert reader is not None and get_reader(str(inputs)) is None
    layers = {meta["name"]: (data, meta, kind) for data, meta, kind in reader(str(out))}
    size = f"{image.shape[0]}x{image.shape[1]}"
    images, meta, _ = layers[f"images {size}"]
    assert images.shape == (2, *image.shape) and np.array_equal(images[1], image[::-1])  # a slider pages a, b
    labels = layers[f"beads {size}"][0]
    assert [int(labels[i].max()) for i in range(2)] == [counts["a"], counts["b"]]
    points, meta, _ = layers[f"bead centres {size}"]
    assert len(points) == counts["a"] + counts["b"] and meta["scale"] == (1.0, 0.65, 0.65)
    assert set(points[:, 0]) == {0, 1} and list(meta["features"]["image"]).count("b") == counts["b"]
    assert np.allclose(meta["features"]["equivalent_diameter_um"], meta["features"]["equivalent_diameter"] * 0.65,
                       atol=1e-3)
    texts = layers[f"counts {size}"][1]["features"]["label"]
    with open(out / "counts.csv") as handle:
        by_rule = {row["image"]: row["count"] for row in csv.DictReader(handle)}
    assert texts == [f"a: {by_rule['a']} beads", f"b: {by_rule['b']} beads"]  # each page shows its count
    outlines = layers[f"bead outlines {size}"][0]
    assert len(outlines) == counts["a"] + counts["b"] and all(o.shape[1] == 3 for o in outlines)
    assert layers["beads 100x160"][0].shape == (1, 100, 160)
    (inputs / "a.tif").write_bytes(b"")  # an input gone bad since: a blank page, the rest shown
    images = {meta["name"]: data for data, meta, _ in reader(str(out))}[f"images {size}"]
    assert not images[0].any() and np.array_equal(images[1], image[::-1])


def test_reader_reads_a_long_folder_page_by_page(tmp_path):
    out = tmp_path / "pred"
    (out / "instances").mkdir(parents=True)
    rows = []
    for index in range(70):
        labels = np.zeros((16, 16), np.uint16)
        labels[index % 16, :3] = 1
        tifffile.imwrite(out / "instances" / f"f{index:02d}.tif", labels)
        rows.append(f"f{index:02d},1,0,3.0,0.01,,no,,,,")
    (out / "counts.csv").write_text("image,count,debris,mean_diameter,coverage,mean_uncertainty,flagged,"
                                    "pixel_size_um,mean_diameter_um,beads_per_mm2,path\n" + "\n".join(rows) + "\n")
    (out / "objects.csv").write_text("image,bead_id,centroid_y,centroid_x,area\n")
    layers = {meta["name"]: data for data, meta, kind in get_reader(str(out))(str(out))}
    stack = layers["beads"]
    assert type(stack).__module__.startswith("dask") and stack.shape == (70, 16, 16)  # nothing read yet
    assert np.array_equal(np.asarray(stack[37]), (np.arange(16)[:, None] == 37 % 16) & (np.arange(16) < 3))


def test_manifest_names_the_reader_and_the_widget(tmp_path):
    npe2 = pytest.importorskip("npe2")
    manifest = npe2.PluginManifest.from_distribution("beadseg")  # found through the napari.manifest entry point
    assert {c.python_name for c in manifest.contributions.commands} == {
        "beadseg.napari_plugin.reader:get_reader", "beadseg.napari_plugin.widget:BeadCounter"}
    manager = npe2.PluginManager()
    manager.register(manifest)
    tifffile.imwrite(tmp_path / "beads.tif", np.zeros((8, 8), np.uint8))
    (tmp_path / "beads.png").write_bytes(b"")
    for image in ("beads.tif", "beads.png"):  # File > Open of an image: beadseg is not offered
        assert list(manager.iter_compatible_readers([str(tmp_path / image)])) == []
    assert [r.command for r in manager.iter_compatible_readers([str(tmp_path)])] == ["beadseg.read_predictions"]


def small_prediction_folder(out: Path, pixel_size: str = "") -> Path:
    """One 16x16 frame with two beads (labels 1, 2), its tables and its GeoJSON outlines (pixel corners)."""
    (out / "instances").mkdir(parents=True)
    (out / "rois").mkdir()
    labels = np.zeros((16, 16), np.uint16)
    labels[2:5, 2:5], labels[8:12, 9:13] = 1, 2
    tifffile.imwrite(out / "instances" / "f.tif", labels)
    (out / "counts.csv").write_text(f"image,count,pixel_size_um\nf,2,{pixel_size}\n")
    (out / "objects.csv").write_text("image,bead_id,centroid_y,centroid_x,area\nf,1,3,3,9\nf,2,9.5,10.5,16\n")
    square = [[2, 2], [5, 2], [5, 5], [2, 5], [2, 2]]  # the corners around pixels 2-4 (x, y)
    (out / "rois" / "f.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [square]}}]}))
    return out


def test_outlines_sit_on_the_labels_and_the_scale_bar_says_its_unit(tmp_path):
    """GeoJSON's (2, 2)-(5, 5) square of corners is pixels 2-4: in napari (pixel centres) 1.5-4.5."""
    out = small_prediction_folder(tmp_path / "pred")
    layers = {meta["name"]: (data, meta) for data, meta, _ in get_reader(str(out))(str(out))}
    outline = layers["bead outlines"][0][0]
    assert outline[:, 1].min() == outline[:, 2].min() == 1.5 and outline[:, 1].max() == outline[:, 2].max() == 4.5
    labels = layers["beads"][0][0]
    ys, xs = np.nonzero(labels == 1)
    assert (ys.min() - 0.5, ys.max() + 0.5) == (outline[:, 1].min(), outline[:, 1].max())  # on the label's border
    assert layers["beads"][1]["units"] == ("pixel", "pixel", "pixel")
    calibrated = small_prediction_folder(tmp_path / "um", "0.65")
    meta = {m["name"]: m for _, m, _ in get_reader(str(calibrated))(str(calibrated))}["beads"]
    assert meta["scale"] == (1.0, 0.65, 0.65) and meta["units"] == ("pixel", "µm", "µm")
    viewer = ViewerModel()
    for data, meta, kind in get_reader(str(calibrated))(str(calibrated)):  # as napari adds a reader's layers
        viewer.add_layer(napari.layers.Layer.create(data, meta, kind))
    assert str(viewer.layers["beads"].units[-1]) == "micrometer"


@pytest.mark.parametrize("damage", ["corrupt geojson", "no objects.csv", "empty counts.csv", "binary counts.csv",
                                    "a word for a number", "no centroid column"])
def test_one_damaged_file_does_not_stop_the_folder(tmp_path, damage, caplog):
    out = small_prediction_folder(tmp_path / "pred")
    if damage == "corrupt geojson":
        (out / "rois" / "f.geojson").write_text("{not json")
    elif damage == "no objects.csv":
        (out / "objects.csv").unlink()
    elif damage == "empty counts.csv":
        (out / "counts.csv").write_text("")
    elif damage == "binary counts.csv":
        (out / "counts.csv").write_bytes(b"\x00\xff\xfe" * 50)
    elif damage == "a word for a number":
        (out / "objects.csv").write_text("image,bead_id,centroid_y,centroid_x,area\nf,1,three,3,9\nf,2,9.5,10.5,16\n")
    else:
        (out / "objects.csv").write_text("image,bead_id,area\nf,1,9\n")
    layers = {meta["name"]: data for data, meta, _ in get_reader(str(out))(str(out))}
    if damage in ("empty counts.csv", "binary counts.csv"):
        assert layers == {} and "counts.csv" in caplog.text  # nothing to page through, and said so
        return
    assert int(np.asarray(layers["beads"]).max()) == 2  # the labels are shown whatever else broke
    centres = layers["bead centres"]
    assert len(centres) == {"no objects.csv": 0, "no centroid column": 0}.get(damage, 2)
    assert ("bead outlines" in layers) == (damage != "corrupt geojson")
    if damage != "a word for a number":
        assert "skipped" in caplog.text


def test_the_widget_forgets_its_count_when_its_layers_go(qtbot, beads):
    image, _ = beads
    viewer = ViewerModel()
    viewer.add_image(image, name="sample")
    widget = BeadCounter(viewer)
    qtbot.addWidget(widget)
    widget.count()
    finish(qtbot, widget)
    assert widget.table.rowCount() > 10 and "beads at threshold" in widget.result.text()
    widget.slider.setValue(60)  # a re-draw replaces the layers: the count stays
    finish(qtbot, widget)
    assert widget.table.rowCount() > 10
    viewer.layers.remove("sample beads")
    assert widget.table.rowCount() == 0 and widget.result.text() == "no beads counted yet" and widget.maps is None


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
    finish(qtbot, widget)
    assert "missing.ckpt" in widget.result.text() and "flat beads" not in viewer.layers


REAL_VIEWER = """
import faulthandler, sys, time
faulthandler.enable()
import numpy as np
import napari
from qtpy.QtWidgets import QApplication
from beadseg.data.synthetic import render_beads

viewer = napari.Viewer(show=True)  # a real window: its OpenGL context exists before beadseg is imported
image, labels = render_beads(np.random.default_rng(5), 160, 25, "brightfield", bit_depth=8)
viewer.add_image(image, name="beads")
dock, widget = viewer.window.add_plugin_dock_widget("beadseg", "Count beads")  # Plugins > beadseg > Count beads
widget.count()
deadline = time.time() + 120
while widget.worker is not None and time.time() < deadline:
    QApplication.processEvents()
    time.sleep(0.02)
print("counted:", int(viewer.layers["beads beads"].data.max()), "of", int(labels.max()))
viewer.close()
"""


def test_widget_opens_and_counts_in_a_real_viewer_under_xvfb(tmp_path):
    """Under Xvfb with Mesa's software OpenGL, importing torchvision's torch._dynamo/triton after the viewer exists
    kills napari (segmentation fault): opening the widget and counting must not import them."""
    import shutil

    if not shutil.which("xvfb-run"):
        pytest.skip("no xvfb-run: install Xvfb (apt-get install xvfb libxcb-cursor0 libgl1-mesa-dri; .ci/run does)")
    script = tmp_path / "viewer.py"
    script.write_text(REAL_VIEWER)
    env = {**os.environ, "QT_QPA_PLATFORM": "xcb"}
    done = subprocess.run(["xvfb-run", "-a", sys.executable, str(script)], capture_output=True, text=True,
                          timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    found, truth = map(int, done.stdout.split("counted:")[1].split(" of "))
    assert abs(found - truth) <= 3


REAL_VIEWER_LOOP = """
import faulthandler, json, sys, time
from pathlib import Path
faulthandler.enable()
import numpy as np
import napari
from qtpy.QtWidgets import QApplication
from beadseg.data.synthetic import render_beads

folder = Path(sys.argv[1])
viewer = napari.Viewer(show=True)
image, labels = render_beads(np.random.default_rng(5), 160, 25, "brightfield", bit_depth=8)
viewer.add_image(image, name="beads")
dock, widget = viewer.window.add_plugin_dock_widget("beadseg", "Count beads")


def settle(seconds=300):
    deadline = time.time() + seconds
    while (widget.worker is not None or widget._recount) and time.time() < deadline:
        QApplication.processEvents()
        time.sleep(0.02)
    QApplication.processEvents()


widget.count()
settle()
centres = viewer.layers["beads centres"]
found = int(np.sum(centres.features["counted"]))
centres.add(np.array([[5.0, 80.0], [150.0, 80.0]]))  # two clicks in add mode
centres.selected_data = {int(np.flatnonzero(centres.features["counted"])[0])}  # a counted bead
centres.remove_selected()  # select and Delete
print("edited:", found, int(np.sum(centres.features["counted"])), int(viewer.layers["beads beads"].data.max() > 0))
shapes = viewer.add_shapes([np.array([[0, 0], [0, 80], [160, 80], [160, 0]]) - 0.5,
                            np.array([[0, 80], [0, 160], [160, 160], [160, 80]]) - 0.5], shape_type="rectangle")
widget.count_regions()
print("regions:", sum(row["count"] for row in widget.region_rows), int(np.sum(centres.features["counted"])))
widget.training_folder.setText(str(folder))
widget.save_corrected()
widget.save_corrected()
print("saved:", sorted(path.name for path in (folder / "images").iterdir()))
widget.retrain_overrides = ["debug=fast", "data.patch_size=64"]
widget.retrain()
settle()
run = next((folder / "runs").iterdir())
result = json.loads((run / "result.json").read_text())
print("retrained:", result["status"], widget.loaded_from == result["checkpoint"], "beads at" in widget.result.text())
widget.retrain_overrides = ["debug=fast", "data.patch_size=64", "trainer.max_epochs=50"]
widget.retrain()
deadline = time.time() + 300
while "epoch" not in widget.result.text() and widget.worker is not None and time.time() < deadline:
    QApplication.processEvents()
    time.sleep(0.02)
widget.cancel()
settle()
partial = [str(path) for path in (folder / "runs").rglob("*") if path.name.endswith(".partial")]
print("cancelled:", "retraining cancelled" in widget.result.text(), partial)
viewer.close()
"""


@pytest.mark.slow
def test_the_correction_loop_in_a_real_viewer_under_xvfb(tmp_path):
    """In a real napari window: two beads added and one deleted move the count by one; regions that tile the frame
    add up to it; two saves hold two frames; a retraining from the widget makes a run and counts again; a
    cancelled one leaves no half-written file."""
    import shutil

    if not shutil.which("xvfb-run"):
        pytest.skip("no xvfb-run: install Xvfb (apt-get install xvfb libxcb-cursor0 libgl1-mesa-dri; .ci/run does)")
    script = tmp_path / "loop.py"
    script.write_text(REAL_VIEWER_LOOP)
    done = subprocess.run(["xvfb-run", "-a", sys.executable, str(script), str(tmp_path / "fixes")],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "QT_QPA_PLATFORM": "xcb"})
    assert done.returncode == 0, done.stderr[-3000:]
    lines = dict(line.split(": ", 1) for line in done.stdout.splitlines() if ": " in line)
    before, after, drawn = map(int, lines["edited"].split())
    assert before >= 20 and after == before + 1 and drawn == 1, lines["edited"]
    in_regions, counted = map(int, lines["regions"].split())
    assert in_regions == counted == after
    assert lines["saved"] == "['beads.tif', 'beads_2.tif']"
    assert lines["retrained"] == "completed True True"
    assert lines["cancelled"] == "True []"


def test_counting_in_the_widget_imports_no_torchvision_dynamo_or_triton():
    """What the real-viewer test guards, where no Xvfb is installed: the widget's whole path, in a fresh process."""
    code = ("import sys, numpy as np\n"
            "import beadseg.napari_plugin.widget, beadseg.napari_plugin.reader\n"
            "from beadseg.inference.predictor import load_predictor\n"
            "load_predictor(None).predict(np.zeros((64, 64), np.uint8))\n"
            "print(sorted(m for m in ('torchvision', 'torch._dynamo', 'triton', 'timm') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
