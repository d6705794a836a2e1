"""A frame on its one road through ``beadseg-predict``: read by a loader worker, through the predictor, found and
written by the finishing step. One typed record from the loader to the writers, instead of a dict filled in four
places.

No torch here: the finishing workers start without it (the loader's image travels as a tensor, typed ``Any``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from beadseg.beads.postprocess import MaskAndPeaks
from beadseg.beads.size import FrameSize


@dataclass
class Frame:
    """One input frame and what is known of it so far.

    Parameters
    ----------
    name, path : str
        The image's name (its file name without the image suffix) and where it was read.
    index : int
        Its place in the whole input (tables come out in input order; overlays go to every k-th frame).
    image : ndarray or torch.Tensor, optional
        The pixels (a tensor from a loader worker, through shared memory; ``None`` for a frame over
        ``images.LARGE`` pixels, opened memory-mapped where it is used, or one that could not be read).
    bounds : (float, float), optional
        The intensities the model's normalisation maps to 0 and 1 (the loader computes them).
    noise : float, optional
        The image's noise (:func:`~beadseg.beads.measure.image_noise`, for the beads' contrast): the loader
        measures it while the network runs; the finishing step otherwise.
    pixel_size_um : float, optional
        From the file's metadata.
    size : FrameSize, optional
        Its beads' diameter (given, estimated or the model's) and the zoom it meets the network at (the loader
        decides it).
    error : str, optional
        Why the frame could not be read or predicted: it is named in ``errors.csv`` and skipped.
    maps, uncertainty : ndarray, optional
        The network's bead probability (H, W) or probability and centre heat-map (2, H, W), and the per-pixel
        uncertainty of ``tta``/``mc_samples``.
    found : MaskAndPeaks, optional
        The threshold and peaks already computed where the maps were (on the device).
    scratch : Path, optional
        A huge frame's folder of memory maps (its maps, then its labels): the finishing step finds its beads
        chunk by chunk there, and removes the folder.

    Examples
    --------
    >>> frame = Frame("640x_a", "/data/640x_a.png", 0, image=np.zeros((4, 4), np.uint8))
    >>> frame.readable, frame.huge
    (True, False)
    """

    name: str
    path: str
    index: int
    image: Any = None
    bounds: tuple[float, float] | None = None
    noise: float | None = None
    pixel_size_um: float | None = None
    size: FrameSize | None = None
    error: str | None = None
    maps: np.ndarray | None = None
    uncertainty: np.ndarray | None = None
    found: MaskAndPeaks | None = None
    scratch: Path | None = None

    @property
    def readable(self) -> bool:
        """Whether the frame goes on (it was read, and nothing failed since)."""
        return self.error is None

    @property
    def zoom(self) -> float:
        """The factor the frame is resized by for the network (1 when no bead size was decided)."""
        return self.size.zoom if self.size is not None else 1.0

    @property
    def huge(self) -> bool:
        """Whether its maps live in memory maps under ``scratch`` (finished in the main process, chunk by chunk)."""
        return self.scratch is not None
