"""Networks described as data: an architecture name from beadseg's registry and typed, range-checked fields.

A checkpoint stores such a description and beadseg builds the network from it; nothing a file names is resolved
or called, no free keyword argument reaches a constructor, and no field fetches, loads or writes anything
(pretrained weights, URLs, caches: ``encoder_weights`` must be null, ``pretrained`` false). A user's composed
config (``model=unet``, with its ``_target_``) and the settings of checkpoints written before descriptions are
translated once into a description, by the same checks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from beadseg.settings import Field, SettingError, shown

ARCHITECTURE_KEY = "architecture"


class DescriptionError(SettingError):
    """A network description that beadseg does not build, naming the field at fault."""


def _unet(**flags: bool) -> Callable[..., nn.Module]:
    def build(**fields: Any) -> nn.Module:
        from beadseg.models.unet import UNet

        return UNet(**fields, **flags)

    return build


def _smp(**fields: Any) -> nn.Module:
    from beadseg.models.smp import SmpModel

    return SmpModel(**fields)


def _resnet(**fields: Any) -> nn.Module:
    import timm

    return timm.create_model(**fields)


UNET_FIELDS = {
    "in_channels": Field(int, 1, 1, 16),
    "out_channels": Field(int, 1, 1, 8),
    "base_channels": Field(int, 64, 1, 512),
    "depth": Field(int, 4, 1, 6),
    "bilinear": Field(bool, False),
    "dropout": Field(float, 0.0, 0.0, 0.95),
}
SMP_ARCHITECTURES = ("Unet", "UnetPlusPlus", "MAnet", "Linknet", "FPN", "PSPNet", "DeepLabV3", "DeepLabV3Plus", "PAN",
                     "UPerNet", "Segformer", "DPT")


@dataclass(frozen=True)
class Architecture:
    """A registry entry: how beadseg builds it, its fields, the config targets that name it, and where a consumer
    without beadseg's registry finds the class (module, name, fixed arguments: bioimage.io's state-dict weights)."""

    build: Callable[..., nn.Module]
    fields: dict[str, Field]
    targets: tuple[str, ...]
    importable: tuple[str, str, dict]
    rule: Callable[[dict, str], None] | None = None  # a check across fields


MAX_PARAMETERS = 100_000_000  # a network larger than this is refused by name before it is built (e.g. an smp
                              # or timm encoder a checkpoint names: resnext101_32x48d has 800 M)
MAX_UNET_WIDTH = 2048  # channels at the deepest level: 64 base channels at depth 5 (a far wider one would need GBs)


def unet_width(fields: dict, where: str) -> None:
    """Refuse a UNet whose deepest level would be wider than ``MAX_UNET_WIDTH`` channels (its size grows with the
    square of it: a checkpoint must not make beadseg allocate gigabytes)."""
    width = fields["base_channels"] * 2 ** fields["depth"]
    if width > MAX_UNET_WIDTH:
        raise DescriptionError(
            f"{where}.base_channels={fields['base_channels']} with {where}.depth={fields['depth']}: "
            f"{width} channels at the deepest level; accepts base_channels × 2^depth ≤ {MAX_UNET_WIDTH}"
        )


REGISTRY: dict[str, Architecture] = {
    "unet": Architecture(_unet(), UNET_FIELDS, ("beadseg.models.UNet", "beadseg.models.unet.UNet"),
                         ("beadseg.models.unet", "UNet", {}), unet_width),
    "attention_unet": Architecture(_unet(attention=True), UNET_FIELDS,
                                   ("beadseg.models.AttentionUNet", "beadseg.models.unet.AttentionUNet"),
                                   ("beadseg.models.unet", "UNet", {"attention": True}), unet_width),
    "attention_resunet": Architecture(_unet(attention=True, residual=True), UNET_FIELDS,
                                      ("beadseg.models.AttentionResUNet", "beadseg.models.unet.AttentionResUNet"),
                                      ("beadseg.models.unet", "UNet", {"attention": True, "residual": True}),
                                      unet_width),
    "smp": Architecture(_smp, {
        "arch": Field(str, "Unet", choices=SMP_ARCHITECTURES),
        "encoder": Field(str, "resnet34", pattern=r"(tu-)?[a-z][a-z0-9_]{1,40}(\.[a-z0-9_]{1,40})?"),
        "encoder_weights": Field(type(None), None, only=(None,)),
        "in_channels": Field(int, 1, 1, 16),
        "out_channels": Field(int, 1, 1, 8),
    }, ("beadseg.models.SmpModel", "beadseg.models.smp.SmpModel"), ("beadseg.models.smp", "SmpModel", {})),
    "resnet": Architecture(_resnet, {
        "model_name": Field(str, "resnet18", pattern=r"resnet\d{1,3}[a-z]?(d|t)?"),
        "pretrained": Field(bool, False, only=(False,)),
        "in_chans": Field(int, 1, 1, 16),
        "num_classes": Field(int, 2, 2, 1000),
    }, ("timm.create_model",), ("timm", "create_model", {})),
}


def describe(settings: Any, where: str = "net") -> dict:
    """The validated description of a network: ``{"architecture": name, field: value, ...}``, every field typed and
    range-checked, defaults filled in. ``settings``: a description already, or a config naming one of the
    registry's ``targets`` with its keyword arguments (a user's ``model`` config; a checkpoint written before
    descriptions). Anything else is refused, naming the setting (``where``) at fault.

    Examples
    --------
    >>> describe({"_target_": "beadseg.models.UNet", "base_channels": 16})["architecture"]
    'unet'
    >>> describe({"architecture": "resnet", "pretrained": True})
    Traceback (most recent call last):
    ...
    beadseg.models.registry.DescriptionError: net.pretrained=True: accepts False
    """
    if not isinstance(settings, dict):
        raise DescriptionError(f"{where} is {type(settings).__name__} {str(settings)[:60]!r}, not a network "
                               f"description (a mapping with {ARCHITECTURE_KEY}: one of {', '.join(REGISTRY)})")
    settings = dict(settings)
    if "_target_" in settings:
        target = settings.pop("_target_")
        name = next((key for key, entry in REGISTRY.items() if target in entry.targets), None)
        if name is None or ARCHITECTURE_KEY in settings:
            raise DescriptionError(f"{where}._target_={str(target)[:80]!r}: not a network beadseg builds (its "
                                   f"networks: {', '.join(REGISTRY)})")
    else:
        name = settings.pop(ARCHITECTURE_KEY, None)
        if not isinstance(name, str) or name not in REGISTRY:
            raise DescriptionError(f"{where}.{ARCHITECTURE_KEY}={shown(name)}: accepts one of {', '.join(REGISTRY)}")
    fields = REGISTRY[name].fields
    unknown = sorted(map(str, set(settings) - set(fields)))
    if unknown:
        raise DescriptionError(f"{where}.{unknown[0]}: not a setting of the {name} network (its settings: "
                               f"{', '.join(fields)})")
    try:
        checked = {
            key: field.check(settings.get(key, field.default), f"{where}.{key}") for key, field in fields.items()
        }
    except SettingError as error:
        raise DescriptionError(str(error)) from None
    rule = REGISTRY[name].rule
    if rule is not None:
        rule(checked, where)
    return {ARCHITECTURE_KEY: name, **checked}


def build_network(description: dict, where: str = "net") -> nn.Module:
    """The network a description describes (checked again by :func:`describe`), with fresh weights.

    Examples
    --------
    >>> net = build_network({"architecture": "unet", "base_channels": 4, "depth": 2})
    >>> type(net).__name__
    'UNet'
    """
    checked = describe(description, where)
    name = checked.pop(ARCHITECTURE_KEY)
    with torch.device("meta"):  # built without memory first: its size is known before anything is allocated
        size = sum(parameter.numel() for parameter in REGISTRY[name].build(**checked).parameters())
    if size > MAX_PARAMETERS:
        named = " ".join(f"{key}={value}" for key, value in checked.items() if key in ("arch", "encoder", "model_name"))
        raise DescriptionError(f"{where}: {name} {named} has {size / 1e6:.0f} M parameters; accepts at most "
                               f"{MAX_PARAMETERS / 1e6:.0f} M (the shipped bead model has 1.9 M)")
    return REGISTRY[name].build(**checked)


def importable(description: dict) -> tuple[str, str, dict]:
    """Where a consumer without beadseg's registry finds the network's class: its module, its name and every
    keyword argument (bioimage.io's state-dict weights name the architecture so).

    Examples
    --------
    >>> importable({"architecture": "attention_unet", "base_channels": 8})[:2]
    ('beadseg.models.unet', 'UNet')
    """
    checked = describe(description)
    module, name, fixed = REGISTRY[checked.pop(ARCHITECTURE_KEY)].importable
    return module, name, {**checked, **fixed}
