"""Training callbacks beadseg adds to Lightning's own."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint, ProgressBar, RichProgressBar
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.plugins import TorchCheckpointIO
from torchvision.utils import make_grid

from beadseg.files import atomic_write


def _stretch(image: torch.Tensor) -> torch.Tensor:
    low, high = image.min(), image.max()
    return (image - low) / (high - low).clamp_min(1e-6)


def title_strip(titles: list[str], panel_width: int, width: int, padding: int, height: int = 14) -> torch.Tensor:
    """A (3, height, width) strip with each title over its panel (panels ``panel_width`` wide after ``padding``),
    white on black, to stand above a TensorBoard image grid.

    Examples
    --------
    >>> strip = title_strip(["image", "truth"], 64, 136, 4)
    >>> tuple(strip.shape), bool(strip[:, :, 4:60].max() > 0.5), bool(strip[:, :, :4].max() == 0)
    ((3, 14, 136), True, True)
    """
    from PIL import Image, ImageDraw

    picture = Image.new("L", (width, height))
    draw = ImageDraw.Draw(picture)
    for index, title in enumerate(titles):
        draw.text((padding + index * panel_width + 2, 1), title, fill=255)
    return torch.from_numpy(np.asarray(picture, np.float32) / 255)[None].expand(3, -1, -1).clone()


class ImageGridLogger(pl.Callback):
    """Every ``every_n_epochs``, log a TensorBoard grid of validation images under column titles: image | truth |
    prediction (| the predicted centre heat-map, for a ``target=centres`` model, stretched to its own maximum: its
    peaks sit far below 1 early in training, and would show nearly black)."""

    TITLES = ("image", "truth", "prediction", "centre heat-map (/ max)")

    def __init__(self, every_n_epochs: int = 5, max_images: int = 4) -> None:
        self.every_n_epochs, self.max_images = every_n_epochs, max_images
        self.rows: list[torch.Tensor] = []
        self.panels = (0, 0)  # panels per row and their width

    def _active(self, trainer: pl.Trainer) -> bool:
        return not trainer.sanity_checking and trainer.current_epoch % self.every_n_epochs == 0

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.rows = []

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if not self._active(trainer) or len(self.rows) >= self.max_images:
            return
        probabilities = torch.sigmoid(outputs["logits"].detach().float())
        prediction = (probabilities[:, :1] > pl_module.hparams.threshold).float()
        for image, mask, predicted, heat in zip(batch["image"], batch["mask"], prediction, probabilities[:, 1:]):
            if len(self.rows) < self.max_images:
                heat = heat / heat.amax(dim=(-2, -1), keepdim=True).clamp(min=1e-6)
                parts = [_stretch(image.float()), mask.float().clamp(min=0), predicted, *heat[:, None]]
                self.panels = (len(parts), image.shape[-1])
                self.rows.append(torch.cat(parts, dim=-1).cpu())

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.rows:
            return
        width = max(row.shape[-1] for row in self.rows)
        height = max(row.shape[-2] for row in self.rows)
        padded = [torch.nn.functional.pad(r, (0, width - r.shape[-1], 0, height - r.shape[-2])) for r in self.rows]
        grid = make_grid(torch.stack(padded), nrow=1, padding=4, pad_value=0.5)
        count, panel_width = self.panels
        strip = title_strip(list(self.TITLES[:count]), panel_width, grid.shape[-1], 4)
        grid = torch.cat([strip, grid], dim=-2)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image("val/image_truth_prediction", grid, trainer.global_step)
        self.rows = []


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer (a ``Trainer`` plugin), writing each checkpoint through
    :func:`beadseg.files.atomic_write`: a run stopped in the middle of a save leaves the file before it, never a
    half-written one under a checkpoint's name."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        with atomic_write(path) as partial:
            super().save_checkpoint(checkpoint, partial, storage_options)


class BestCheckpoint(ModelCheckpoint):
    """Lightning's best-checkpoint callback, with epochs counted from 1 in file names, as the progress lines and
    ``result.json`` count them (``epoch012`` is the twelfth epoch). ``on_disk`` names the best checkpoint that is on
    disk whenever a stop lands: Lightning names a new best before writing it and deletes the one before after the
    write, so the new best counts once its file is there (whole: written by AtomicCheckpointIO), the one before
    until then."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._saved: tuple[str, float | None] = ("", None)

    def on_disk(self) -> tuple[str, float | None]:
        """The best checkpoint on disk now and its score (``""`` and None before the first is written).

        Examples
        --------
        >>> BestCheckpoint(dirpath="nowhere", monitor="val/jaccard", mode="max").on_disk()
        ('', None)
        """
        if self.best_model_path and Path(self.best_model_path).is_file():
            self._saved = (self.best_model_path,
                           float(self.best_model_score) if self.best_model_score is not None else None)
        elif self._saved[0] and not Path(self._saved[0]).is_file():
            self._saved = ("", None)
        return self._saved

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        self.on_disk()

    def on_validation_end(self, trainer: pl.Trainer, pl_module) -> None:
        super().on_validation_end(trainer, pl_module)
        self.on_disk()

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)  # a resumed run's best so far, where Lightning restores it
        self.on_disk()

    def format_checkpoint_name(self, metrics: dict, filename: str | None = None, ver: int | None = None,
                               prefix: str | None = None) -> str:
        if "epoch" in metrics:
            metrics = {**metrics, "epoch": metrics["epoch"] + 1}
        return super().format_checkpoint_name(metrics, filename, ver, prefix)


class LastCheckpoint(ModelCheckpoint):
    """``last.ckpt`` holds the last finished epoch (rewritten after every validation, improved or not) and, for
    long epochs, the training state every ``minutes`` in between. A ModelCheckpoint, so that Lightning saves it
    after the other callbacks (early stopping included) have updated their state."""

    def __init__(self, dirpath: str, minutes: float | None = 30.0) -> None:
        super().__init__(dirpath=dirpath, filename="last", monitor=None, save_top_k=1, save_last=False,
                         every_n_epochs=1, enable_version_counter=False)
        self.path = Path(dirpath) / "last.ckpt"
        self.seconds = None if minutes is None else minutes * 60
        self.saved_at = time.monotonic()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        self.saved_at = time.monotonic()

    def on_validation_end(self, trainer: pl.Trainer, pl_module) -> None:
        super().on_validation_end(trainer, pl_module)
        self.saved_at = time.monotonic()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if self.seconds is not None and time.monotonic() - self.saved_at >= self.seconds:
            trainer.save_checkpoint(self.path)
            self.saved_at = time.monotonic()


def duration(seconds: float) -> str:
    """``seconds`` as a person reads it: ``42 s``, ``6 min 5 s``, ``2 h 03 min``.

    Examples
    --------
    >>> duration(42.4), duration(365), duration(7380)
    ('42 s', '6 min 5 s', '2 h 03 min')
    """
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class EpochLines(ProgressBar):
    """Progress for logs and pipes: one plain line per epoch with its metrics, the epoch's time and an estimate of
    the time left at the mean epoch's pace so far (a bar's redraws would wrap)."""

    def __init__(self) -> None:
        super().__init__()
        self.enabled = True
        self.started: float | None = None
        self.epoch_started: float | None = None
        self.epochs_timed = 0

    def enable(self) -> None:
        self.enabled = True

    def disable(self) -> None:
        self.enabled = False

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        now = time.monotonic()
        self.started = self.started if self.started is not None else now
        self.epoch_started = now

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.enabled or not trainer.is_global_zero:
            return
        metrics = {k: v for k, v in self.get_metrics(trainer, pl_module).items() if k != "v_num"}
        shown = ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items())
        now, epoch = time.monotonic(), trainer.current_epoch + 1
        self.epochs_timed += 1
        timing = ""
        if self.started is not None and self.epoch_started is not None:
            left = (now - self.started) / self.epochs_timed * max(0, (trainer.max_epochs or epoch) - epoch)
            timing = (
                f" [{duration(now - self.epoch_started)}" + (f", about {duration(left)} left" if left else "") + "]"
            )
        print(f"epoch {epoch}/{trainer.max_epochs}: {shown}{timing}", flush=True)


def progress_bar() -> ProgressBar:
    """A live bar on a terminal, plain epoch lines otherwise (logs, pipes, batch jobs)."""
    return RichProgressBar() if sys.stdout.isatty() else EpochLines()


class ValidationHistory(pl.Callback):
    """Every epoch's validation metrics, so the run's record can give all of them at its best epoch."""

    def __init__(self) -> None:
        self.epochs: dict[int, dict[str, float]] = {}

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.epochs[trainer.current_epoch + 1] = {
                key: float(value) for key, value in trainer.callback_metrics.items() if key.startswith("val/")
            }
