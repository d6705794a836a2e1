"""Predictors: a trained checkpoint (tiled, with optional TTA / MC-dropout uncertainty) or the classical detector."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import NamedTuple, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from beadseg.beads.classical import detect_beads
from beadseg.beads.postprocess import DEFAULT_PEAK_THRESHOLD, MaskAndPeaks, PostProcess
from beadseg.checkpoint import checkpoint_split, learned_diameter, load_network, run_checkpoint
from beadseg.data.io import Normalization
from beadseg.inference.tiling import predict_tiled, tile_plan, to_device
from beadseg.workers.pool import network_on_cpu

# the eight symmetries of the square: (number of 90° turns, flip left-right)
DIHEDRAL = [(k, flip) for flip in (False, True) for k in range(4)]


def _apply(x: torch.Tensor, turns: int, flip: bool) -> torch.Tensor:
    x = torch.flip(x, dims=(-1,)) if flip else x
    return torch.rot90(x, turns, dims=(-2, -1))


def _invert(x: torch.Tensor, turns: int, flip: bool) -> torch.Tensor:
    x = torch.rot90(x, -turns, dims=(-2, -1))
    return torch.flip(x, dims=(-1,)) if flip else x


class FrameMaps(NamedTuple):
    """A frame's maps from the network: the bead probability (with the centre heat-map, (2, H, W)), the per-pixel
    uncertainty (or ``None``), and what the device found in them already (or ``None``)."""

    probability: np.ndarray
    uncertainty: np.ndarray | None
    found: MaskAndPeaks | None = None


def square_maximum(values: torch.Tensor, reach: int) -> torch.Tensor:
    """The maximum over the (2·``reach``+1)² square around each pixel of non-negative maps (..., H, W), the frame's
    outside counting as 0: one axis at a time over sliding views (on the CPU about ten times faster than
    ``max_pool2d``, which took 38 ms for a 1440x1080 map). The tensor twin of the host's numpy
    :func:`~beadseg.beads.measure.square_maximum`, for maps on any device.

    Examples
    --------
    >>> heat = torch.zeros(4, 6); heat[0, 3] = 0.5
    >>> square_maximum(heat, 1).tolist()[:3]
    [[0.0, 0.0, 0.5, 0.5, 0.5, 0.0], [0.0, 0.0, 0.5, 0.5, 0.5, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]
    """
    side = 2 * reach + 1
    rows = F.pad(values, (reach, reach)).unfold(-1, side, 1).amax(-1)
    return F.pad(rows, (0, 0, reach, reach)).unfold(-2, side, 1).amax(-1)


def find_on_device(maps: torch.Tensor, post: PostProcess) -> list[MaskAndPeaks]:
    """:class:`PostProcess`'s thresholding and peak finding (non-maximum suppression, :func:`square_maximum`) for a
    batch of maps (N, C, H, W) where they are: the host gets a byte per pixel and the peaks' coordinates, the same
    it would have found itself (:meth:`PostProcess.candidates`)."""
    above = maps[:, 0] > post.min_probability
    peaks = None
    if maps.shape[1] > 1:
        masked = torch.where(above, maps[:, 1], 0.0)
        is_peak = (masked > post.min_peak) & (masked == square_maximum(masked, post.peak_distance))
        peaks = torch.argwhere(is_peak).cpu().numpy()  # (frame, row, column), in raster order per frame
    return [MaskAndPeaks(mask, None if peaks is None else peaks[peaks[:, 0] == index, 1:])
            for index, mask in enumerate(above.cpu().numpy())]


class Predictor(Protocol):
    """What prediction, evaluation and the napari widget ask of a bead finder: a trained network
    (:class:`ModelPredictor`) or the classical detector (:class:`ClassicalPredictor`), one road for both.

    ``threshold``, ``peak_threshold``, ``bead_area`` and ``bead_diameter`` (px) are the model's own (stored with its
    checkpoint; frames whose beads are of another size are resized to it, ``zoom``); ``channels`` is 2 for a model
    with a centre heat-map; ``net`` the network (``None`` without one);
    ``normalization`` the intensity recipe it learned (``None``: images as they are); ``gives_uncertainty`` whether
    its maps come with a per-pixel uncertainty; ``checkpoint`` the file it came from, ``training_split`` which of
    its training run's images went to which split (read with it: the file is read once)."""

    name: str
    threshold: float
    peak_threshold: float
    bead_area: float | None
    bead_diameter: float | None
    channels: int
    net: torch.nn.Module | None
    normalization: Normalization | None
    checkpoint: str | None
    training_split: dict[str, str]

    @property
    def gives_uncertainty(self) -> bool: ...

    def keep_dropout_on(self) -> None: ...

    def predict(self, image: np.ndarray, probability_out=None, uncertainty_out=None,
                on_tile_row=None, zoom: float = 1.0) -> tuple[np.ndarray, np.ndarray | None]:
        """One frame of any size: its maps (into ``probability_out``/``uncertainty_out`` when given), on its own
        grid whatever ``zoom`` it met the network at."""
        ...

    def predict_frames(self, images: list[np.ndarray], post: PostProcess | None = None,
                       bounds: list[tuple[float, float] | None] | None = None,
                       zooms: list[float] | None = None) -> list[FrameMaps]:
        """Several frames' maps (with ``post``, what could be found where they were computed)."""
        ...


class ModelPredictor:
    """A trained network applied to whole frames (up to ``tile`` px a side, several per pass) or, for larger ones, in
    overlapping windows of ``window`` px; ``tta`` averages the 8 flips/rotations, ``mc_samples`` > 0
    keeps dropout on and averages that many passes. Either gives a per-pixel uncertainty (std of the members)."""

    name = "model"
    checkpoint: str | None = None  # the file it was loaded from (set by load_predictor)

    def __init__(self, network, tile: int = 2048, window: int = 512, overlap: int = 32, *,
                 batch_pixels: int | str = "auto",
                 blend: str = "gaussian", tta: bool = False, mc_samples: int = 0, device: str | None = None,
                 amp: bool | None = None) -> None:
        self.net = network.net.eval()
        if device or torch.cuda.is_available():  # on its own; in Lightning's predict loop the trainer places it
            self.net.to(device or "cuda")
        self.normalization = Normalization(**(network.hparams.get("normalization") or {}))
        self.threshold = float(network.hparams.get("threshold", 0.5))
        self.channels = int(network.hparams["net"].get("out_channels", 1))  # 2: bead mask and centre heat-map
        self.peak_threshold = float(network.hparams.get("peak_threshold") or DEFAULT_PEAK_THRESHOLD)
        self.bead_area = network.hparams.get("bead_area")  # px, the median bead the model saw in validation
        self.bead_diameter = learned_diameter(network.hparams)
        self.training_split: dict[str, str] = network.checkpoint.get("beadseg_split") or {}
        # pixels per forward pass: the shipped model's fp32 activations take ~0.5 GB per MP on a CPU
        if batch_pixels == "auto":
            batch_pixels = 16 * 2**20 if self.device.type == "cuda" else 2**20
        self.tile, self.overlap, self.batch_pixels, self.blend = tile, overlap, int(batch_pixels), blend
        self.window = min(window, tile)  # the sliding window of frames larger than ``tile``
        self.tta, self.mc_samples, self._amp = tta, mc_samples, amp
        self.keep_dropout_on()

    def keep_dropout_on(self) -> None:
        """MC dropout: dropout layers sample at inference (call again after anything sets the net to eval)."""
        if not self.mc_samples:
            return
        dropouts = [m for m in self.net.modules() if isinstance(m, torch.nn.modules.dropout._DropoutNd)]
        if not dropouts or all(m.p == 0 for m in dropouts):
            raise ValueError(
                "uncertainty=mc_dropout needs a model trained with dropout (model.dropout > 0); use tta=true instead"
            )
        for m in dropouts:
            m.train()

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @property
    def gives_uncertainty(self) -> bool:
        """Whether the maps come with a per-pixel uncertainty (``tta`` or ``mc_samples``)."""
        return bool(self.tta or self.mc_samples)

    @property
    def amp(self) -> bool:
        return self.device.type == "cuda" if self._amp is None else self._amp

    def _members(self, tiles: torch.Tensor) -> list[torch.Tensor]:
        device = self.device
        with torch.autocast(device.type, dtype=torch.float16, enabled=self.amp):
            if self.mc_samples:
                return [torch.sigmoid(self.net(tiles).float()) for _ in range(self.mc_samples)]
            transforms = DIHEDRAL if self.tta else DIHEDRAL[:1]
            return [_invert(torch.sigmoid(self.net(_apply(tiles, k, f)).float()), k, f) for k, f in transforms]

    def tile_model(self, tiles: torch.Tensor, zoom: float = 1.0) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The maps (and their spread, with ``tta`` or ``mc_samples``) of normalised tiles (N, 1, h, w): resized by
        ``zoom`` for the network (bicubic up, antialiased bilinear down) and the maps brought back to (h, w)."""
        if zoom != 1:
            size = tiles.shape[-2:]
            mode = {"mode": "bicubic"} if zoom > 1 else {"mode": "bilinear", "antialias": True}
            tiles = F.interpolate(tiles, scale_factor=zoom, align_corners=False, **mode)
        members = torch.stack(self._members(tiles))
        mean, spread = members.mean(0), (members.std(0, unbiased=False) if len(members) > 1 else None)
        if zoom != 1:
            back = partial(F.interpolate, size=size, mode="bilinear", align_corners=False)
            mean, spread = back(mean), (back(spread) if spread is not None else None)
        return mean, spread

    def fits_whole(self, shape: tuple[int, int], zoom: float = 1.0) -> bool:
        """Whether a frame goes through the network whole (both sides within ``tile`` after resizing by ``zoom``): no
        tiles, no blending."""
        return max(shape) * max(zoom, 1.0) <= self.tile

    def sliding_window(self, zoom: float = 1.0) -> tuple[int, int, int]:
        """The window and overlap (frame px) of a frame too large to go through whole, those that meet the network
        as ``window`` and ``overlap`` px once resized by ``zoom``, and the multiple the window is rounded to (the
        network's divisor; 1 for a resized frame, whose windows are resized to any size)."""
        multiple = getattr(self.net, "divisor", 1) if zoom == 1 else 1
        return max(32, int(round(self.window / zoom))), int(math.ceil(self.overlap / zoom)), multiple

    def tiles(self, shape: tuple[int, int], zoom: float = 1.0) -> int:
        """How many network passes (whole frame: 1; else sliding windows) :meth:`predict` makes over a frame."""
        if self.fits_whole(shape, zoom):
            return 1
        window, overlap, multiple = self.sliding_window(zoom)
        return len(tile_plan(shape[0], window, overlap, multiple)[1]) * len(tile_plan(shape[1], window, overlap,
                                                                                        multiple)[1])

    def per_pass(self, pixels: int) -> int:
        """How many tiles or whole frames of ``pixels`` go through the network in one forward pass."""
        return max(1, self.batch_pixels // pixels)

    def predict(self, image: np.ndarray, probability_out=None, uncertainty_out=None, on_tile_row=None,
                zoom: float = 1.0):
        if self.fits_whole(image.shape, zoom):
            probability, uncertainty, _ = self.predict_frames([image], zooms=[zoom])[0]
            for out, values in ((probability_out, probability), (uncertainty_out, uncertainty)):
                if out is not None and values is not None:
                    out[:] = values
            if on_tile_row:
                on_tile_row(1)
            return probability, uncertainty
        bounds = self.normalization.bounds(image)
        window, overlap, multiple = self.sliding_window(zoom)
        return predict_tiled(
            partial(self.tile_model, zoom=zoom), image, lambda crop: self.normalization.apply(crop, bounds),
            tile=window, overlap=overlap, batch_size=self.per_pass(self.window**2),
            blend=self.blend, device=self.device, multiple=multiple,
            probability_out=probability_out, uncertainty_out=uncertainty_out, on_tile_row=on_tile_row,
            channels=self.channels,
        )

    def predict_frames(self, images: list[np.ndarray], post: PostProcess | None = None,
                       bounds: list[tuple[float, float] | None] | None = None,
                       zooms: list[float] | None = None) -> list[FrameMaps]:
        """Maps of several frames: those that fit whole go through the network several per pass (frames of one
        size and zoom together, as many as the pixel budget allows), larger ones tile by tile. ``bounds``: each
        frame's normalisation bounds where already known (the loader's workers compute them); ``zooms``: each
        frame's resizing for the network (:class:`~beadseg.beads.size.FrameSize`), its maps on its own grid. With
        ``post`` (the prediction pipeline), whole frames get their threshold and peaks on the device
        (:func:`find_on_device`, with the lengths of a resized frame scaled to its grid), and under mixed precision
        their maps come back as float16, the precision the network computed them in."""
        bounds = bounds or [None] * len(images)
        zooms = zooms or [1.0] * len(images)
        results: list = [None] * len(images)
        whole: dict[tuple, list[int]] = {}
        for index, (image, zoom) in enumerate(zip(images, zooms)):
            if self.fits_whole(image.shape, zoom):
                whole.setdefault((image.shape, zoom), []).append(index)
            else:
                results[index] = FrameMaps(*self.predict(image, zoom=zoom))
        dtype = torch.float16 if post is not None and self.amp else torch.float32
        for (shape, zoom), indices in whole.items():
            step = self.per_pass(int(shape[0] * shape[1] * max(zoom, 1.0) ** 2))
            for first in range(0, len(indices), step):
                chosen = indices[first : first + step]
                batch = np.stack([self.normalization.apply(images[i], bounds[i] or self.normalization.bounds(images[i]))
                                  for i in chosen])[:, None]
                with torch.no_grad():
                    on_device, spread = self.tile_model(to_device(batch, self.device), zoom)
                found = (find_on_device(on_device, post.at_scale(1 / zoom)) if post is not None
                         else [None] * len(chosen))
                probability = on_device.to(dtype).cpu().numpy()
                uncertainties = spread[:, 0].to(dtype).cpu().numpy() if spread is not None else [None] * len(chosen)
                for index, maps, uncertainty, finds in zip(chosen, probability, uncertainties, found):
                    results[index] = FrameMaps(maps if self.channels > 1 else maps[0], uncertainty, finds)
        return results


class ClassicalPredictor:
    """The untrained baseline: background subtraction, noise-scaled threshold, half-maximum beads."""

    name = "classical"
    threshold = 0.5
    peak_threshold = DEFAULT_PEAK_THRESHOLD  # no centre map to use it on; eval records it all the same
    bead_area: float | None = None
    bead_diameter: float | None = None
    channels = 1
    net: torch.nn.Module | None = None
    normalization: Normalization | None = None  # it reads the image as it is
    gives_uncertainty = False
    checkpoint: str | None = None  # a checkpoint given only to borrow its split (beadseg-eval split=test)

    def __init__(self, detect: Callable = detect_beads) -> None:
        self.detect = detect
        self.training_split: dict[str, str] = {}  # a borrowed checkpoint's (load_predictor)

    def keep_dropout_on(self) -> None:
        """No network, no dropout."""

    def predict(self, image: np.ndarray, probability_out=None, uncertainty_out=None, on_tile_row=None,
                zoom: float = 1.0):
        """The detector's beads as a 0/1 map, on the frame as it is (``zoom`` is for networks)."""
        probability = (self.detect(np.asarray(image)).labels > 0).astype(np.float32)
        if probability_out is not None:
            probability_out[:] = probability
            probability = probability_out
        return probability, None

    def predict_frames(self, images: list[np.ndarray], post: PostProcess | None = None,
                       bounds: list[tuple[float, float] | None] | None = None,
                       zooms: list[float] | None = None) -> list[FrameMaps]:
        """Frame by frame (the detector is not batched), nothing found ahead."""
        return [FrameMaps(*self.predict(image)) for image in images]


def shipped_checkpoint() -> str:
    """The bead model that comes with beadseg (used when no ``ckpt=`` is given)."""
    from beadseg.pretrained import CHECKPOINT

    if not CHECKPOINT.is_file():
        raise FileNotFoundError(f"no ckpt=PATH given and the shipped bead model {CHECKPOINT} is missing")
    return str(CHECKPOINT)


def load_predictor(
    ckpt: str | None = None, build: Callable = ModelPredictor, detect: Callable | None = None
) -> Predictor:
    """The classical detector when ``detect`` is given (``ckpt`` then only lends its split to beadseg-eval), else
    ``build(network)`` of the checkpoint ``ckpt`` (default: the shipped bead model). ``checkpoint`` on the
    predictor is the file it came from."""
    if detect is not None:
        predictor = ClassicalPredictor(detect)
        predictor.training_split = checkpoint_split(str(run_checkpoint(ckpt))) if ckpt else {}
    else:
        ckpt = str(run_checkpoint(ckpt)) if ckpt else shipped_checkpoint()
        predictor = build(load_network(ckpt, "segment"))
    predictor.checkpoint = str(Path(ckpt).resolve()) if ckpt else None
    return predictor


def frames_per_step(setting: int | str, predictor: Predictor) -> int:
    """Frames a step sends through the network together (``frames_per_step``): ``auto`` is 2 where the network
    runs on the CPU, else 8 (a GPU, or no network: the classical detector takes them one by one).

    Examples
    --------
    >>> frames_per_step("auto", ClassicalPredictor()), frames_per_step(4, ClassicalPredictor())
    (8, 4)
    """
    return int(setting) if setting != "auto" else 2 if network_on_cpu(predictor) else 8


def predictor_from_config(cfg) -> Predictor:
    """The predictor a predict/eval config asks for: ``method=classical`` (``detector.*``) or a checkpoint
    (``ckpt``, ``inference.*``)."""
    from hydra.utils import instantiate

    classical = cfg.method.name == "classical"
    return load_predictor(cfg.ckpt, instantiate(cfg.inference), instantiate(cfg.detector) if classical else None)
