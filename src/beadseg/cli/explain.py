"""``beadseg-explain ckpt=PATH input=FILE_OR_DIR``: attribution maps of a frame classifier (Captum)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from beadseg.cli.app import beadseg_app
from beadseg.data.readers import PlaneChoice


@beadseg_app("explain")
def main(cfg: DictConfig) -> None:
    from beadseg.analysis.explain import explain
    from beadseg.data.io import list_images

    out = explain(cfg.ckpt, list_images(cfg.input), Path(cfg.output), list(cfg.methods), cfg.window,
                  PlaneChoice.from_config(cfg.get("image")))
    print(f"beadseg-explain: overlays (green: toward the predicted class, red: away) and predictions.csv in {out}")


if __name__ == "__main__":
    main()
