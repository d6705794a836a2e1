"""The prediction task in Lightning's predict loop: the loader's dataset of frames, the module that takes each step's
frames through the predictor, the writer callback that hands them to the finishing pool and journals each, and
a progress bar in frames. The same loop runs on the CPU, one GPU, ``trainer=ddp`` over several, or many nodes
(every image is done once: Lightning's unrepeated sampler).
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import BasePredictionWriter, TQDMProgressBar
from torch.utils.data import DataLoader, Dataset

from beadseg.beads.measure import image_noise
from beadseg.beads.postprocess import PostProcess
from beadseg.beads.size import BeadSizeError, BeadSizing, FrameSize, SizeEstimate
from beadseg.data.io import BeadDataError, Normalization, image_name, open_image
from beadseg.data.readers import DEFAULT_PLANE, MicroscopeError, PlaneChoice, pixel_size_um
from beadseg.formats import images
from beadseg.inference.finish import finish_frame
from beadseg.inference.frame import Frame
from beadseg.inference.journal import Journal, claim_output, completed_images
from beadseg.inference.predictor import Predictor
from beadseg.inference.sizes import report_sizes
from beadseg.inference.writers import OutputOptions
from beadseg.system import start_helper, usable_cpus
from beadseg.workers.pool import WorkerPool


def read_ahead_workers(num_workers: int | str) -> int:
    """``auto``: loader processes that read the next images while the model runs (one core stays free)."""
    if num_workers != "auto":
        return int(num_workers)
    return max(0, min(4, usable_cpus() - 1))


def start_reader(worker_id: int, yield_cores: bool = False) -> None:
    """A loader worker's start, as a finishing worker's (:func:`~beadseg.system.start_helper`): it reuses the memory
    it frees for the next frame's reading and size estimate and, beside a network on the CPU (``yield_cores``),
    reads at the lowest priority."""
    start_helper(yield_cores)


class InputImages(Dataset):
    """Images read by loader workers ahead of the model, with the intensities their ``normalization`` maps to 0
    and 1 (``bounds``; the network's process only applies them), their noise (for the finishing step's contrast
    rule, measured here while the network runs) and their bead size (``sizing``: given, estimated
    here, or the capture's from ``estimates``), read as ``plane`` says (a microscope file's plane, the pixel size
    of files that record none). An image travels as a tensor, through shared memory (a pipe cost the
    receiving process twice the time, measured); a huge one (over ``images.LARGE`` pixels) is opened again where it
    is used, memory-mapped; unreadable ones come back as an error to record."""

    def __init__(self, files: list[Path], positions: list[int], normalization: Normalization | None = None, *,
                 sizing: BeadSizing | None = None, estimates: dict[str, SizeEstimate] | None = None,
                 plane: PlaneChoice = DEFAULT_PLANE) -> None:
        self.files, self.positions = files, positions  # positions: each file's place in the whole input
        self.normalization, self.sizing, self.estimates = normalization, sizing, estimates or {}
        self.plane = plane

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> Frame:
        path = self.files[index]
        frame = Frame(image_name(path), str(path), self.positions[index])
        try:
            image = open_image(path, self.plane)
            if image.size <= images.LARGE:  # read here; as a tensor it reaches the network's process in shared memory
                native = image.dtype.newbyteorder("=")
                image = np.array(image, native, order="C", copy=True if isinstance(image, np.memmap) else None)
                frame.image = torch.from_numpy(image)
                frame.bounds = self.normalization.bounds(image) if self.normalization else None
                frame.noise = image_noise(image)
            frame.pixel_size_um = pixel_size_um(path, self.plane)
            if self.sizing is not None:
                frame.size = self.sizing.for_frame(image, frame.pixel_size_um, self.estimates.get(frame.name))
        except (BeadDataError, MicroscopeError, BeadSizeError, OSError) as error:
            frame.error = str(error)
        return frame


class PredictionData(pl.LightningDataModule):
    """The inputs still to do. ``setup`` runs on every rank once processes are connected: rank 0 checks and
    claims the output folder (new, or a run to resume with the same settings), the others wait for it."""

    def __init__(self, files: list[Path], out: Path, settings: dict, resume: bool, *, num_workers: int,
                 frames_per_step: int, normalization: Normalization | None = None, sizing: BeadSizing | None = None,
                 estimates: dict[str, SizeEstimate] | None = None, plane: PlaneChoice = DEFAULT_PLANE,
                 yield_cores: bool = False) -> None:
        super().__init__()
        self.files, self.out, self.settings, self.resume, self.num_workers = files, out, settings, resume, num_workers
        self.frames_per_step, self.normalization = frames_per_step, normalization
        self.sizing, self.estimates, self.plane, self.yield_cores = sizing, estimates, plane, yield_cores
        self.todo: list[int] = []

    def setup(self, stage: str | None = None) -> None:
        if self.trainer is None or self.trainer.is_global_zero:
            claim_output(self.out, self.settings, self.resume)
        if self.trainer is not None:
            self.trainer.strategy.barrier("beadseg-predict output")
        done = completed_images(self.out) if self.resume else set()
        self.todo = [index for index, path in enumerate(self.files) if image_name(path) not in done]

    def transfer_batch_to_device(self, batch: list[Frame], device: torch.device, dataloader_idx: int) -> list[Frame]:
        """Frames stay on the host: the predictor normalises them there and sends them to its device itself (a
        frame's image as a device tensor would not become the numpy array the finishing step needs)."""
        return batch

    def predict_dataloader(self) -> DataLoader:
        images = InputImages([self.files[i] for i in self.todo], self.todo, self.normalization, sizing=self.sizing,
                             estimates=self.estimates, plane=self.plane)
        return DataLoader(images, batch_size=self.frames_per_step, collate_fn=list, num_workers=self.num_workers,
                          prefetch_factor=2 if self.num_workers else None,
                          worker_init_fn=functools.partial(start_reader, yield_cores=self.yield_cores))


class PredictionTask(pl.LightningModule):
    """Frames per step through the network: those that fit go whole, several per pass (``predict_frames``);
    frames over ``images.LARGE`` pixels keep their maps in memory maps under ``output/.scratch``. The writer
    finishes every frame (:func:`~beadseg.inference.finish.finish_frame`), in its pool beside the next step."""

    def __init__(self, predictor: Predictor, post: PostProcess, scratch: Path,
                 plane: PlaneChoice = DEFAULT_PLANE) -> None:
        super().__init__()
        self.predictor, self.post, self.scratch, self.plane = predictor, post, scratch, plane
        self.net = predictor.net  # a registered sub-module: the trainer places it on its device

    def on_predict_start(self) -> None:
        self.predictor.keep_dropout_on()

    def _map(self, folder: Path, name: str, dtype, shape) -> np.ndarray:
        return np.lib.format.open_memmap(folder / f"{name}.npy", "w+", dtype, shape)

    def _huge(self, frame: Frame) -> None:
        """A huge frame's maps into memory maps of its own scratch folder, window by window."""
        self.scratch.mkdir(parents=True, exist_ok=True)
        frame.scratch = Path(tempfile.mkdtemp(dir=self.scratch))
        shape, channels = frame.image.shape, self.predictor.channels
        maps = {"probability_out": self._map(frame.scratch, "probability", np.float32,
                                             (channels, *shape) if channels > 1 else shape)}
        if self.predictor.gives_uncertainty:
            maps["uncertainty_out"] = self._map(frame.scratch, "uncertainty", np.float32, shape)
        frame.maps, frame.uncertainty = self.predictor.predict(frame.image, **maps, zoom=frame.zoom)

    def predict_step(self, frames: list[Frame], batch_idx: int) -> list[Frame]:
        whole = []
        for frame in frames:
            if not frame.readable:
                continue
            try:
                frame.image = frame.image.numpy() if frame.image is not None else open_image(frame.path, self.plane)
            except (BeadDataError, OSError) as error:  # gone or damaged since the loader looked
                frame.error = str(error)
                continue
            if frame.image.size > images.LARGE:
                try:
                    self._huge(frame)
                except (OSError, MemoryError) as error:  # its maps cannot be mapped: this frame fails, not the run
                    frame.error = f"its maps could not be made: {error}"
            else:
                whole.append(frame)
        maps = self.predictor.predict_frames([frame.image for frame in whole], self.post,
                                             [frame.bounds for frame in whole], [frame.zoom for frame in whole])
        for frame, (probability, uncertainty, found) in zip(whole, maps):
            frame.maps, frame.uncertainty, frame.found = probability, uncertainty, found
        return frames


class PredictionWriter(BasePredictionWriter):
    """Hands each frame to the pool that finds its beads and writes its files (atomically); writes its record line
    once they are in place; merges the tables when all ranks are done. Every rank has its own pool."""

    def __init__(self, out: Path, options: OutputOptions, post: PostProcess, workers: int,
                 yield_cores: bool = False) -> None:
        super().__init__(write_interval="batch")
        self.out, self.options, self.post, self.workers = out, options, post, workers
        self.yield_cores = yield_cores
        self.journal = Journal(out)
        self.pool: WorkerPool | None = None  # started in on_predict_start
        self.sizes: list[FrameSize] = []  # what each frame's beads were taken to measure, said at the end

    def on_predict_start(self, trainer, pl_module) -> None:
        self.pool = WorkerPool(self.workers, self.journal.append, self.yield_cores)

    def write_on_batch_end(self, trainer, pl_module, frames: list[Frame], batch_indices, batch, batch_idx,
                           dataloader_idx=0):
        assert self.pool is not None, "the pool starts in on_predict_start"
        for frame in frames:
            if frame.size is not None and frame.readable:
                self.sizes.append(frame.size)
            if not frame.readable:
                print(f"beadseg-predict: skipped {frame.path}: {frame.error}")
                self.pool.put({"image": frame.name, "path": frame.path, "error": frame.error})
            elif frame.huge:  # its maps live in memory maps: finished here, chunk by chunk, the pool drained first
                self.pool.drain()
                self.journal.append(finish_frame(frame, self.out, self.options, self.post))
            else:
                self.pool.submit(finish_frame, frame, self.out, self.options, self.post)
        self.pool.end_step()

    def on_predict_end(self, trainer, pl_module) -> None:
        if self.pool is not None:
            self.pool.drain()
        report_sizes(self.sizes)
        self.teardown(trainer, pl_module, "predict")

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self.teardown(trainer, pl_module, "predict")  # what is in flight is dropped: resume=true redoes it

    def teardown(self, trainer, pl_module, stage: str) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None
        self.journal.close()


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
