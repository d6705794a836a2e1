"""Draw docs/napari_widget.png: the beadseg dock widget after counting a real bead image, beside the layers it
added. Runs headless: the widget is grabbed from an offscreen Qt window; the layers (image, bead outlines, bead
centres) are drawn with matplotlib from the viewer's layer data, since a machine without OpenGL cannot render
napari's canvas.

    python docs/napari_screenshot.py [IMAGE]      # default: a 160x capture tile of ../shared/data/microbeads/real
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import matplotlib.pyplot as plt
import numpy as np
from napari.components import ViewerModel
from qtpy.QtWidgets import QApplication
from skimage.segmentation import find_boundaries

from beadseg.data.io import read_image
from beadseg.napari_plugin.widget import BeadCounter
from beadseg.plots import display

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT.parent / "shared" / "data" / "microbeads" / "real" / "images"


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else sorted(DEFAULT.glob("160x_*"))[0]
    app = QApplication.instance() or QApplication([])
    viewer = ViewerModel()
    viewer.add_image(read_image(path), name=path.stem[:24])
    widget = BeadCounter(viewer)
    widget.resize(420, 640)
    widget.count()  # in a thread worker: wait for it
    while widget.worker is not None:
        app.processEvents()
        time.sleep(0.02)
    grabbed = ROOT / "docs" / ".widget.png"
    widget.grab().save(str(grabbed))
    name = widget.source_name
    labels = viewer.layers[f"{name} beads"].data
    centres = viewer.layers[f"{name} centres"].data
    rgb = np.repeat(display(viewer.layers[name].data)[..., None], 3, -1)
    rgb[find_boundaries(labels, mode="inner")] = (1.0, 0.86, 0.0)
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 6.4), gridspec_kw={"width_ratios": [1, 1.45]})
    left.imshow(plt.imread(grabbed))
    left.set_title("dock widget (Plugins ▸ beadseg ▸ Count beads)", fontsize=10)
    right.imshow(rgb)
    right.scatter(centres[:, 1], centres[:, 0], s=4, c="cyan")
    right.set_title(f"layers added: '{name} beads' (yellow outlines), '{name} centres' (cyan)\n{path.name}", fontsize=10)
    for ax in (left, right):
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(ROOT / "docs" / "napari_widget.png", dpi=90)
    grabbed.unlink()
    print(f"docs/napari_widget.png: {widget.result.text()}")


if __name__ == "__main__":
    main()
