"""Any segmentation-models-pytorch architecture and encoder behind one config entry."""

from __future__ import annotations

import segmentation_models_pytorch as smp
import torch

from beadseg.models.base import PaddedSegmenter


class SmpModel(PaddedSegmenter):
    """``smp.create_model(arch, encoder)`` with one input channel; ``encoder_weights`` null: no download."""

    def __init__(
        self,
        arch: str = "Unet",
        encoder: str = "resnet34",
        encoder_weights: str | None = None,
        in_channels: int = 1,
        out_channels: int = 1,
        **kwargs,
    ):
        super().__init__()
        try:
            self.net = smp.create_model(
                arch,
                encoder_name=encoder,
                encoder_weights=encoder_weights,
                in_channels=in_channels,
                classes=out_channels,
                **kwargs,
            )
        except (KeyError, ValueError) as error:
            raise ValueError(
                f"model.arch={arch!r} with model.encoder={encoder!r} is not available in smp: {error}"
            ) from error

    def segment(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
