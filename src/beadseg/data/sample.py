"""The unit every bead data source yields: an image with its bead instances."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IGNORE_INDEX = -1  # training-target value of pixels left out of the loss and the metrics (conf/loss: ignore_index)


@dataclass
class BeadSample:
    """One raw image (native intensity scale) with its bead instance labels (int32, 0 = background).
    ``binary_mask``: the labels come from a binary mask, where touching beads may have merged."""

    name: str
    image: np.ndarray
    labels: np.ndarray
    binary_mask: bool = False

    @property
    def mask(self) -> np.ndarray:
        return self.labels > 0

    @property
    def bead_count(self) -> int:
        return int(self.labels.max())
