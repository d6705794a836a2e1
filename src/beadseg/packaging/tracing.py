"""TorchScript tracing of beadseg's networks, shared by every export format that ships TorchScript."""

from __future__ import annotations

import warnings

import torch


def trace(net: torch.nn.Module, example: torch.Tensor):
    """``torch.jit.trace`` without the warnings it gives for every beadseg network: that tracing is deprecated
    (TorchScript is what bioimage.io and Fiji's DeepImageJ run) and that size checks in the network were traced as
    constants. Both are understood, and every export is compared with the checkpoint on a new input right after."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*torch.jit.*")
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*torch.jit.*")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        return torch.jit.trace(net, example)
