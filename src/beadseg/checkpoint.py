"""Reading checkpoints as data, never as code.

Every checkpoint beadseg opens is loaded weights-only (tensors, numbers, strings, lists and dicts: a pickle that
would run code is refused), and the ``_target_`` settings it carries are checked against what beadseg builds
before anything is instantiated from them.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from beadseg.data.io import MAGIC

# What a checkpoint's settings may build: classes defined in these modules that are networks, losses (both
# torch.nn.Module), optimisers or learning-rate schedules, and these exact factories. A target is checked by what
# it resolves to, not by how its name starts: ``torch.nn.parallel.distributed.os.open`` starts like a torch layer
# but is ``os.open``.
ALLOWED_MODULES = ("beadseg.models", "beadseg.losses", "torch.nn", "torch.optim", "segmentation_models_pytorch")
ALLOWED_FACTORIES = ("timm.create_model",)


class CheckpointError(ValueError):
    """A checkpoint that is missing, damaged, or holds more than weights and settings."""


def targets(node: Any, where: str = "") -> list[tuple[str, str]]:
    """Every ``_target_`` in a nested settings structure, with where it sits (``net._target_``)."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{where}.{key}" if where else str(key)
            if key == "_target_":
                found.append((path, str(value)))
            else:
                found += targets(value, path)
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            found += targets(value, f"{where}[{index}]")
    return found


def _within(module: str) -> bool:
    return any(module == allowed or module.startswith(f"{allowed}.") for allowed in ALLOWED_MODULES)


def buildable(target: str) -> bool:
    """Whether ``target`` names something beadseg builds: an exact allowed factory, or a class defined in an allowed
    module that is an ``nn.Module``, optimiser or learning-rate schedule. Names outside the allowed modules are
    refused before anything is imported; the others are located (imported, never called) and the object checked."""
    from hydra._internal.utils import _locate

    if target in ALLOWED_FACTORIES:
        return True
    if not _within(target.rsplit(".", 1)[0]):
        return False
    try:
        found = _locate(target)
    except Exception:  # noqa: BLE001 - whatever fails to resolve is not something beadseg builds
        return False
    bases = (torch.nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler,
             torch.optim.lr_scheduler.ReduceLROnPlateau)
    return isinstance(found, type) and _within(found.__module__) and issubclass(found, bases)


def check_targets(settings: dict, source: str, built: tuple[str, ...] | None = None) -> None:
    """Refuse settings that would build anything but what beadseg builds (:func:`buildable`), at any depth (inside
    ``_args_``, nested or ``_partial_`` targets too), naming the first such target. ``built``: the settings the
    caller will build (inference: ``net``); the targets of the others, never built, are checked by name only (within
    the allowed modules), so that loading a network imports nothing it does not need."""
    for where, target in targets(settings):
        located = built is None or where.split(".")[0].split("[")[0] in built
        if not (buildable(target) if located else target in ALLOWED_FACTORIES or _within(target.rsplit(".", 1)[0])):
            raise CheckpointError(f"{source}: refused: its setting {where} names {target!r}, which is not something "
                                  "beadseg builds (its networks and losses, torch layers, losses and optimisers)")


def run_checkpoint(path: str | Path) -> Path:
    """``ckpt=`` as given: a checkpoint file, or a beadseg-train run directory, whose ``result.json`` names its
    checkpoint (the tuned one when the run tuned its thresholds)."""
    path = Path(path)
    if not path.is_dir():
        return path
    try:
        chosen = json.loads((path / "result.json").read_text()).get("checkpoint")
    except (OSError, ValueError):
        chosen = None
    if not chosen:
        raise CheckpointError(f"ckpt={path} is a folder but no finished beadseg-train run (its result.json names no "
                              "checkpoint): give the checkpoint file, e.g. ckpt=<run>/checkpoints/<best>.ckpt")
    return Path(chosen)


def not_a_checkpoint(path: Path) -> str | None:
    """What a file is when it cannot be a checkpoint (torch writes a zip archive, or a pickle in older
    versions): "empty", "a PNG image", "a text file", ...; None when it may be one."""
    with open(path, "rb") as handle:
        head = handle.read(512)
    if not head:
        return "empty"
    if head.startswith((b"PK\x03\x04", b"\x80")):
        return None
    kind = next((name for magic, name in MAGIC.items() if head.startswith(magic)), None)
    if kind:
        return f"a {kind} image"
    try:
        head.decode("utf-8")
        return "a text file"
    except UnicodeDecodeError:
        return "not a file torch writes"


def read_checkpoint(path: str | Path) -> dict:
    """The checkpoint's contents (of a file, or of a training run's checkpoint), loaded weights-only."""
    path = run_checkpoint(path)
    if not path.is_file():
        raise CheckpointError(f"ckpt={path}: no such checkpoint file")
    kind = not_a_checkpoint(path)
    if kind:
        raise CheckpointError(f"ckpt={path} is not a checkpoint ({kind}): give a .ckpt file that beadseg-train wrote")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        detail = str(error).strip().splitlines()
        hint = next((line for line in detail if "GLOBAL" in line or "Unsupported" in line), detail[0] if detail else "")
        raise CheckpointError(f"ckpt={path}: refused: it holds objects beyond weights and settings, which could run "
                              f"code when loaded ({hint.strip()}); beadseg loads checkpoints weights-only") from None
    except (RuntimeError, EOFError, OSError) as error:
        raise CheckpointError(f"ckpt={path}: not a readable checkpoint ({str(error).splitlines()[0]})") from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"ckpt={path}: not a beadseg checkpoint (a {type(checkpoint).__name__}, not a dict)")
    return checkpoint


def module_settings(path: str | Path, built: tuple[str, ...] | None = None) -> tuple[dict, dict]:
    """The checkpoint and its hyper-parameters, checked (:func:`check_targets`): what a LightningModule is rebuilt
    from."""
    checkpoint = read_checkpoint(path)
    if "hyper_parameters" not in checkpoint or "state_dict" not in checkpoint:
        raise CheckpointError(f"ckpt={path}: not a beadseg checkpoint (no hyper_parameters or state_dict)")
    settings = dict(checkpoint["hyper_parameters"])
    check_targets(settings, f"ckpt={path}", built)
    return checkpoint, settings


@dataclass
class Network:
    """What inference needs of a checkpoint: the network (in eval mode) and its settings (normalisation,
    threshold, class names), with no LightningModule and no training code."""

    net: torch.nn.Module
    hparams: dict
    checkpoint: dict

    @property
    def task(self) -> str:
        return "classify" if "class_names" in self.hparams else "segment"


def load_network(path: str | Path, task: str | None = None) -> Network:
    """The checkpoint's network, built from its checked settings and filled with its weights; ``task``
    (``segment`` or ``classify``) is the kind this command needs."""
    from hydra.utils import instantiate

    checkpoint, settings = module_settings(path, built=("net",))
    network = Network(instantiate(settings["net"]), settings, checkpoint)
    if task is not None and network.task != task:
        what = {"segment": "a segmentation", "classify": "a classification"}
        raise CheckpointError(f"ckpt={path} holds {what[network.task]} model; this command needs {what[task]} one")
    weights = {key[len("net."):]: value for key, value in checkpoint["state_dict"].items() if key.startswith("net.")}
    try:
        network.net.load_state_dict(weights)
    except RuntimeError as error:
        raise CheckpointError(f"ckpt={path}: its weights do not fit its own network ({str(error).splitlines()[0]})") from None
    network.net.eval()
    return network


def checkpoint_split(ckpt: str | None) -> dict[str, str]:
    """Which image the checkpoint's training run put in which split (empty without a checkpoint)."""
    return (module_settings(ckpt)[0].get("beadseg_split") or {}) if ckpt else {}


def write_tuned_checkpoint(ckpt: Path, threshold: float, out: Path, peak_threshold: float | None = None) -> Path:
    """A copy of the checkpoint whose stored threshold is ``threshold`` (and peak threshold, for a centre-map
    model; the original stays as it was), beside it, or in ``out`` for the shipped model (the installed package
    is not written to)."""
    from beadseg.pretrained import CHECKPOINT

    folder = out if ckpt.resolve() == CHECKPOINT else ckpt.parent
    target = folder / f"{ckpt.stem}.tuned.ckpt"
    if target.exists():
        raise FileExistsError(f"{target} exists already; beadseg never overwrites a checkpoint")
    checkpoint = read_checkpoint(ckpt)
    checkpoint["hyper_parameters"]["threshold"] = float(threshold)
    if peak_threshold is not None:
        checkpoint["hyper_parameters"]["peak_threshold"] = float(peak_threshold)
    torch.save(checkpoint, target)
    return target
