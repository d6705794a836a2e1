"""``beadseg-train``: train a bead segmentation model (a Hydra app over conf/train.yaml)."""

from __future__ import annotations

import os

from omegaconf import DictConfig

from beadseg.cli.app import beadseg_app


@beadseg_app("train")
def main(cfg: DictConfig) -> float | None:
    from beadseg.training.task import (
        train,  # heavy imports after parsing: --help stays fast
    )

    result = train(cfg)
    score = result["best_score"]
    if os.environ.get("LOCAL_RANK", "0") == "0":
        metric = "val Jaccard" if cfg.monitor == "val/jaccard" else cfg.monitor
        print(
            f"beadseg-train: best {metric} {score if score is None else round(score, 4)} "
            f"(epoch {result['best_epoch']}); checkpoint {result['checkpoint'] or '-'}; "
            f"watch with: tensorboard --logdir {result['tensorboard'] or cfg.paths.output_dir}"
        )
        print(f"beadseg-train: stopped by {result['stopped']}")
        if result.get("adequacy"):
            print(f"beadseg-train: {result['adequacy']}")
    return score  # the objective for sweepers that optimise (Optuna)


if __name__ == "__main__":
    main()
