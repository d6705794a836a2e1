"""LightningModules built from config: bead segmentation, and frame classification for the adequacy check."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, cast

import numpy as np
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

from beadseg.beads.measure import edge_ids
from beadseg.beads.postprocess import PostProcess
from beadseg.metrics.objects import ObjectCounts
from beadseg.metrics.pixel import pixel_metrics
from beadseg.models.registry import build_network, describe


def _plain(config: Any) -> Any:
    return OmegaConf.to_container(config, resolve=True) if isinstance(config, DictConfig) else config


class ConfiguredModule(pl.LightningModule, ABC):
    """What every beadseg task shares.

    Takes the user's *configs* of its parts (``_target_`` dicts), not built objects. The network's config is
    translated into a validated description (:func:`~beadseg.models.registry.describe`), which the checkpoint
    stores and from which :func:`beadseg.checkpoint.load_network` rebuilds the network with no Hydra app; the
    checkpoint also carries the data's normalisation recipe, the tuned thresholds and which image was in which
    split. Nothing is ever built from a checkpoint's loss or optimiser settings: ``load_from_checkpoint`` is
    refused (use :func:`~beadseg.checkpoint.load_network`, or resume with ``ckpt_path=``).
    """

    target_key = "mask"

    def __init__(self, net: dict, loss: dict, optimizer: dict, scheduler: dict | None, metrics: MetricCollection,
                 **hparams: Any) -> None:
        super().__init__()
        net, loss, optimizer, scheduler = map(_plain, (net, loss, optimizer, scheduler))
        net = describe(net, "model")
        self.save_hyperparameters({"net": net, "loss": loss, "optimizer": optimizer, "scheduler": scheduler, **hparams})
        self.net = build_network(net, "model")
        self.loss_fn = instantiate(loss)
        self.train_metrics = metrics.clone(prefix="train/")
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        self._pending_losses: dict[str, list[tuple[int, torch.Tensor]]] = {}  # (step, loss) not yet checked

    @classmethod
    def load_from_checkpoint(cls, *args: Any, **kwargs: Any) -> Any:
        """Refused: it would build a checkpoint's loss and optimiser settings. A checkpoint's network is
        :func:`beadseg.checkpoint.load_network`; training goes on with ``beadseg-train ckpt_path=...``."""
        raise TypeError(
            f"{cls.__name__}.load_from_checkpoint would build what a checkpoint names; use "
            "beadseg.checkpoint.load_network(path) for its network, or beadseg-train ckpt_path=PATH to resume"
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)

    @abstractmethod
    def metric_inputs(self, logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What the metrics compare: predictions (probabilities) and targets."""

    def compute_loss(self, logits: torch.Tensor, batch: dict, stage: str) -> torch.Tensor:
        return self.loss_fn(logits, batch[self.target_key])

    def _check_losses(self, stage: str, every: int = 1) -> None:
        """Stop on a NaN/inf loss, naming its step, once ``every`` losses are waiting (on a GPU, training losses
        wait for the trainer's logging interval, so that no step waits for the device to report its loss)."""
        pending = self._pending_losses.setdefault(stage, [])
        if not pending or len(pending) < every:
            return
        steps, losses = zip(*pending)
        pending.clear()
        finite = torch.isfinite(torch.stack(losses))
        if not bool(finite.all()):
            first = int((~finite).nonzero()[0, 0])
            raise FloatingPointError(
                f"{stage} loss became {losses[first].item()} at epoch {self.current_epoch}, step {steps[first]}: "
                "lower optimizer.lr, set trainer.gradient_clip_val, or check the inputs for NaN/inf"
            )

    def on_train_epoch_end(self) -> None:
        self._check_losses("train")

    def _shared_step(self, batch: dict, stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self(batch["image"])
        target = batch[self.target_key]
        loss = self.compute_loss(logits, batch, stage)
        deferred = loss.device.type == "cuda" and stage == "train"
        self._pending_losses.setdefault(stage, []).append((self.global_step, loss.detach()))
        self._check_losses(stage, cast(Any, self.trainer).log_every_n_steps if deferred else 1)
        metrics = getattr(self, f"{stage}_metrics")
        metrics.update(*self.metric_inputs(logits.detach().float(), target))
        # on a GPU no per-step progress-bar value for the training loss: showing it makes every step wait for it
        self.log(f"{stage}/loss", loss, on_step=stage == "train", on_epoch=True, prog_bar=not deferred,
                 batch_size=len(logits), sync_dist=stage != "train")
        self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=stage == "val")
        return loss, logits

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "train")[0]

    def validation_step(self, batch: dict, batch_idx: int) -> dict:
        return {"logits": self._shared_step(batch, "val")[1]}

    def test_step(self, batch: dict, batch_idx: int) -> dict:
        return {"logits": self._shared_step(batch, "test")[1]}

    def configure_optimizers(self) -> Any:
        optimizer = instantiate(self.hparams["optimizer"])(params=self.parameters())  # configs are _partial_
        scheduler = self.hparams["scheduler"]
        if not scheduler or not scheduler.get("scheduler"):
            return optimizer
        lr_scheduler = {**scheduler, "scheduler": instantiate(scheduler["scheduler"])(optimizer=optimizer)}
        return {"optimizer": optimizer, "lr_scheduler": lr_scheduler}

    def on_fit_start(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "normalization"):
            self.hparams["normalization"] = datamodule.normalization.to_dict()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Remember which image was in which split, so that ``beadseg-eval split=val`` finds the same images."""
        table = getattr(getattr(self.trainer, "datamodule", None), "split_table", None)
        if table:
            checkpoint["beadseg_split"] = {row["name"]: row["split"] for row in table}


MONODISPERSE = 1.8  # the lab's beads: 1.56 (quartiles 27, 42 px); synthetic beads of every size: 2.3
MIN_SIZED_BEADS = 30  # whole validation beads below which their sizes are no size (a fine-tune keeps its start's)


def whole_bead_areas(labels: np.ndarray) -> np.ndarray:
    """Areas (px) of the labelled beads a patch holds whole: one it cuts shows only part of its size.

    Examples
    --------
    >>> labels = np.zeros((8, 8), int); labels[2:4, 2:4] = 1; labels[0:2, 5:7] = 2
    >>> whole_bead_areas(labels)
    array([4])
    """
    areas = np.bincount(labels.ravel())
    areas[edge_ids(labels, True, True, True, True)] = 0
    return areas[1:][areas[1:] > 0]


def learned_bead_size(areas: list[int] | np.ndarray) -> tuple[float | None, float] | None:
    """The bead size validation beads teach: ``(bead_area, bead_diameter)`` from the median area, ``bead_area``
    ``None`` where they are of many sizes (quartiles more than ``MONODISPERSE`` apart); ``None`` from fewer than
    ``MIN_SIZED_BEADS`` beads.

    Examples
    --------
    >>> learned_bead_size([50] * 40)
    (50.0, 7.979)
    >>> learned_bead_size([50] * 10) is None
    True
    """
    if len(areas) < MIN_SIZED_BEADS:
        return None
    low, median, high = np.percentile(areas, (25, 50, 75))
    monodisperse = high <= MONODISPERSE * low  # one stock; beads of every size teach no one size
    return (float(median) if monodisperse else None), round(float(np.sqrt(4 * median / np.pi)), 3)


class BeadSegModule(ConfiguredModule):
    """Binary bead segmentation; the checkpoint also carries the probability threshold.

    The network's first output channel is the bead mask. With ``centres`` (``target=centres``: ``sigma``,
    ``weight``, ``loss``) a second channel learns the bead-centre heat-map beside it (multi-task, ``weight`` times
    its own loss), and beads are decoded from its peaks. With ``object_metrics`` every validation (and test) image is
    also post-processed into beads as
    beadseg-predict does, and ``val/object_f1`` (centroids within ``match_distance`` px) and ``val/count_error``
    (median relative error of the count per image) are logged: usable as the checkpoint and plateau monitor.
    ``bead_area`` (median area of the validation beads, px) is recorded for the debris rule's fallback when the
    beads are of one size (upper quartile of their areas at most ``MONODISPERSE`` times the lower), and
    ``bead_diameter`` (their median equivalent diameter, px) always: frames of other bead sizes are resized to it
    for this model (``image.bead_diameter``). Both are measured on whole beads (none the patch cuts), and only from
    ``MIN_SIZED_BEADS`` of them: below that a fine-tuned model keeps the diameter of the model it started from."""

    def __init__(self, net: dict, loss: dict, optimizer: dict, scheduler: dict | None = None, *, threshold: float = 0.5,
                 normalization: dict | None = None, object_metrics: bool = True, match_distance: float = 5.0,
                 centres: dict | None = None, peak_threshold: float | None = None,
                 bead_area: float | None = None, bead_diameter: float | None = None) -> None:
        super().__init__(net, loss, optimizer, scheduler, pixel_metrics(threshold), threshold=threshold,
                         normalization=normalization, object_metrics=object_metrics, match_distance=match_distance,
                         centres=_plain(centres), peak_threshold=peak_threshold, bead_area=bead_area,
                         bead_diameter=bead_diameter)
        self.bead_areas: list[int] = []
        self.centre_loss = instantiate(self.hparams["centres"]["loss"]) if centres else None
        if centres:
            self._start_centres_rare()
        self.val_objects, self.test_objects = ObjectCounts(match_distance), ObjectCounts(match_distance)
        self.post = PostProcess(threshold=threshold, peak_threshold=peak_threshold)

    def _start_centres_rare(self, prior: float = 0.01) -> None:
        """Start the centre map at a low probability everywhere (CenterNet's bias prior): centres are rare, and a
        map starting at 0.5 would begin with a huge, unstable loss."""
        head = [m for m in self.net.modules() if isinstance(m, torch.nn.Conv2d)][-1]
        if head.out_channels == 2 and head.bias is not None:
            with torch.no_grad():
                head.bias[1] = float(np.log(prior / (1 - prior)))

    def compute_loss(self, logits: torch.Tensor, batch: dict, stage: str) -> torch.Tensor:
        loss = self.loss_fn(logits[:, :1], batch["mask"])
        if self.centre_loss is None:
            return loss
        if logits.shape[1] != 2:
            raise ValueError(f"target=centres needs a network with 2 output channels, this one has {logits.shape[1]}")
        centre_loss = self.centre_loss(logits[:, 1:], batch["centres"])
        self.log(f"{stage}/centre_loss", centre_loss, on_step=False, on_epoch=True, batch_size=len(logits),
                 sync_dist=stage != "train")
        return loss + self.hparams["centres"]["weight"] * centre_loss

    def metric_inputs(self, logits, target):
        return torch.sigmoid(logits[:, :1]), target.int()

    def _count_objects(self, batch: dict, logits: torch.Tensor, stage: str) -> None:
        if not self.hparams["object_metrics"] or "labels" not in batch:
            return
        maps = torch.sigmoid(logits.detach().float()).cpu().numpy()
        images = batch["image"][:, 0].float().cpu().numpy()
        for bead_maps, image, truth in zip(maps, images, batch["labels"][:, 0].cpu().numpy()):
            found = self.post(bead_maps, image)[1]
            getattr(self, f"{stage}_objects").update(truth, found)
            if stage == "val":
                self.bead_areas.extend(whole_bead_areas(truth).tolist())

    def _log_objects(self, stage: str) -> None:
        objects = getattr(self, f"{stage}_objects")
        if not self.hparams["object_metrics"] or not objects.update_called:
            return
        for name, value in objects.compute().items():
            self.log(f"{stage}/{name}", value.float(), prog_bar=stage == "val" and name == "object_f1")
        objects.reset()

    def validation_step(self, batch: dict, batch_idx: int) -> dict:
        logits = self._shared_step(batch, "val")[1]
        self._count_objects(batch, logits, "val")
        return {"logits": logits}

    def test_step(self, batch: dict, batch_idx: int) -> dict:
        logits = self._shared_step(batch, "test")[1]
        self._count_objects(batch, logits, "test")
        return {"logits": logits}

    def on_validation_epoch_start(self) -> None:
        self._check_losses("train")  # before a checkpoint could keep what a NaN step did to the weights
        self.bead_areas = []

    def on_validation_epoch_end(self) -> None:
        self._log_objects("val")
        learned = learned_bead_size(self.bead_areas)
        if learned:  # the debris rule's fallback and the size frames are resized to, in the checkpoint
            self.hparams["bead_area"], self.hparams["bead_diameter"] = learned

    def on_test_epoch_end(self) -> None:
        self._log_objects("test")


class BeadClassifierModule(ConfiguredModule):
    """Frame classification (e.g. frames with beads vs without): is the data learnable at all?"""

    target_key = "label"

    def __init__(self, net: dict, loss: dict, optimizer: dict, scheduler: dict | None = None,
                 *, class_names: list[str] | None = None, normalization: dict | None = None) -> None:
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
            self.hparams["class_names"] = list(names)
