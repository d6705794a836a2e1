"""Segmentation networks: they take (N, 1, H, W) images of any size and return logits of the same size."""

from beadseg.models.smp import SmpModel
from beadseg.models.unet import AttentionResUNet, AttentionUNet, UNet

__all__ = ["UNet", "AttentionUNet", "AttentionResUNet", "SmpModel"]
