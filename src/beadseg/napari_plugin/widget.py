"""The napari dock widget: count the beads of an image layer with the shipped model or a chosen checkpoint.

The model runs once per image (tile by tile, with a progress bar); the threshold slider then re-draws the beads
from the kept maps at once. Results are added as layers: bead instance labels and a points layer of bead centres
whose features are the ``objects.csv`` columns; the count and a per-bead table sit in the widget.
"""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QApplication,
    QComboBox,
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

from beadseg.data.io import as_gray
from beadseg.inference.postprocess import PostProcess
from beadseg.inference.predictor import load_predictor
from beadseg.inference.tiling import tile_plan

TABLE_COLUMNS = ("bead_id", "centroid_y", "centroid_x", "area", "equivalent_diameter", "circularity", "mean_probability")


class BeadCounter(QWidget):
    """Dock widget: image layer, checkpoint (empty: the shipped model), threshold slider, Count, progress, results."""

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.predictor, self.loaded_from = None, None
        self.maps: np.ndarray | None = None
        self.image: np.ndarray | None = None
        self.source_name = ""

        self.layer_box = QComboBox()
        self.checkpoint = QLineEdit()
        self.checkpoint.setPlaceholderText("the shipped bead model")
        browse = QPushButton("…")
        browse.clicked.connect(self._browse)
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setRange(1, 99)
        self.slider.setValue(50)
        self.threshold_label = QLabel()
        self.slider.valueChanged.connect(self._threshold_moved)
        self.count_button = QPushButton("Count beads")
        self.count_button.clicked.connect(self.count)
        self.progress = QProgressBar()
        self.result = QLabel("no beads counted yet")
        self.table = QTableWidget(0, len(TABLE_COLUMNS))
        self.table.setHorizontalHeaderLabels(list(TABLE_COLUMNS))

        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("image layer"))
        layout.addWidget(self.layer_box)
        row = QHBoxLayout()
        row.addWidget(self.checkpoint)
        row.addWidget(browse)
        layout.addWidget(QLabel("checkpoint"))
        layout.addLayout(row)
        layout.addWidget(self.threshold_label)
        layout.addWidget(self.slider)
        layout.addWidget(self.count_button)
        layout.addWidget(self.progress)
        layout.addWidget(self.result)
        layout.addWidget(self.table)
        self._threshold_moved(self.slider.value())

        self.viewer.layers.events.inserted.connect(self.refresh_layers)
        self.viewer.layers.events.removed.connect(self.refresh_layers)
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

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "beadseg checkpoint", "", "checkpoints (*.ckpt)")
        if path:
            self.checkpoint.setText(path)

    def _threshold_moved(self, value: int) -> None:
        self.threshold_label.setText(f"probability threshold {value / 100:.2f}")
        if self.maps is not None:
            self.show_beads()

    def _load(self):
        wanted = self.checkpoint.text().strip() or None
        if self.predictor is None or self.loaded_from != wanted:
            self.predictor, self.loaded_from = load_predictor(wanted), wanted
        return self.predictor

    def count(self) -> None:
        """Run the model on the chosen layer (progress per tile row), then draw the beads."""
        name = self.layer_box.currentText()
        if not name:
            self.result.setText("add an image layer first")
            return
        try:
            image = as_gray(self.viewer.layers[name].data, f"layer {name!r} (pick one plane first)")
            predictor = self._load()
        except (ValueError, FileNotFoundError) as error:  # a 3-D layer, a refused or missing checkpoint
            self.result.setText(str(error))
            return
        self.image, self.source_name = image, name
        rows = len(tile_plan(self.image.shape[0], predictor.tile, predictor.overlap)[1])
        cols = len(tile_plan(self.image.shape[1], predictor.tile, predictor.overlap)[1])
        self.progress.setRange(0, rows * cols)
        self.progress.setValue(0)

        def advance(tiles: int) -> None:
            self.progress.setValue(self.progress.value() + tiles)
            QApplication.processEvents()

        self.maps, _ = predictor.predict(self.image, on_tile_row=advance)
        self.show_beads()

    def show_beads(self) -> None:
        """Beads at the slider's threshold, as layers, count and table."""
        layer = self.viewer.layers[self.source_name]
        post = PostProcess(threshold=self.threshold).for_model(self.predictor)
        labels, rows, _ = post.instances(self.maps, self.image)
        centres = np.array([[r["centroid_y"], r["centroid_x"]] for r in rows]).reshape(-1, 2)
        features = {column: np.array([r[column] for r in rows]) for column in rows[0]} if rows else {}
        self._put(f"{self.source_name} beads", "labels", labels, scale=layer.scale)
        self._put(f"{self.source_name} centres", "points", centres, scale=layer.scale, features=features,
                  size=4, face_color="yellow")
        self.result.setText(f"{len(rows)} beads at threshold {self.threshold:.2f}")
        self.table.setRowCount(len(rows))
        for i, row in enumerate(rows):
            for j, column in enumerate(TABLE_COLUMNS):
                self.table.setItem(i, j, QTableWidgetItem(str(row[column])))

    def _put(self, name: str, kind: str, data, **kwargs) -> None:
        if name in self.viewer.layers:
            self.viewer.layers.remove(name)
        getattr(self.viewer, f"add_{kind}")(data, name=name, **kwargs)
