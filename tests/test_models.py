"""Every model maps any (N, 1, H, W) input to logits of the same size."""

import pytest
import torch
from hydra.utils import instantiate

MODELS = [
    ["model=unet", "model.base_channels=4"],
    ["model=unet", "model.base_channels=4", "model.bilinear=true", "model.dropout=0.3"],
    ["model=attention_unet", "model.base_channels=4"],
    ["model=attention_resunet", "model.base_channels=4"],
    ["model=smp", "model.arch=Unet", "model.encoder=resnet18"],
    ["model=smp", "model.arch=FPN", "model.encoder=resnet18"],
    ["model=smp", "model.arch=DeepLabV3Plus", "model.encoder=resnet18"],
    ["model=smp", "model.arch=UnetPlusPlus", "model.encoder=resnet18"],
]


@pytest.mark.parametrize("overrides", MODELS, ids=lambda o: " ".join(o[:2]))
@pytest.mark.parametrize("size", [(37, 53), (64, 64), (1, 20)])
def test_output_matches_input_size(compose_config, overrides, size):
    model = instantiate(compose_config("train", overrides).model).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 1, *size))
    assert out.shape == (2, 1, *size)
    assert torch.isfinite(out).all()


def test_attention_gates_and_residual_blocks_are_built(compose_config):
    from beadseg.models.unet import AttentionGate, ConvBlock

    plain = instantiate(compose_config("train", ["model=unet"]).model)
    gated = instantiate(compose_config("train", ["model=attention_unet"]).model)
    residual = instantiate(compose_config("train", ["model=attention_resunet"]).model)
    assert not any(isinstance(m, AttentionGate) for m in plain.modules())
    assert sum(isinstance(m, AttentionGate) for m in gated.modules()) == 4
    assert all(m.shortcut is None for m in gated.modules() if isinstance(m, ConvBlock))
    assert all(m.shortcut is not None for m in residual.modules() if isinstance(m, ConvBlock))


def test_unknown_smp_architecture_names_the_key():
    from beadseg.models import SmpModel

    with pytest.raises(ValueError, match="model.arch='NoSuchNet'"):
        SmpModel(arch="NoSuchNet")
