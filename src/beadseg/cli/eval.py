"""``beadseg-eval ckpt=PATH data.root=DIR [split=val|test|all]``: pixel and object metrics, threshold sweep."""

from __future__ import annotations

from omegaconf import DictConfig

from beadseg.cli.app import beadseg_app


@beadseg_app("eval")
def main(cfg: DictConfig) -> None:
    from beadseg.evaluation.evaluate import evaluate

    result = evaluate(cfg)
    metrics, written = result["metrics"], result["written"]
    print(
        f"beadseg-eval: {metrics['images']} images, IoU {metrics['pixel']['iou']:.4f}, object F1 "
        f"{metrics['objects']['centroid']['f1']:.4f}, median count error {metrics['count']['median_relative_error']}, "
        f"best threshold {metrics['best_threshold']:g}"
        + (f", best peak threshold {metrics['best_peak_threshold']:g}" if metrics["best_peak_threshold"] else "")
        + f" -> {written['metrics']}"
        + (f"; tuned checkpoint {written['tuned_checkpoint']}" if "tuned_checkpoint" in written else "")
    )


if __name__ == "__main__":
    main()
