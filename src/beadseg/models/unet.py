"""UNet (Ronneberger et al. 2015), Attention UNet (Oktay et al. 2018) and Attention ResUNet, as one family."""

from __future__ import annotations

import torch
from torch import nn

from beadseg.models.base import PaddedSegmenter


class ConvBlock(nn.Module):
    """Two 3x3 conv-BN-ReLU layers, optional dropout, optional residual shortcut."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0, residual: bool = False):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Dropout2d(dropout) if dropout > 0 else nn.Identity(),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.shortcut = None
        if residual:
            self.shortcut = (
                nn.Identity()
                if in_channels == out_channels
                else nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))
            )
        self.activation = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return self.activation(out)


class AttentionGate(nn.Module):
    """Additive attention gate: the decoder's coarser features decide which skip-connection pixels pass."""

    def __init__(self, skip_channels: int, gate_channels: int, inter_channels: int):
        super().__init__()
        self.project_skip = nn.Conv2d(skip_channels, inter_channels, 1, bias=False)
        self.project_gate = nn.Conv2d(gate_channels, inter_channels, 1, bias=True)
        self.psi = nn.Sequential(nn.ReLU(inplace=True), nn.Conv2d(inter_channels, 1, 1), nn.Sigmoid())

    def forward(self, skip: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        return skip * self.psi(self.project_skip(skip) + self.project_gate(gate))


class UpStep(nn.Module):
    """Upsample, (gate the skip), concatenate, convolve."""

    def __init__(self, in_channels: int, out_channels: int, bilinear: bool, attention: bool, *, dropout: float,
                 residual: bool):
        super().__init__()
        self.up: nn.Module
        if bilinear:
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(in_channels, out_channels, 1),
            )
        else:
            self.up = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)
        self.gate = AttentionGate(out_channels, out_channels, max(out_channels // 2, 1)) if attention else None
        self.block = ConvBlock(2 * out_channels, out_channels, dropout, residual)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        if self.gate is not None:
            skip = self.gate(skip, x)
        return self.block(torch.cat([skip, x], dim=1))


class UNet(PaddedSegmenter):
    """A classic UNet with ``depth`` poolings; ``base_channels`` doubles at each level.

    ``bilinear`` picks bilinear upsampling (+1x1 conv) over transposed convolutions; ``attention`` adds
    Oktay-style gates on the skips; ``residual`` makes every block residual.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        base_channels: int = 64,
        depth: int = 4,
        *, bilinear: bool = False,
        dropout: float = 0.0,
        attention: bool = False,
        residual: bool = False,
    ):
        super().__init__()
        self.divisor = 2**depth
        widths = [base_channels * 2**level for level in range(depth + 1)]
        self.stem = ConvBlock(in_channels, widths[0], dropout, residual)
        self.down = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), ConvBlock(widths[i], widths[i + 1], dropout, residual)) for i in range(depth)
        )
        self.up = nn.ModuleList(
            UpStep(widths[i + 1], widths[i], bilinear, attention, dropout=dropout, residual=residual)
            for i in reversed(range(depth))
        )
        self.head = nn.Conv2d(widths[0], out_channels, 1)

    def segment(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.stem(x)]
        for step in self.down:
            skips.append(step(skips[-1]))
        x = skips.pop()
        for step in self.up:
            x = step(x, skips.pop())
        return self.head(x)


class AttentionUNet(UNet):
    """UNet with attention gates on every skip connection (Oktay et al. 2018)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("attention", True)
        super().__init__(**kwargs)


class AttentionResUNet(UNet):
    """Attention UNet whose blocks are residual."""

    def __init__(self, **kwargs):
        kwargs.setdefault("attention", True)
        kwargs.setdefault("residual", True)
        super().__init__(**kwargs)
