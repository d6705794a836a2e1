"""Segmentation networks: they take (N, 1, H, W) images of any size and return logits of the same size.

The package imports nothing heavy: ``SmpModel`` (segmentation-models-pytorch, which brings timm, torchvision and
torch._dynamo) is imported only when asked for, so that counting beads with beadseg's own networks never loads
them (napari under software OpenGL crashes when triton, which torch._dynamo loads, arrives after the viewer).
"""

from beadseg.models.unet import AttentionResUNet, AttentionUNet, UNet

__all__ = ["UNet", "AttentionUNet", "AttentionResUNet", "SmpModel"]


def __getattr__(name: str):
    if name == "SmpModel":
        from beadseg.models.smp import SmpModel

        return SmpModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
