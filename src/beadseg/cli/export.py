"""``beadseg-export ckpt=PATH format=torchscript|onnx|checkpoint|bioimageio``: a deployable model, checked against
the checkpoint."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from beadseg.cli.app import beadseg_app


@beadseg_app("export")
def main(cfg: DictConfig) -> None:
    from beadseg.inference.predictor import shipped_checkpoint
    from beadseg.packaging.export import export, exporter_for

    path, difference = export(cfg.ckpt or shipped_checkpoint(), cfg.format, Path(cfg.output), cfg.tile, cfg.tolerance)
    contents = exporter_for(cfg.format).contents(path)
    print(f"beadseg-export: {path} (max difference from the checkpoint {difference:.1e}; {contents})")


if __name__ == "__main__":
    main()
