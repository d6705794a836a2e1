"""The prediction task in Lightning's predict loop: whole images of any size in; masks, instances, overlays and
count tables out. The same command runs on the CPU, one GPU, ``trainer=ddp`` over several, or many nodes
(every image is done once: Lightning's unrepeated sampler), reads inputs ahead in loader workers, writes every
file atomically, and with ``resume=true`` continues an interrupted run where it stopped.

Per image, each process appends one JSON line (counts, objects) to its own part file under ``parts/`` once
the image's files are in place; the tables are merged from the parts at the end, in input order.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import BasePredictionWriter, TQDMProgressBar
from torch.utils.data import DataLoader, Dataset

from beadseg import plots
from beadseg.data.io import BeadDataError, Normalization, image_name, list_images, open_image
from beadseg.data.microscope import MicroscopeError, pixel_size_um
from beadseg.data.reader import usable_cpus
from beadseg.data.split import group_names
from beadseg.inference import outputs
from beadseg.inference.finish import (
    COUNT_COLUMNS,
    DEBRIS_COLUMNS,
    OBJECT_COLUMNS,
    WorkerPool,
    finish_frame,
    finishing_workers,
    network_on_cpu,
    overlay_every,
    prediction_spare_cores,
)
from beadseg.inference.postprocess import PostProcess
from beadseg.inference.predictor import predictor_from_config
from beadseg.inference.rois import ROI_FORMATS
from beadseg.settings import check_settings
from beadseg.tables import write_csv

STATE_FILE = ".beadseg-predict.json"
KEPT_OUTPUTS = {".hydra", "predict.log"}  # what a fresh run directory already holds


def read_ahead_workers(num_workers: int | str) -> int:
    """``auto``: loader processes that read the next images while the model runs (one core stays free)."""
    if num_workers != "auto":
        return int(num_workers)
    return max(0, min(4, usable_cpus() - 1))


class InputImages(Dataset):
    """Images read by loader workers ahead of the model, with the intensities their ``normalization`` maps to 0
    and 1 (``bounds``; the network's process only applies them). An image travels as a tensor, through shared
    memory (a pipe cost the receiving process twice the time, measured); a huge one (over ``outputs.LARGE``
    pixels) is opened again where it is used, memory-mapped; unreadable ones come back as an error to record."""

    def __init__(self, files: list[Path], positions: list[int], normalization: Normalization | None = None) -> None:
        self.files, self.positions = files, positions  # positions: each file's place in the whole input
        self.normalization = normalization

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict:
        path = self.files[index]
        item = {"name": image_name(path), "path": str(path), "index": self.positions[index], "image": None,
                "error": None, "pixel_size_um": None, "bounds": None}
        try:
            image = open_image(path)
            if image.size <= outputs.LARGE:  # read here; as a tensor it reaches the network's process in shared memory
                native = image.dtype.newbyteorder("=")
                image = np.array(image, native, order="C", copy=True if isinstance(image, np.memmap) else None)
                item["image"] = torch.from_numpy(image)
                item["bounds"] = self.normalization.bounds(image) if self.normalization else None
            item["pixel_size_um"] = pixel_size_um(path)
        except (BeadDataError, MicroscopeError, OSError) as error:
            item["error"] = str(error)
        return item


def _items(batch: list[dict]) -> list[dict]:
    return batch


def part_lines(out: Path) -> dict[str, dict]:
    """Every finished record under ``out/parts`` by image name (a line cut short by a kill is ignored)."""
    records: dict[str, dict] = {}
    for part in sorted((out / "parts").glob("*.jsonl")):
        for line in part.read_text().splitlines(keepends=True):
            if not line.endswith("\n"):
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            records[record["image"]] = record
    return records


def finished(out: Path) -> set[str]:
    return {name for name, record in part_lines(out).items() if "error" not in record}


class PredictionData(pl.LightningDataModule):
    """The inputs still to do. ``setup`` runs on every rank once processes are connected: rank 0 checks and
    claims the output folder (new, or a run to resume with the same settings), the others wait for it."""

    def __init__(self, files: list[Path], out: Path, settings: dict, resume: bool, num_workers: int,
                 frames_per_step: int, normalization: Normalization | None = None) -> None:
        super().__init__()
        self.files, self.out, self.settings, self.resume, self.num_workers = files, out, settings, resume, num_workers
        self.frames_per_step, self.normalization = frames_per_step, normalization
        self.todo: list[int] = []

    def setup(self, stage: str | None = None) -> None:
        if self.trainer is None or self.trainer.is_global_zero:
            claim_output(self.out, self.settings, self.resume)
        if self.trainer is not None:
            self.trainer.strategy.barrier("beadseg-predict output")
        done = finished(self.out) if self.resume else set()
        self.todo = [index for index, path in enumerate(self.files) if image_name(path) not in done]

    def predict_dataloader(self) -> DataLoader:
        images = InputImages([self.files[i] for i in self.todo], self.todo, self.normalization)
        return DataLoader(images, batch_size=self.frames_per_step, collate_fn=_items, num_workers=self.num_workers,
                          prefetch_factor=2 if self.num_workers else None)


def claim_output(out: Path, settings: dict, resume: bool) -> None:
    """A new output folder gets the run's settings; ``resume=true`` needs a folder of a run with the same ones."""
    state = out / STATE_FILE
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"output={out} is a file, not a folder: give a folder for the results")
    present = {p.name for p in out.iterdir()} - KEPT_OUTPUTS if out.is_dir() else set()
    if resume:
        if not state.is_file():
            raise FileExistsError(f"output={out} holds no beadseg-predict run to resume ({STATE_FILE} is missing)")
        before = json.loads(state.read_text())
        changed = sorted(key for key in set(before) | set(settings) if before.get(key) != settings.get(key))
        if {"input", "input_files"} & set(changed):
            raise ValueError(f"resume=true: output={out} holds the run of input={before.get('input')} "
                             f"({before.get('input_files', {}).get('count', '?')} files), not of input="
                             f"{settings['input']} ({settings['input_files']['count']} files): resume with the same "
                             "input, or predict into a new output folder")
        if changed:
            raise ValueError(f"resume=true: output={out} was predicted with other settings ({', '.join(changed)}); "
                             "resume with the same settings, or predict into a new output folder")
        shutil.rmtree(out / ".scratch", ignore_errors=True)  # memory maps of images a kill interrupted
        return
    if present:
        raise FileExistsError(f"output={out} already holds results; beadseg never overwrites them: choose another "
                              "(or continue an interrupted run there with resume=true)")
    out.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{STATE_FILE}.", suffix=".partial", dir=out)  # one per claim
    partial = Path(name)
    with os.fdopen(handle, "w") as state_file:
        state_file.write(json.dumps(settings, indent=2))
    try:
        os.link(partial, state)  # atomic: of two runs claiming the folder at once, exactly one succeeds
    except FileExistsError:
        raise FileExistsError(f"output={out} was just claimed by another beadseg-predict run; choose another "
                              "output folder") from None
    finally:
        partial.unlink()
    for sub in ("masks", "instances", "overlays", "parts"):
        (out / sub).mkdir(exist_ok=True)


class PredictionTask(pl.LightningModule):
    """Frames per step through the network: those that fit go whole, several per pass (``predict_frames``);
    frames over ``outputs.LARGE`` pixels keep their maps in memory maps under ``output/.scratch`` and get their
    beads here, chunk by chunk. The writer's pool does the rest beside the next step."""

    def __init__(self, predictor, post: PostProcess, scratch: Path) -> None:
        super().__init__()
        self.predictor, self.post, self.scratch = predictor, post, scratch
        self.net = predictor.net  # a registered sub-module: the trainer places it on its device

    def on_predict_start(self) -> None:
        self.predictor.keep_dropout_on()

    def _map(self, folder: Path, name: str, dtype, shape) -> np.ndarray:
        return np.lib.format.open_memmap(folder / f"{name}.npy", "w+", dtype, shape)

    def _large(self, item: dict, image: np.ndarray) -> dict:
        self.scratch.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(dir=self.scratch))
        channels = getattr(self.predictor, "channels", 1)
        maps = {"probability_out": self._map(folder, "probability", np.float32,
                                             (channels, *image.shape) if channels > 1 else image.shape)}
        if getattr(self.predictor, "tta", False) or getattr(self.predictor, "mc_samples", 0):
            maps["uncertainty_out"] = self._map(folder, "uncertainty", np.float32, image.shape)
        probability, uncertainty = self.predictor.predict(image, **maps)
        labels_out = self._map(folder, "labels", np.uint32, image.shape)
        labels, objects, debris = self.post.instances(probability, image, self.predictor.threshold, labels_out=labels_out)
        return {**item, "image": image, "probability": probability, "uncertainty": uncertainty, "labels": labels,
                "objects": objects, "debris": debris, "scratch": folder}

    def predict_step(self, items: list[dict], batch_idx: int) -> list[dict]:
        results, frames = [], []
        for item in items:
            if item["error"]:
                results.append(item)
                continue
            try:
                image = item["image"].numpy() if item["image"] is not None else open_image(item["path"])
            except (BeadDataError, OSError) as error:  # gone or damaged since the loader looked
                results.append({**item, "error": str(error)})
                continue
            if image.size > outputs.LARGE:
                results.append(self._large(item, image))
            else:
                results.append({**item, "image": image})
                frames.append(results[-1])
        images = [r["image"] for r in frames]
        if hasattr(self.predictor, "predict_frames"):
            maps = self.predictor.predict_frames(images, self.post, [r["bounds"] for r in frames])
        else:  # the classical detector, frame by frame
            maps = [(*self.predictor.predict(image), None) for image in images]
        for result, (probability, uncertainty, found) in zip(frames, maps):
            result.update(probability=probability, uncertainty=uncertainty, found=found)
        return results


class PredictionWriter(BasePredictionWriter):
    """Hands each frame to the pool that finds its beads and writes its files (atomically); writes its record line
    once they are in place; merges the tables when all ranks are done. Every rank has its own pool."""

    def __init__(self, out: Path, options: dict, post: PostProcess, threshold: float, workers: int) -> None:
        super().__init__(write_interval="batch")
        self.out, self.options, self.post, self.threshold, self.workers = out, options, post, threshold, workers
        self.part, self.pool = None, None

    def _record(self, record: dict) -> None:
        if self.part is None:
            part = self.out / "parts" / f"{socket.gethostname()}-{os.getpid()}.jsonl"
            self.part = open(part, "a")  # noqa: SIM115 - the journal stays open for the run; closed in teardown
        self.part.write(json.dumps(record) + "\n")
        self.part.flush()
        os.fsync(self.part.fileno())

    def on_predict_start(self, trainer, pl_module) -> None:
        self.pool = WorkerPool(self.workers, self._record)

    def write_on_batch_end(self, trainer, pl_module, results: list[dict], batch_indices, batch, batch_idx,
                           dataloader_idx=0):
        for result in results:
            if result["error"]:
                print(f"beadseg-predict: skipped {result['path']}: {result['error']}")
                self.pool.put({"image": result["name"], "path": result["path"], "error": result["error"]})
            elif result.get("scratch"):  # a huge frame's maps live in memory maps: finished here
                self.pool.drain()
                self._record(finish_frame(result, self.out, self.options, None, self.threshold))
            else:
                self.pool.submit(finish_frame, result, self.out, self.options, self.post, self.threshold)

    def on_predict_end(self, trainer, pl_module) -> None:
        self.pool.drain()
        self.teardown(trainer, pl_module, "predict")

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self.teardown(trainer, pl_module, "predict")  # what is in flight is dropped: resume=true redoes it

    def teardown(self, trainer, pl_module, stage: str) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None
        if self.part is not None:
            self.part.close()
            self.part = None


class FrameProgressBar(TQDMProgressBar):
    """Prediction's progress in images, not steps (a step carries up to ``frames_per_step`` frames): 17/17, not
    9/9."""

    def on_predict_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        changed = self.has_dataloader_changed(dataloader_idx)
        super().on_predict_batch_start(trainer, pl_module, batch, batch_idx, dataloader_idx)
        if changed or batch_idx == 0:
            loaders = trainer.predict_dataloaders
            loader = loaders[dataloader_idx] if isinstance(loaders, (list, tuple)) else loaders
            self.frames_done = 0
            self.predict_progress_bar.total = len(loader.sampler)
            self.predict_progress_bar.set_description("Predicting images")

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self.frames_done += len(batch)
        self.predict_progress_bar.n = self.frames_done
        self.predict_progress_bar.refresh()


def merge_tables(out: Path, files: list[Path], group_regex: str | None, save_debris: bool = False,
                 dilution=None) -> dict:
    """``counts.csv``, ``objects.csv`` (and ``errors.csv``; ``debris.csv`` with ``save_debris``) from the part
    files, in input order; with ``group_regex`` the counts per group, and the ``dilution`` series' report
    (:class:`~beadseg.analysis.dilution.DilutionSeries`) where the groups are numeric dilutions."""
    records = part_lines(out)
    found = [records[name] for name in map(image_name, files) if name in records]
    done = [record for record in found if "error" not in record]
    failed = [{"image": record["path"], "error": record["error"]} for record in found if "error" in record]
    counts = [record["counts"] for record in done]
    objects = [{"image": record["image"], **row} for record in done for row in record["objects"]]
    write_csv(objects, out / "objects.csv", OBJECT_COLUMNS)
    write_csv(counts, out / "counts.csv", COUNT_COLUMNS)
    if save_debris:
        debris = [{"image": record["image"], **row} for record in done for row in record.get("debris", ())]
        write_csv(debris, out / "debris.csv", DEBRIS_COLUMNS)
    if failed:
        write_csv(failed, out / "errors.csv", ["image", "error"])
    elif (out / "errors.csv").exists():
        (out / "errors.csv").unlink()  # a resumed run read what failed before
    result = {"output": out, "done": len(counts), "failed": failed, "beads": len(objects),
              "missing": [str(p) for p in files if image_name(p) not in records]}
    if group_regex and counts:
        result["groups"] = group_counts(counts, group_regex, out)
        if dilution is not None:
            try:
                result["dilution_report"] = dilution.write(counts, group_regex, out)["text"]
            except ValueError as error:  # names that are no dilutions: the per-group counts still stand
                result["dilution_note"] = str(error)
    return result


def natural_order(name: str) -> tuple:
    """Sorts names with numbers by their numbers: 320x, 2560x, 10240x (not 10240x, 2560x, 320x as text).

    Examples
    --------
    >>> sorted(["10240", "2560", "320", "a"], key=natural_order)
    ['320', '2560', '10240', 'a']
    """
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name) if part)


def group_counts(counts: list[dict], pattern: str, out: Path) -> int:
    """Counts per group (the regex's first group, e.g. the dilution, or the capture whose tiles the frames are:
    ``'^(.*)_grid_'``; the name itself where it does not match) as a table and a plot. ``total_count`` sums the
    edge rule's counts (the tiles of a capture add up to the capture's count), ``total_count_all`` every bead."""
    groups: dict[str, list[dict]] = {}
    for row, key in zip(counts, group_names([row["image"] for row in counts], pattern, "group_regex")):
        groups.setdefault(key, []).append(row)
    rows = []
    for key, members in sorted(groups.items(), key=lambda item: natural_order(item[0])):
        values = [int(row["count"]) for row in members]
        rows.append({"group": key, "images": len(values), "total_count": int(np.sum(values)),
                     "total_count_all": int(sum(int(row["count_all"]) for row in members)),
                     "mean_count": round(float(np.mean(values)), 2),  # the sample sd, as the dilution report's
                     "std_count": round(float(np.std(values, ddof=1)), 2) if len(values) > 1 else ""})
    plots.group_counts_figure(rows, out / "group_counts.png")
    write_csv(rows, out / "group_counts.csv", list(rows[0]))
    return len(rows)


def file_set(files: list[Path]) -> dict:
    """The input's fingerprint: how many files, and a hash of their paths, sizes and times (a link that leads
    nowhere, broken or looping, by the link itself: reading it later names it in ``errors.csv``)."""
    digest = hashlib.sha256()
    for path in files:
        try:
            stat, where = path.stat(), path.resolve()
        except (OSError, RuntimeError):
            stat, where = path.lstat(), path.absolute()
        digest.update(f"{where}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return {"count": len(files), "sha256": digest.hexdigest()}


def run_settings(cfg: DictConfig, ckpt: str | None, files: list[Path]) -> dict:
    """What must match for a resumed run to continue this one: the input and its files, the model, the settings."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    keys = ("method", "detector", "inference", "postprocess", "save_probability", "save_uncertainty", "overlay_max_side",
            "flag_uncertainty", "label_format", "image", "save_debris", "overlays", "tiff_compression", "rois")
    return {"ckpt": ckpt, "input": str(Path(cfg.input).resolve()), "input_files": file_set(files),
            **{key: plain.get(key) for key in keys}}


def roi_kinds(value) -> list[str]:
    """``rois=imagej``, ``rois=geojson``, ``rois=[imagej,geojson]`` (``null``/``false``: none), checked by name."""
    kinds = [] if value in (None, False) else [value] if isinstance(value, str) else list(value)
    unknown = [kind for kind in kinds if kind not in ROI_FORMATS]
    if unknown:
        raise ValueError(f"rois={value}: {', '.join(map(str, unknown))} is no ROI format; choose from "
                         f"{', '.join(ROI_FORMATS)} (a list for several: rois=[imagej,geojson])")
    return kinds


def output_options(cfg: DictConfig, frames: int) -> dict:
    """What a predict config says each frame of an input of ``frames`` frames gets written
    (:func:`~beadseg.inference.finish.finish_frame`)."""
    options = {key: cfg[key] for key in ("overlay_max_side", "save_probability", "save_uncertainty", "flag_uncertainty",
                                         "label_format", "save_debris", "overlay_compression", "tiff_compression")}
    return {**options, "rois": roi_kinds(cfg.rois), "overlays": overlay_every(cfg.overlays, frames),
            "edge_rule": cfg.postprocess.edge_rule}


def predict(cfg: DictConfig) -> dict:
    """Run the whole prediction; returns counts of images done and failed, and the output folder."""
    check_settings(cfg, "predict")
    out = Path(cfg.output)
    files = list_images(cfg.input)
    group_names([image_name(path) for path in files], cfg.get("group_regex"), "group_regex")  # before any output
    predictor = predictor_from_config(cfg)
    settings = run_settings(cfg, predictor.checkpoint, files)
    post = instantiate(cfg.postprocess).for_model(predictor)
    read_ahead = read_ahead_workers(cfg.num_workers)
    frames_per_step = int(cfg.frames_per_step if cfg.frames_per_step != "auto" else 2 if network_on_cpu(predictor) else 8)
    data = PredictionData(files, out, settings, bool(cfg.resume), read_ahead, frames_per_step,
                          getattr(predictor, "normalization", None))
    if cfg.label_format not in outputs.LABEL_FORMATS:
        raise ValueError(f"label_format={cfg.label_format}: choose one of {', '.join(outputs.LABEL_FORMATS)}")
    options = output_options(cfg, len(files))
    workers = finishing_workers(cfg.post_workers, prediction_spare_cores(read_ahead, network_on_cpu(predictor)), len(files))
    writer = PredictionWriter(out, options, post, predictor.threshold, workers)
    progress = [FrameProgressBar()] if cfg.trainer.get("enable_progress_bar", True) else []
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=[writer, *progress], logger=False,
                                      enable_checkpointing=False)
    if cfg.resume and not (set(image_name(p) for p in files) - finished(out)):
        data.setup()  # nothing left to predict: only check the folder, then merge
    else:
        trainer.predict(PredictionTask(predictor, post, out / ".scratch"), datamodule=data, return_predictions=False)
        trainer.strategy.barrier("beadseg-predict tables")
    if not trainer.is_global_zero:
        return {"output": out, "done": 0, "failed": [], "beads": 0, "missing": [], "rank": trainer.global_rank}
    shutil.rmtree(out / ".scratch", ignore_errors=True)
    dilution = instantiate(cfg.dilution) if cfg.get("dilution") else None
    return merge_tables(out, files, cfg.get("group_regex"), cfg.save_debris, dilution)
