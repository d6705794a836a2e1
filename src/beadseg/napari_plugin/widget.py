"""The napari dock widget: count the beads of an image layer with the shipped model or a chosen checkpoint.

The model and the post-processing run in a napari thread worker (``napari.qt.threading``), so the viewer stays
responsive on a 40-megapixel frame: a progress bar follows the tiles, Cancel stops the run at the next tile row
(no layer is added or changed), and an error is shown in the widget, never raised into napari. The threshold
slider re-draws the beads from the kept maps. The beads' diameter is given in the widget or estimated from the
image (as ``image.bead_diameter``), and the image meets the network at the model's bead size. Results are added as
layers: bead instance labels and a points
layer of bead centres whose features are the ``objects.csv`` columns; the count and a per-bead table sit in the
widget. The centres are editable: a click adds a bead, deleting a point removes one, dragging moves one, and the
labels, the count and the table follow; "Save corrected frame" appends the frame to a training folder
(``beadseg.napari_plugin.corrections``), and "Retrain on saved frames" fine-tunes the model on that folder
(``beadseg.napari_plugin.retrain``: an ordinary ``beadseg-train`` run in a child process, its epochs on the progress
bar, Cancel interrupting it) and counts the image again with the new model. Importing this module loads no torchvision,
torch._dynamo or triton (see
``beadseg.models``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSlider,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from beadseg.beads.size import BeadSizing, FrameSize
from beadseg.config import configured_postprocess
from beadseg.data.io import as_gray
from beadseg.formats.regions import Region, region_rows
from beadseg.inference.predictor import ModelPredictor, load_predictor
from beadseg.napari_plugin.corrections import labels_in_step, save_correction
from beadseg.napari_plugin.retrain import RetrainCancelled, retrain


class Cancelled(Exception):
    """The user pressed Cancel: the run stops at its next tile row."""


class Failed(NamedTuple):
    """What the worker returns when the run fails: the error, shown in the widget."""

    error: Exception


class Retrained(NamedTuple):
    """What the worker returns when a retraining ends: the run's ``result.json``."""

    result: dict


TABLE_COLUMNS = (
    "bead_id",
    "centroid_y",
    "centroid_x",
    "area",
    "equivalent_diameter",
    "circularity",
    "mean_probability",
)


def added_bead_features(features: dict[str, np.ndarray]) -> dict[str, Any]:
    """The features of a bead added by hand: bead id 0 (numbered when it is drawn), counted, nothing measured."""
    def blank(column: str, values: np.ndarray) -> Any:
        if column == "bead_id":
            return 0
        if values.dtype == bool:
            return column == "counted"
        return np.nan if values.dtype.kind in "fiu" else ""

    return {column: blank(column, np.asarray(values)) for column, values in features.items()}


class BeadCounter(QWidget):
    """Dock widget: image layer, checkpoint (empty: the shipped model), threshold slider, Count, progress, results."""

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.predictor: ModelPredictor | None = None  # the checkpoint's, loaded once
        self.loaded_from: str | None = None
        self.maps: np.ndarray | None = None
        self.image: np.ndarray | None = None
        self.bead_size: FrameSize | None = None  # the counted image's bead size and zoom
        self.source_name = ""

        self.layer_box = QComboBox()
        self.checkpoint = QLineEdit()
        self.checkpoint.setPlaceholderText("the shipped bead model")
        browse = QPushButton("…")
        browse.clicked.connect(self._browse)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(1, 99)
        self.slider.setValue(50)
        self.threshold_label = QLabel()
        self.slider.valueChanged.connect(self._threshold_moved)
        self.diameter = QDoubleSpinBox()  # image.bead_diameter: px, or 0 for estimated from the image
        self.diameter.setRange(0.0, 4096.0)
        self.diameter.setDecimals(1)
        self.diameter.setSpecialValueText("estimate from the image")
        self.count_button = QPushButton("Count beads")
        self.count_button.clicked.connect(self.count)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.worker: Any = None  # napari's thread worker of the count in progress
        self._cancelled, self._tiles, self._drawn_at = False, [0, 1], None
        self._timer = QTimer(self)  # the worker counts tiles; the GUI thread shows them
        self._timer.timeout.connect(self._follow)
        self.result = QLabel("no beads counted yet")
        self.table = QTableWidget(0, len(TABLE_COLUMNS))
        self.table.setHorizontalHeaderLabels(list(TABLE_COLUMNS))
        self.found_labels: np.ndarray | None = None  # the model's beads, and their centres, before any correction
        self.found_centres: dict[int, tuple[float, float]] = {}
        self.training_folder = QLineEdit()
        self.training_folder.setPlaceholderText("training folder for corrected frames")
        self.save_button = QPushButton("Save corrected frame")
        self.save_button.clicked.connect(self.save_corrected)
        self.regions_button = QPushButton("Count per region (shapes layers)")
        self.regions_button.clicked.connect(self.count_regions)
        self.regions = QLabel("")
        self.region_rows: list[dict] = []
        self.retrain_button = QPushButton("Retrain on saved frames")
        self.retrain_button.clicked.connect(self.retrain)
        self.retrain_overrides: list[str] = []  # beadseg-train overrides of a retraining (e.g. trainer.max_epochs=8)
        self._status = ""  # what a retraining's progress says, shown by the timer
        self._recount = False

        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("image layer"))
        layout.addWidget(self.layer_box)
        row = QHBoxLayout()
        row.addWidget(self.checkpoint)
        row.addWidget(browse)
        layout.addWidget(QLabel("checkpoint"))
        layout.addLayout(row)
        layout.addWidget(QLabel("bead diameter (px)"))
        layout.addWidget(self.diameter)
        layout.addWidget(self.threshold_label)
        layout.addWidget(self.slider)
        buttons = QHBoxLayout()
        buttons.addWidget(self.count_button)
        buttons.addWidget(self.cancel_button)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.result)
        layout.addWidget(self.table)
        layout.addWidget(self.regions_button)
        layout.addWidget(self.regions)
        layout.addWidget(self.training_folder)
        layout.addWidget(self.save_button)
        layout.addWidget(self.retrain_button)
        self._threshold_moved(self.slider.value())

        self.viewer.layers.events.inserted.connect(self.refresh_layers)
        self.viewer.layers.events.removed.connect(self.refresh_layers)
        self.viewer.layers.events.removed.connect(self._forget_removed)
        self._replacing = False
        self.refresh_layers()

    @property
    def threshold(self) -> float:
        return self.slider.value() / 100

    def refresh_layers(self, *_) -> None:
        current = self.layer_box.currentText()
        names = [layer.name for layer in self.viewer.layers if type(layer).__name__ == "Image"]
        self.layer_box.clear()
        self.layer_box.addItems(names)
        if current in names:
            self.layer_box.setCurrentText(current)

    def _forget_removed(self, *_) -> None:
        """The count, table and kept maps go when the user removes the image or its beads layer (not when a new
        count replaces the layers)."""
        names = {layer.name for layer in self.viewer.layers}
        if self._replacing or not self.source_name or (
                self.source_name in names and f"{self.source_name} beads" in names):
            return
        self.maps, self.image, self._drawn_at = None, None, None
        self.table.setRowCount(0)
        self.result.setText("no beads counted yet")

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "beadseg checkpoint", "", "checkpoints (*.ckpt)")
        if path:
            self.checkpoint.setText(path)

    def _threshold_moved(self, value: int) -> None:
        self.threshold_label.setText(f"probability threshold {value / 100:.2f}")
        if self.maps is not None:
            self._start(self._redraw_in_worker, self.threshold)

    def _redraw_in_worker(self, threshold: float):
        """In the worker thread: the kept maps' beads at another threshold."""
        if self.maps is None or self.image is None:
            raise ValueError("no counted image to redraw: press Count first")
        return self.image, self.source_name, self.maps, self._instances(self.maps, self.image, threshold)

    def count(self) -> None:
        """Start the model on the chosen layer in a thread worker (progress per tile row); the beads are drawn when
        it returns."""
        name = self.layer_box.currentText()
        if not name:
            self.result.setText("add an image layer first")
            return
        try:
            image = as_gray(self.viewer.layers[name].data, f"layer {name!r} (pick one plane first)")
        except ValueError as error:  # a 3-D layer
            self.result.setText(str(error))
            return
        self._start(self._count_in_worker, image, name, self.checkpoint.text().strip() or None, self.threshold,
                    self.diameter.value() or "auto")

    def retrain(self) -> None:
        """Fine-tune the current model on the saved frames in a worker; when it ends, count the image again."""
        folder = self.training_folder.text().strip()
        if self.worker is not None:
            self.result.setText("a count or a retraining is running: wait for it, or press Cancel")
            return
        if not folder:
            self.result.setText("name the training folder of the saved frames first")
            return
        self._start(self._retrain_in_worker, folder, self.checkpoint.text().strip() or None)
        self.result.setText("retraining: starting beadseg-train…")

    def _retrain_in_worker(self, folder: str, checkpoint: str | None) -> Retrained:
        def epoch_done(done: int, total: int, left: str) -> None:
            self._tiles = [done, total]
            self._status = f"retraining: epoch {done}/{total}" + (f", about {left} left" if left else "")

        return Retrained(retrain(folder, checkpoint, epoch_done, lambda: self._cancelled, self.retrain_overrides))

    def cancel(self) -> None:
        """Stop the running count at its next tile row; nothing it would have drawn is drawn."""
        self._cancelled = True
        self.result.setText("cancelling…")

    def _start(self, function, *args) -> None:
        from napari.qt.threading import create_worker

        if self.worker is not None:
            return  # one run at a time
        self._cancelled, self._tiles = False, [0, 1]
        self.count_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setRange(0, 0)  # busy until the tiles are known
        self.result.setText("counting…")
        self.worker = create_worker(self._caught, function, *args, _start_thread=False,
                                    _connect={"returned": self._draw, "errored": self._failed,
                                              "finished": self._finished})
        self._timer.start(100)
        self.worker.start()

    @staticmethod
    def _caught(function, *args):
        """``function(*args)`` in the worker; an error comes back as the result (shown in the widget), so that
        nothing is raised into napari."""
        try:
            return function(*args)
        except Exception as error:  # every failure is reported in the widget
            return Failed(error)  # (a returned exception would be raised again by the worker)

    def _count_in_worker(self, image: np.ndarray, name: str, checkpoint: str | None, threshold: float,
                         diameter: float | str = "auto"):
        """In the worker thread: load the model (once per checkpoint), decide the beads' size (``diameter`` px, or
        ``auto``), predict the maps at the model's bead size, find the beads on the image's own grid."""
        if self.predictor is None or self.loaded_from != checkpoint:
            loaded = load_predictor(checkpoint)
            assert isinstance(loaded, ModelPredictor)  # a checkpoint's (the widget has no classical mode)
            self.predictor, self.loaded_from = loaded, checkpoint
        predictor = self.predictor
        size = BeadSizing(diameter, model_diameter=predictor.bead_diameter).for_frame(image)
        self._tiles = [0, predictor.tiles(image.shape, size.zoom)]

        def advance(tiles: int) -> None:
            self._tiles[0] += tiles
            if self._cancelled:
                raise Cancelled

        if self._cancelled:
            raise Cancelled
        maps, _ = predictor.predict(image, on_tile_row=advance, zoom=size.zoom)
        self.bead_size = size
        return image, name, maps, self._instances(maps, image, threshold)

    def _instances(self, maps: np.ndarray, image: np.ndarray, threshold: float):
        post = configured_postprocess(threshold=threshold).for_model(self.predictor)
        return threshold, post.at_scale(1 / self.bead_size.zoom if self.bead_size else 1.0).instances(maps, image)

    def _follow(self) -> None:
        done, total = self._tiles
        if self._status:
            self.result.setText(self._status)
        if total:
            self.progress.setRange(0, total)
            self.progress.setValue(done)

    def _draw(self, returned) -> None:
        if isinstance(returned, Failed):
            self._failed(returned.error)
            return
        if isinstance(returned, Retrained):  # the new model counts the image again once the worker has ended
            self.checkpoint.setText(returned.result["checkpoint"])
            self._recount = True
            return
        self.image, self.source_name, self.maps, beads = returned
        self.progress.setRange(0, self._tiles[1])
        self.progress.setValue(self._tiles[1])
        self.show_beads(beads)

    def _failed(self, error: Exception) -> None:
        self.result.setText("cancelled: no beads drawn" if isinstance(error, Cancelled) else str(error)
                            if isinstance(error, RetrainCancelled) else f"could not count: {error}")
        self.progress.setRange(0, 1)
        self.progress.setValue(0)

    def _finished(self) -> None:
        self._timer.stop()
        self.worker, self._status = None, ""
        self.count_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if self._recount:
            self._recount = False
            self.count()
        elif self.maps is not None and self._drawn_at != self.threshold:  # the slider moved while it ran
            self._start(self._redraw_in_worker, self.threshold)

    def show_beads(self, beads) -> None:
        """Beads found at a threshold (``(threshold, Instances)``), as layers, count and table."""
        layer = self.viewer.layers[self.source_name]
        self._drawn_at, found = beads
        labels, rows = found.labels, found.objects
        centres = np.array([[r["centroid_y"], r["centroid_x"]] for r in rows]).reshape(-1, 2)
        features = {column: np.array([r[column] for r in rows]) for column in rows[0]} if rows else \
            {"bead_id": np.zeros(0, int), "counted": np.zeros(0, bool)}
        self.found_labels = labels
        self.found_centres = {int(r["bead_id"]): (r["centroid_y"], r["centroid_x"]) for r in rows}
        self._put(f"{self.source_name} beads", "labels", labels, scale=layer.scale)
        self._put(f"{self.source_name} centres", "points", centres, scale=layer.scale, features=features,
                  size=4, face_color="yellow")
        points = self.viewer.layers[f"{self.source_name} centres"]
        points.feature_defaults = added_bead_features(features)
        points.events.data.connect(self._centres_edited)
        self._show_counts(points.features)

    def _show_counts(self, features, edits: str = "") -> None:
        """The count, its text and the per-bead table, from the centres layer's features."""
        counted = int(np.sum(features["counted"]))
        uncounted = len(features) - counted
        size = self.bead_size
        sized = (f"; beads of {size.diameter:.1f} px ({size.source})" if size is not None and size.diameter else "")
        self.result.setText(f"{counted} beads at threshold {self._drawn_at:.2f}"
                            + (f" ({uncounted} more on the top or left edge, not counted)" if uncounted else "")
                            + edits + sized)
        self.table.setRowCount(len(features))
        for j, column in enumerate(TABLE_COLUMNS):
            values = features[column] if column in features else [""] * len(features)
            for i, value in enumerate(values):
                self.table.setItem(i, j, QTableWidgetItem(str(value)))

    def _centres_edited(self, event) -> None:
        """A bead added, removed or moved by hand: the labels, the count and the table follow."""
        if self._replacing or str(getattr(event, "action", "")) not in ("added", "removed", "changed"):
            return
        points = self.viewer.layers[f"{self.source_name} centres"]
        if self.found_labels is None or f"{self.source_name} beads" not in self.viewer.layers:
            return
        labels, ids = labels_in_step(self.found_labels, self.found_centres, np.asarray(points.data),
                                     points.features["bead_id"].to_numpy(), self._bead_diameter(points.features))
        points.features["bead_id"] = ids
        points.features.loc[~np.isin(ids, list(self.found_centres)), "counted"] = True  # a bead clicked counts
        self.viewer.layers[f"{self.source_name} beads"].data = labels
        added = int(np.sum(~np.isin(ids, list(self.found_centres))))
        removed = len(set(self.found_centres) - set(ids.tolist()))
        self._show_counts(points.features, f"; corrected by hand: {added} added, {removed} removed")

    def count_regions(self) -> None:
        """The counted beads per region drawn in the viewer's shapes layers (rectangles, polygons; a bead in the
        first region that holds its centre), with areas in µm² and beads per mm² where the image has a scale."""
        name = f"{self.source_name} centres"
        if name not in self.viewer.layers:
            self.regions.setText("count the beads first")
            return
        regions = [Region(f"{layer.name} {index + 1}", np.asarray(shape, float)[:, -2:][:, ::-1] + 0.5)
                   for layer in self.viewer.layers if type(layer).__name__ == "Shapes"
                   for index, shape in enumerate(layer.data)]
        if not regions:
            self.regions.setText("draw regions in a shapes layer first")
            return
        points = self.viewer.layers[name]
        counted = np.asarray(points.data)[np.asarray(points.features["counted"], bool)]
        scale = float(self.viewer.layers[self.source_name].scale[-1])
        self.region_rows = region_rows(self.source_name, regions, counted, scale if scale != 1 else None, None)
        self.regions.setText("\n".join(f"{row['region']}: {row['count']} beads, {row['area_px']:g} px²"
                                       + (f" ({row['area_um2']} µm², {row['beads_per_mm2']} per mm²)"
                                          if row["area_um2"] != "" else "") for row in self.region_rows))

    def _bead_diameter(self, features) -> float:
        """The diameter of a bead added by hand: the found beads' median, else the frame's bead size."""
        found = np.asarray(features["equivalent_diameter"] if "equivalent_diameter" in features else [], float)
        found = found[np.isfinite(found)]
        if len(found):
            return float(np.median(found))
        size = self.bead_size
        return float(size.diameter) if size is not None and size.diameter else 7.0

    def save_corrected(self) -> None:
        """Append the counted frame, its (corrected) bead centres and labels to the training folder."""
        folder = self.training_folder.text().strip()
        name = f"{self.source_name} centres"
        if self.image is None or name not in self.viewer.layers:
            self.result.setText("nothing to save: count the beads first")
            return
        if not folder:
            self.result.setText("name a training folder first")
            return
        try:
            written = save_correction(folder, self.source_name, self.image, np.asarray(self.viewer.layers[name].data),
                                      np.asarray(self.viewer.layers[f"{self.source_name} beads"].data))
        except OSError as error:
            self.result.setText(f"could not save: {error}")
            return
        self.result.setText(f"saved {written.stem} to {folder}: beadseg-train data=points data.root={folder}")

    def _put(self, name: str, kind: str, data, **kwargs) -> None:
        self._replacing = True
        try:
            if name in self.viewer.layers:
                self.viewer.layers.remove(name)
            getattr(self.viewer, f"add_{kind}")(data, name=name, **kwargs)
        finally:
            self._replacing = False
