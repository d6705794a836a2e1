"""``beadseg-eval ckpt=PATH data.root=DIR [split=val|test|all]``: pixel and object metrics, threshold sweep."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from beadseg.config import CONFIG_DIR


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="eval")
def main(cfg: DictConfig) -> None:
    from beadseg.inference.evaluate import evaluate

    result = evaluate(cfg)
    metrics, written = result["metrics"], result["written"]
    print(f"beadseg-eval: {metrics['images']} images, IoU {metrics['pixel']['iou']:.4f}, object F1 "
          f"{metrics['objects']['centroid']['f1']:.4f}, median count error {metrics['count']['median_relative_error']}, "
          f"best threshold {metrics['best_threshold']:g} -> {written['metrics']}"
          + (f"; tuned checkpoint {written['tuned_checkpoint']}" if "tuned_checkpoint" in written else ""))


if __name__ == "__main__":
    main()
