"""Draw docs/fiji_rois.png: the ImageJ ROI set beadseg-predict writes (rois=imagej), read back with roifile and
drawn over the real tile it outlines, as Fiji's ROI Manager shows it (no Fiji runs on the build machine).

    python docs/roi_figure.py [IMAGE]      # default: a 640x capture tile of ../shared/data/microbeads/real
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
from hydra import compose, initialize_config_dir
from matplotlib.patches import Polygon, Rectangle
from roifile import roiread

from beadseg.config import CONFIG_DIR
from beadseg.data.io import read_image
from beadseg.inference.predict import predict
from beadseg.plots import display

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT.parent / "shared" / "data" / "microbeads" / "real" / "images"


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else sorted(DEFAULT.glob("640x_*"))[0]
    with tempfile.TemporaryDirectory() as scratch:
        folder, out = Path(scratch) / "in", Path(scratch) / "out"
        folder.mkdir()
        shutil.copy(path, folder / path.name)
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose("predict", [f"input={folder}", f"output={out}", f"paths.output_dir={out}", "rois=imagej"])
        predict(cfg)
        rois = roiread(next((out / "rois").glob("*_rois.zip")))
    image = display(read_image(path))
    zoom = (slice(160, 288), slice(160, 288))
    fig, (whole, near) = plt.subplots(1, 2, figsize=(13, 6.6))
    for ax, (rows, cols) in ((whole, (slice(0, image.shape[0]), slice(0, image.shape[1]))), (near, zoom)):
        ax.imshow(image, cmap="gray", extent=(0, image.shape[1], image.shape[0], 0))
        for roi in rois:
            ax.add_patch(Polygon(roi.coordinates(), closed=True, fill=False, edgecolor=(1, 0.86, 0), linewidth=0.8))
        ax.set_xlim(cols.start, cols.stop)
        ax.set_ylim(rows.stop, rows.start)
        ax.axis("off")
    whole.add_patch(Rectangle((zoom[1].start, zoom[0].start), 128, 128, fill=False, edgecolor="cyan", linewidth=1))
    whole.set_title(f"{len(rois)} ImageJ ROIs read back from rois/<image>_rois.zip\n{path.name}", fontsize=9)
    near.set_title("zoom (cyan box): each polygon runs along its bead's pixel edges\n(named bead_00001, bead_00002, …)",
                   fontsize=9)
    fig.tight_layout()
    fig.savefig(ROOT / "docs" / "fiji_rois.png", dpi=90)
    print(f"docs/fiji_rois.png: {len(rois)} ROIs")


if __name__ == "__main__":
    main()
