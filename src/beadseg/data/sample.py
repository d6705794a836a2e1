"""The unit every bead data source yields: an image with its bead instances."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

IGNORE_INDEX = -1  # training-target value of pixels left out of the loss and the metrics (conf/loss: ignore_index)


class BeadSample:
    """One raw image (native intensity scale) with its bead instance labels (int32, 0 = background).
    ``binary_mask``: the labels come from a binary mask, where touching beads may have merged. ``labels`` may be
    given as a function that computes them: they are computed the first time they are asked for (training on a
    binary mask counted by area never needs the watershed split of it), ``mask`` then being the bead pixels."""

    def __init__(self, name: str, image: np.ndarray, labels: np.ndarray | Callable[[], np.ndarray],
                 binary_mask: bool = False, mask: np.ndarray | None = None) -> None:
        self.name, self.image, self.binary_mask = name, image, binary_mask
        self._labels, self._mask = labels, mask

    @property
    def labels(self) -> np.ndarray:
        if callable(self._labels):
            self._labels = self._labels()
        return self._labels

    @property
    def mask(self) -> np.ndarray:
        return self._mask if self._mask is not None else self.labels > 0

    @property
    def bead_count(self) -> int:
        return int(self.labels.max())
