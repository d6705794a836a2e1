"""``beadseg-predict``: whole images of any size in; masks, instances, overlays, ROIs and count tables out.

The same command runs on the CPU, one GPU, ``trainer=ddp`` over several, or many nodes; it reads inputs ahead in
loader workers, finishes frames in a pool beside the network, writes every file atomically, and with
``resume=true`` continues an interrupted run where it stopped. Each piece has its module: the Lightning task
(:mod:`~beadseg.inference.task`), a frame's finishing (:mod:`~beadseg.inference.finish`) and writers
(:mod:`~beadseg.inference.writers`), the run journal (:mod:`~beadseg.inference.journal`) and the tables after the
run (:mod:`~beadseg.inference.summary`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig

from beadseg.beads.size import BeadSizing
from beadseg.data.io import image_name, list_images
from beadseg.data.readers import PlaneChoice
from beadseg.data.split import group_names
from beadseg.formats.regions import frame_regions, write_region_counts
from beadseg.inference.journal import completed_images, run_settings
from beadseg.inference.predictor import frames_per_step, predictor_from_config
from beadseg.inference.sizes import capture_estimates, check_sizing
from beadseg.inference.summary import merge_tables
from beadseg.inference.task import (
    FrameProgressBar,
    PredictionData,
    PredictionTask,
    PredictionWriter,
    read_ahead_workers,
)
from beadseg.inference.writers import OutputOptions
from beadseg.settings import check_settings
from beadseg.workers.pool import finishing_workers, network_on_cpu, prediction_spare_cores


def predict(cfg: DictConfig) -> dict:
    """Run the whole prediction (``beadseg-predict``).

    Parameters
    ----------
    cfg : DictConfig
        A composed ``predict`` config (``conf/predict.yaml`` with the user's overrides).

    Returns
    -------
    dict
        ``output`` (the folder), ``done`` and ``beads`` (frames and beads written), ``failed`` (frames named in
        ``errors.csv``), ``missing``; with ``group_regex`` also ``groups`` and the dilution report.

    Examples
    --------
    >>> from hydra import compose, initialize_config_dir
    >>> from beadseg.config import CONFIG_DIR
    >>> with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):  # doctest: +SKIP
    ...     cfg = compose("predict", overrides=["input=frames/", "output=counted/"])
    >>> predict(cfg)["beads"]  # doctest: +SKIP
    2478
    """
    check_settings(cfg, "predict")
    out = Path(cfg.output)
    files = list_images(cfg.input)
    group_names([image_name(path) for path in files], cfg.get("group_regex"), "group_regex")  # before any output
    plane = PlaneChoice.from_config(cfg.get("image"))
    regions = frame_regions(cfg.regions, files, plane) if cfg.get("regions") else None
    options = OutputOptions.from_config(cfg, len(files))
    predictor = predictor_from_config(cfg)
    settings = run_settings(cfg, predictor.checkpoint, files)
    post = instantiate(cfg.postprocess).for_model(predictor)
    sizing = BeadSizing.from_config(cfg.get("image"), predictor.bead_diameter) if predictor.net is not None else None
    if sizing is not None:
        check_sizing(sizing, files, plane)
    read_ahead = read_ahead_workers(cfg.num_workers)
    on_cpu = network_on_cpu(predictor)
    step = frames_per_step(cfg.frames_per_step, predictor)
    estimates = capture_estimates(files, cfg.get("group_regex"), sizing, plane) if sizing is not None else {}
    data = PredictionData(
        files,
        out,
        settings,
        bool(cfg.resume),
        num_workers=read_ahead,
        frames_per_step=step,
        normalization=predictor.normalization,
        sizing=sizing,
        estimates=estimates,
        plane=plane,
        yield_cores=on_cpu,
    )
    workers = finishing_workers(cfg.post_workers, prediction_spare_cores(read_ahead, on_cpu), len(files))
    writer = PredictionWriter(out, options, post, workers, yield_cores=on_cpu)
    progress = [FrameProgressBar()] if cfg.trainer.get("enable_progress_bar", True) else []
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=[writer, *progress], logger=False,
                                      enable_checkpointing=False)
    if cfg.resume and not (set(image_name(p) for p in files) - completed_images(out)):
        data.setup()  # nothing left to predict: only check the folder, then merge
    else:
        trainer.predict(
            PredictionTask(predictor, post, out / ".scratch", plane), datamodule=data, return_predictions=False
        )
        trainer.strategy.barrier("beadseg-predict tables")
    if not trainer.is_global_zero:
        return {"output": out, "done": 0, "failed": [], "beads": 0, "missing": [], "rank": trainer.global_rank}
    shutil.rmtree(out / ".scratch", ignore_errors=True)
    dilution = instantiate(cfg.dilution) if cfg.get("dilution") else None
    result = merge_tables(out, files, options, cfg.get("group_regex"), dilution)
    if regions is not None:
        result["regions"] = write_region_counts(out, regions, dilution.depth_um if dilution else None)
    return result
