"""``beadseg-synth out=DIR n=N``: write a synthetic bead data set as a folder (images/, masks/ as TIFF);
``source=composite source.root=DIR``: composite frames cut from a folder's own beads."""

from __future__ import annotations

from pathlib import Path

import hydra
import tifffile
from omegaconf import DictConfig
from rich.progress import track

from beadseg.cli.app import beadseg_app
from beadseg.data.sources import RenderedSource


def write_synthetic_folder(source: RenderedSource, out: Path) -> Path:
    """A drawn source's images as TIFF (8/16-bit as drawn) and instance-label masks (uint16 TIFF, >0 is bead)."""
    for sub in ("images", "masks"):
        folder = out / sub
        if folder.is_dir() and any(folder.iterdir()):
            raise FileExistsError(f"{folder} is not empty; beadseg-synth never overwrites data: choose another out=")
        folder.mkdir(parents=True, exist_ok=True)
    for index in track(range(source.n_images), description="rendering beads"):
        name, image, labels = source.render(index)
        tifffile.imwrite(out / "images" / f"{name}.tif", image)
        tifffile.imwrite(out / "masks" / f"{name}.tif", labels.astype("uint16"))
    return out


@beadseg_app("synth")
def main(cfg: DictConfig) -> None:
    source = hydra.utils.instantiate(cfg.source)
    out = write_synthetic_folder(source, Path(cfg.out))
    print(f"beadseg-synth: {source.n_images} images and masks in {out} (train on them: data=folder data.root={out})")


if __name__ == "__main__":
    main()
