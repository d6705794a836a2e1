"""The training task: build everything from the composed config, fit, and record the result."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from beadseg.beads.size import BeadSizing
from beadseg.checkpoint import learned_diameter, module_settings, read_checkpoint, trusted_resume
from beadseg.data.folder import FolderSource
from beadseg.data.points import PointsSource
from beadseg.datasets import build_datamodule
from beadseg.files import running
from beadseg.metrics.adequacy import adequacy_verdict
from beadseg.models.registry import describe
from beadseg.settings import check_settings
from beadseg.training.callbacks import AtomicCheckpointIO, BestCheckpoint, LastCheckpoint, ValidationHistory
from beadseg.training.tuning import tune_checkpoint

log = logging.getLogger(__name__)


def instantiate_group(group: DictConfig | None) -> list:
    """Build every entry of a config group of named objects (callbacks, loggers); null entries are skipped."""
    return [instantiate(entry) for entry in (group or {}).values() if entry and "_target_" in entry]


def _flat_hparams(cfg: DictConfig) -> dict:
    """The experiment's settings as flat ``group/key`` hyper-parameters (TensorBoard's HParams tab)."""
    plain = cast(dict, OmegaConf.to_container(cfg, resolve=True))
    flat: dict = {}

    def walk(node, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}/{key}" if prefix else str(key))
        else:
            flat[prefix] = node if isinstance(node, (int, float, str, bool)) else str(node)

    walk({k: plain[k] for k in ("data", "model", "loss", "optimizer", "scheduler", "seed") if k in plain}, "")
    return flat


def load_weights(module: pl.LightningModule, checkpoint_path: str) -> float | None:
    """Start from another run's weights (fine-tuning); unlike ``ckpt_path`` the epoch, optimiser and schedule start
    anew.
    Returns the bead diameter that model learned (``None`` where it stores none).

    A mask model can start a ``target=centres`` one: where the new output layer has more channels than the
    checkpoint's, the checkpoint fills the first (the mask) and the others keep their fresh start."""
    checkpoint, settings = module_settings(checkpoint_path)
    state = checkpoint["state_dict"]
    own = module.state_dict()
    for key, value in state.items():
        if key in own and value.ndim and value.shape[1:] == own[key].shape[1:] and len(value) < len(own[key]):
            state[key] = torch.cat([value.to(own[key].dtype), own[key][len(value):]])
            log.info("init_from: %s has %d of this model's %d output channels; the others start fresh", key,
                     len(value), len(own[key]))
    try:
        module.load_state_dict(state)
    except RuntimeError as error:
        raise ValueError(f"init_from={checkpoint_path}: its weights do not fit this model ({error})") from error
    log.info("initialised weights from %s", checkpoint_path)
    return learned_diameter(settings)


def read_at_bead_size(source, sizing: BeadSizing) -> int:
    """Have every folder a data source reads (its own, or the one composites are cut from; of masks or points)
    read its frames at the bead size ``sizing`` binds them to; how many folders were told."""
    if isinstance(source, (FolderSource, PointsSource)):
        source.sizing = sizing
        return 1
    nested = [*getattr(source, "sources", ()), *getattr(source, "train_only", ())]
    return sum(read_at_bead_size(inner, sizing) for inner in nested) + (
        read_at_bead_size(source.folder, sizing) if isinstance(getattr(source, "folder", None),
                                                               (FolderSource, PointsSource)) else 0)


class StopOnSignal(pl.Callback):
    """Ctrl-C (SIGINT) and ``kill`` (SIGTERM) stop training as an interruption, recorded with the command that
    resumes the run: the signal raises ``KeyboardInterrupt`` at once, and should Python swallow it (one that lands
    in a finaliser is lost, and the run went on to finish), the next batch raises it again."""

    def __init__(self) -> None:
        self.received: int | None = None

    @contextmanager
    def installed(self):
        def interrupt(signum, frame):
            self.received = signum
            raise KeyboardInterrupt

        main = threading.current_thread() is threading.main_thread()
        previous = {stop: signal.signal(stop, interrupt) for stop in (signal.SIGINT, signal.SIGTERM)} if main else {}
        try:
            yield
        finally:
            for stop, handler in previous.items():
                signal.signal(stop, handler)

    def _raise_if_stopped(self) -> None:
        if self.received is not None:
            raise KeyboardInterrupt

    def on_train_batch_end(self, *args) -> None:
        self._raise_if_stopped()

    def on_validation_batch_end(self, *args) -> None:
        self._raise_if_stopped()


def resume_command(last: Path) -> str:
    """The command that continues this run from its last checkpoint (same overrides, a new run directory)."""
    from hydra.core.hydra_config import HydraConfig

    overrides = [o for o in HydraConfig.get().overrides.task if not o.startswith(("ckpt_path=", "hydra.run.dir="))] \
        if HydraConfig.initialized() else []
    return " ".join(["beadseg-train", *overrides, f"ckpt_path={last}"])


def best_so_far(trainer: pl.Trainer, history: ValidationHistory) -> dict:
    """The best checkpoint's score, epoch (counted from 1) and path, and the validation metrics at that epoch."""
    checkpoint = cast("pl.callbacks.ModelCheckpoint | None", trainer.checkpoint_callback)
    if isinstance(checkpoint, BestCheckpoint):  # the best on disk, should a stop land while a new one is written
        path, best_score = checkpoint.on_disk()
    else:
        path = checkpoint.best_model_path if checkpoint else ""
        best_score = float(checkpoint.best_model_score) if checkpoint and checkpoint.best_model_score is not None \
            else None
    best_path = str(Path(path).resolve()) if path else ""
    best_epoch = read_checkpoint(best_path)["epoch"] + 1 if best_path else None  # counted from 1, as printed
    at_best = history.epochs.get(best_epoch, {}) if best_epoch is not None else {}
    return {"best_score": float(best_score) if best_score is not None else None,
            "best_val_jaccard": at_best.get("val/jaccard"),
            "val_object_f1": at_best.get("val/object_f1"),  # at the best epoch, whatever the monitor
            "val_count_error": at_best.get("val/count_error"),
            "best_epoch": best_epoch, "checkpoint": best_path}


def stop_reason(trainer: pl.Trainer) -> str:
    """Why fitting ended: early stopping (its monitor, patience and where it stopped) or the epochs running out."""
    callbacks = cast(list, trainer.callbacks)  # type: ignore[attr-defined]  # Lightning sets it at run time
    stopper = next((c for c in callbacks if isinstance(c, pl.callbacks.EarlyStopping)), None)
    if stopper is not None and stopper.stopped_epoch > 0:
        return (f"early stopping at epoch {stopper.stopped_epoch + 1}: {stopper.monitor} had not improved by more "
                f"than {abs(stopper.min_delta):g} for {stopper.patience} epochs")
    return f"max_epochs: all {trainer.max_epochs} epochs ran"


def record_interruption(output_dir: Path, trainer: pl.Trainer, last: Path | None, stop: BaseException,
                        history: ValidationHistory) -> None:
    """``result.json`` with status ``interrupted``, the best checkpoint so far, the last checkpoint and the command
    that resumes the run."""
    if not trainer.is_global_zero:
        return
    saved = last if last and last.is_file() else None
    result = {"status": "interrupted", **best_so_far(trainer, history), "epochs_run": trainer.current_epoch,
              "last_checkpoint": str(saved or ""), "stopped_by": type(stop).__name__,
              "resume": resume_command(saved) if saved else "no checkpoint was written yet: start again"}
    (output_dir / "result.json").write_text(json.dumps(result, indent=2))
    print(f"beadseg-train: interrupted after {trainer.current_epoch} epoch(s); resume with: {result['resume']}",
          file=sys.stderr)


def train(cfg: DictConfig) -> dict:
    """Fit the configured model on the configured data (``beadseg-train``).

    Parameters
    ----------
    cfg : DictConfig
        A composed ``train`` config (``conf/train.yaml`` with the user's overrides and experiment).

    Returns
    -------
    dict
        What ``result.json`` in the run directory holds: the best checkpoint, its score and epoch, the validation
        metrics there, why training stopped, the test scores (with a test split) and the tuned thresholds.

    Examples
    --------
    >>> from hydra import compose, initialize_config_dir
    >>> from beadseg.config import CONFIG_DIR
    >>> with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):  # doctest: +SKIP
    ...     cfg = compose("train", overrides=["trainer.max_epochs=2", "paths.output_dir=run/"])
    >>> train(cfg)["checkpoint"]  # doctest: +SKIP
    'run/checkpoints/epoch002-jaccard0.6120.ckpt'
    """
    check_settings(cfg, "train")
    output_dir = Path(cfg.paths.output_dir)
    check_network(cfg)
    refuse_overwrite(cfg, output_dir)
    resume_from = resume_checkpoint(cfg, output_dir)
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = build_datamodule(cfg.data)
    module = build_module(cfg, datamodule)
    trainer, history, loggers = build_trainer(cfg)
    fit(trainer, module, datamodule, resume_from, output_dir, history)
    result = completed(cfg, trainer, history, loggers, output_dir)
    result.update(after_fit(cfg, trainer, module, datamodule, output_dir, result))
    log_hyperparameters(cfg, loggers, result)
    if trainer.is_global_zero:
        (output_dir / "result.json").write_text(json.dumps(result, indent=2))
    return result


CLAIM = ".beadseg-train.pid"  # in a run directory: the process training there


def claim_run_directory(output_dir: Path) -> None:
    """Claim ``output_dir`` for this process, atomically: of two runs started into it together exactly one goes
    on; a claim whose process has ended (a finished, failed or killed run) is taken over. DDP's other ranks,
    started by the first, share its claim."""
    if os.environ.get("LOCAL_RANK", "0") != "0" or os.environ.get("NODE_RANK", "0") != "0":
        return
    output_dir.mkdir(parents=True, exist_ok=True)
    claim = output_dir / CLAIM
    for _ in range(2):
        try:
            handle = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = int(claim.read_text().strip() or 0)
            except (OSError, ValueError):
                holder = 0
            if holder and holder != os.getpid() and running(holder):
                raise FileExistsError(f"{output_dir} is another beadseg-train's run directory (process {holder} is "
                                      "training there); give this run its own hydra.run.dir") from None
            claim.unlink(missing_ok=True)  # that run has ended: its directory may be continued
            continue
        with os.fdopen(handle, "w") as file:
            file.write(str(os.getpid()))
        return
    raise FileExistsError(f"{output_dir} was just claimed by another beadseg-train; give this run its own "
                          "hydra.run.dir")


def refuse_overwrite(cfg: DictConfig, output_dir: Path) -> None:
    """A run directory that holds checkpoints is another run's: refused, unless this run continues it; and no two
    runs train in one directory at once (:func:`claim_run_directory`)."""
    claim_run_directory(output_dir)
    checkpoint_dir = output_dir / "checkpoints"
    continuing = bool(cfg.get("ckpt_path")) and Path(cfg.ckpt_path).absolute().parent == checkpoint_dir.absolute()
    if checkpoint_dir.is_dir() and any(checkpoint_dir.iterdir()) and not continuing:
        raise FileExistsError(
            f"{checkpoint_dir} already holds checkpoints; beadseg never overwrites a run. Give a new "
            "hydra.run.dir (to resume this run: beadseg-train ckpt_path=<run>/checkpoints/last.ckpt)"
        )


def check_network(cfg: DictConfig) -> None:
    """The model config describes a network the registry builds (its fields checked there, by key)."""
    if "_target_" not in cfg.model:
        raise ValueError(f"model={cfg.model.get('name')} has no network to train; evaluate it with "
                         f"beadseg-eval model={cfg.model.get('name')} data.root=DIR")
    describe(OmegaConf.to_container(cfg.model, resolve=True), "model")


def resume_checkpoint(cfg: DictConfig, output_dir: Path) -> Path | None:
    """``ckpt_path``'s trusted copy to resume from (refused by name unless plain weights and a network beadseg
    builds; callback state naming files outside the run dropped, each said), or None."""
    if not cfg.get("ckpt_path"):
        return None
    resume_from, dropped = trusted_resume(cfg.ckpt_path, output_dir)
    for line in dropped:
        log.warning("ckpt_path: dropped callback state naming a file outside this run (%s)", line)
    return resume_from


def build_module(cfg: DictConfig, datamodule) -> pl.LightningModule:
    """The LightningModule, started from ``init_from``'s weights where given (its bead size kept, and the
    folder's frames read at it)."""
    module = instantiate(cfg.module)
    if cfg.get("init_from"):
        learned = load_weights(module, cfg.init_from)
        if learned and "bead_diameter" in module.hparams:  # kept unless its validation beads measure their own
            module.hparams["bead_diameter"] = learned
        sizing = BeadSizing.from_config(cfg.get("image"), learned)
        if learned and sizing.diameter != "model" and read_at_bead_size(getattr(datamodule, "source", None), sizing):
            log.info("init_from: its model learned beads of %.1f px; folder frames whose beads differ by more than "
                     "x%g (image.bead_diameter=%s) are resized to them", learned, sizing.tolerance,
                     sizing.diameter_um and f"{sizing.diameter_um} µm" or sizing.diameter)
    log.info("network: %s, %.2f M parameters", type(module.net).__name__,
             sum(p.numel() for p in module.net.parameters()) / 1e6)
    return module


def build_trainer(cfg: DictConfig) -> tuple[pl.Trainer, ValidationHistory, list]:
    """Lightning's Trainer with the configured callbacks and loggers, beadseg's history and stop handler, and
    checkpoints written atomically."""
    history = ValidationHistory()
    callbacks = [*instantiate_group(cfg.get("callbacks")), history, StopOnSignal()]
    loggers = instantiate_group(cfg.get("logger"))
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False,
                                      plugins=[AtomicCheckpointIO()])  # no half-written checkpoint
    return trainer, history, loggers


def last_checkpoint(trainer: pl.Trainer) -> Path | None:
    """Where the run's ``last.ckpt`` is written (None without that callback)."""
    return next((c.path for c in cast(list, trainer.callbacks)  # type: ignore[attr-defined]
                 if isinstance(c, LastCheckpoint)), None)


def fit(trainer: pl.Trainer, module, datamodule, resume_from: Path | None, output_dir: Path,
        history: ValidationHistory) -> None:
    """Fit; a stop (Ctrl-C, ``kill``) records where the run stopped and how to resume it before it ends."""
    callbacks = cast(list, trainer.callbacks)  # type: ignore[attr-defined]  # Lightning sets it at run time
    stop = next(c for c in callbacks if isinstance(c, StopOnSignal))
    try:
        with stop.installed():
            trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from)
    except (KeyboardInterrupt, SystemExit) as interruption:
        record_interruption(output_dir, trainer, last_checkpoint(trainer), interruption, history)
        raise
    finally:
        if resume_from is not None:
            resume_from.unlink(missing_ok=True)


def completed(cfg: DictConfig, trainer: pl.Trainer, history: ValidationHistory, loggers: list,
              output_dir: Path) -> dict:
    """``result.json`` of a finished fit: the best checkpoint and its scores, why it stopped, where things are."""
    last = last_checkpoint(trainer)
    return {
        "status": "completed",
        "monitor": cfg.monitor,
        **best_so_far(trainer, history),
        "epochs_run": trainer.current_epoch,
        "stopped": stop_reason(trainer),
        "last_checkpoint": str(last) if last and last.is_file() else "",
        "tensorboard": str(output_dir / "tensorboard") if any(
            isinstance(lg, pl.loggers.TensorBoardLogger) for lg in loggers) else "",
    }


def after_fit(cfg: DictConfig, trainer: pl.Trainer, module, datamodule, output_dir: Path, result: dict) -> dict:
    """What follows a fit, each where asked: the test split's scores, the thresholds tuned on the validation
    images (``result.json``'s checkpoint then the tuned one), and the adequacy verdict."""
    best_path = result["checkpoint"]
    added: dict[str, Any] = {}
    if cfg.get("test") and len(datamodule.datasets.get("test", [])):
        scores = trainer.test(module, datamodule=datamodule, ckpt_path=best_path or None)[0]
        added["test"] = {key: float(value) for key, value in scores.items()}
    if cfg.get("tune_thresholds") and best_path and trainer.is_global_zero and hasattr(module, "post"):
        added["tuned"] = tune_checkpoint(module, datamodule.datasets["val"], best_path, output_dir, cfg.tune_thresholds)
        added["checkpoint"], added["untuned_checkpoint"] = added["tuned"]["checkpoint"], best_path
    if cfg.get("adequacy_bar") is not None and result["best_score"] is not None:
        added["adequacy"] = adequacy_verdict(result["best_score"], cfg.adequacy_bar)
    return added


def log_hyperparameters(cfg: DictConfig, loggers: list, result: dict) -> None:
    """TensorBoard's HParams tab: the run's settings with its final metrics (other loggers: the settings)."""
    final = {f"hp/best_{cfg.monitor.replace('/', '_')}": result["best_score"] or 0.0,
             "hp/epochs_run": float(result["epochs_run"])}
    for logger in loggers:
        if isinstance(logger, pl.loggers.TensorBoardLogger):
            logger.log_hyperparams(_flat_hparams(cfg), final)
        else:
            logger.log_hyperparams(_flat_hparams(cfg))
