"""LightningModules built from config: bead segmentation, and frame classification for the adequacy check."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassAUROC,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)

from beadseg.metrics.pixel import pixel_metrics


def _plain(config: Any) -> Any:
    return OmegaConf.to_container(config, resolve=True) if isinstance(config, DictConfig) else config


class ConfiguredModule(pl.LightningModule, ABC):
    """What every beadseg task shares.

    Takes the *configs* of its parts (``_target_`` dicts), not built objects, and saves them as
    hyper-parameters: ``load_from_checkpoint(path)`` rebuilds the model with no Hydra app. The checkpoint
    also carries the data's normalisation recipe and which image was in which split.
    """

    target_key = "mask"

    def __init__(self, net: dict, loss: dict, optimizer: dict, scheduler: dict | None, metrics: MetricCollection,
                 **hparams: Any) -> None:
        super().__init__()
        net, loss, optimizer, scheduler = map(_plain, (net, loss, optimizer, scheduler))
        self.save_hyperparameters({"net": net, "loss": loss, "optimizer": optimizer, "scheduler": scheduler, **hparams})
        self.net = instantiate(net)
        self.loss_fn = instantiate(loss)
        self.train_metrics = metrics.clone(prefix="train/")
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)

    @abstractmethod
    def metric_inputs(self, logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What the metrics compare: predictions (probabilities) and targets."""

    def _shared_step(self, batch: dict, stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self(batch["image"])
        target = batch[self.target_key]
        loss = self.loss_fn(logits, target)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"{stage} loss became {loss.item()} at epoch {self.current_epoch}, step {self.global_step}: "
                "lower optimizer.lr, set trainer.gradient_clip_val, or check the inputs for NaN/inf"
            )
        metrics = getattr(self, f"{stage}_metrics")
        metrics.update(*self.metric_inputs(logits.detach().float(), target))
        self.log(f"{stage}/loss", loss, on_step=stage == "train", on_epoch=True, prog_bar=True, batch_size=len(logits),
                 sync_dist=stage != "train")
        self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=stage == "val")
        return loss, logits

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "train")[0]

    def validation_step(self, batch: dict, batch_idx: int) -> dict:
        return {"logits": self._shared_step(batch, "val")[1]}

    def test_step(self, batch: dict, batch_idx: int) -> dict:
        return {"logits": self._shared_step(batch, "test")[1]}

    def configure_optimizers(self) -> Any:
        optimizer = instantiate(self.hparams.optimizer)(params=self.parameters())  # configs are _partial_
        scheduler = self.hparams.scheduler
        if not scheduler or not scheduler.get("scheduler"):
            return optimizer
        lr_scheduler = {**scheduler, "scheduler": instantiate(scheduler["scheduler"])(optimizer=optimizer)}
        return {"optimizer": optimizer, "lr_scheduler": lr_scheduler}

    def on_fit_start(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "normalization"):
            self.hparams.normalization = datamodule.normalization.to_dict()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Remember which image was in which split, so that ``beadseg-eval split=val`` finds the same images."""
        datamodule = getattr(self.trainer, "datamodule", None)
        if getattr(datamodule, "split_table", None):
            checkpoint["beadseg_split"] = {row["name"]: row["split"] for row in datamodule.split_table}


class BeadSegModule(ConfiguredModule):
    """Binary bead segmentation; the checkpoint also carries the probability threshold."""

    def __init__(self, net: dict, loss: dict, optimizer: dict, scheduler: dict | None = None, threshold: float = 0.5,
                 normalization: dict | None = None) -> None:
        super().__init__(net, loss, optimizer, scheduler, pixel_metrics(threshold), threshold=threshold,
                         normalization=normalization)

    def metric_inputs(self, logits, target):
        return torch.sigmoid(logits), target.int()


class BeadClassifierModule(ConfiguredModule):
    """Frame classification (e.g. frames with beads vs without): is the data learnable at all?"""

    target_key = "label"

    def __init__(self, net: dict, loss: dict, optimizer: dict, scheduler: dict | None = None,
                 class_names: list[str] | None = None, normalization: dict | None = None) -> None:
        classes = len(class_names or ()) or int(_plain(net).get("num_classes", 2))
        metrics = MetricCollection({
            "accuracy": MulticlassAccuracy(classes, average="micro"),
            "precision": MulticlassPrecision(classes, average="macro"),
            "recall": MulticlassRecall(classes, average="macro"),
            "f1": MulticlassF1Score(classes, average="macro"),
            "auroc": MulticlassAUROC(classes),
        })
        super().__init__(net, loss, optimizer, scheduler, metrics, class_names=list(class_names or []),
                         normalization=normalization)

    def metric_inputs(self, logits, target):
        return torch.softmax(logits, dim=1), target

    def on_fit_start(self) -> None:
        super().on_fit_start()
        names = getattr(getattr(self.trainer, "datamodule", None), "class_names", None)
        if names:
            self.hparams.class_names = list(names)
