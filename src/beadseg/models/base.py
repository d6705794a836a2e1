"""What every beadseg network shares: any input size in, logits of the same size out."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F
from torch import nn


class PaddedSegmenter(nn.Module, ABC):
    """Pads the input up to a multiple of ``divisor`` (mirroring the border), segments, crops back."""

    divisor: int = 32

    @abstractmethod
    def segment(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for an input whose size is a multiple of ``divisor``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        pad_h, pad_w = -height % self.divisor, -width % self.divisor
        if pad_h or pad_w:
            mode = "reflect" if pad_h < height and pad_w < width else "replicate"
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        return self.segment(x)[..., :height, :width]
