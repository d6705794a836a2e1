"""Reading checkpoints as data, never as code.

Every checkpoint beadseg opens is loaded weights-only (tensors, numbers, strings, lists and dicts: a pickle that
would run code is refused). Of its settings beadseg builds one thing, the network, and only from a description
its registry validates (:mod:`beadseg.models.registry`: an architecture name and typed, range-checked fields);
nothing else a checkpoint names (losses, optimisers, any ``_target_``) is ever resolved or called.
"""

from __future__ import annotations

import json
import math
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import torch

from beadseg.data.io import MAGIC
from beadseg.files import atomic_write
from beadseg.settings import DATA, Field, SettingError

# What inference reads of a checkpoint beside the network, checked like any setting.
STORED = {"threshold": Field(float, low=0.0, high=1.0, open_low=True, open_high=True),
          "peak_threshold": Field(float, low=0.0, high=1.0, open_high=True, nullable=True),
          "bead_area": Field(float, low=0.0, high=1e6, open_low=True, nullable=True),
          "bead_diameter": Field(float, low=1.0, high=1000.0, nullable=True),
          "class_names": Field(str, pattern=r"[A-Za-z0-9][\w .()-]{0,63}", items=(2, 1000), nullable=True)}
# the recipe's fields as the training settings check them (data.normalization.*): one range for both
NORMALIZATION = {key.rsplit(".", 1)[1]: field for key, field in DATA.items() if key.startswith("data.normalization.")}
SPLITS = ("train", "val", "test", "unused")
# The archive torch.load reads: a zip of uncompressed records (torch never compresses them). Bounded before it is
# opened, so that a small file cannot make beadseg inflate gigabytes.
MAX_RECORDS = 100_000
MAX_INFLATED_BYTES = 4 * 2**30  # all records together, as stored
MAX_RATIO = 20.0  # a record's stored size over its compressed size (1 for torch's own)


class CheckpointError(ValueError):
    """A checkpoint that is missing, damaged, or holds more than weights and settings."""


def run_checkpoint(path: str | Path) -> Path:
    """``ckpt=`` as given: a checkpoint file, or a beadseg-train run directory, whose ``result.json`` names its
    checkpoint (the tuned one when the run tuned its thresholds)."""
    path = Path(path)
    if not path.is_dir():
        return path
    try:
        record = json.loads((path / "result.json").read_text()) if (path / "result.json").stat().st_size < 2**20 else {}
    except (OSError, ValueError, RecursionError):
        record = {}
    chosen = record.get("checkpoint") if isinstance(record, dict) else None
    if not chosen or not isinstance(chosen, str):
        raise CheckpointError(f"ckpt={path} is a folder but no finished beadseg-train run (its result.json names no "
                              "checkpoint): give the checkpoint file, e.g. ckpt=<run>/checkpoints/<best>.ckpt")
    return path / chosen  # a relative path is the run's own (an absolute one stays as it is)


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
    check_archive(path)
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


def check_archive(path: Path) -> None:
    """Refuse, before it is read, an archive that would inflate beyond :data:`MAX_INFLATED_BYTES`, holds more than
    :data:`MAX_RECORDS` records or a record compressed more than :data:`MAX_RATIO` times (a zip bomb); a file that
    is no zip (torch's legacy format) is left to torch.load's own checks."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            records = archive.infolist()
    except (zipfile.BadZipFile, OSError):
        return
    inflated = sum(record.file_size for record in records)
    worst = max((record.file_size / max(record.compress_size, 1) for record in records), default=1.0)
    if len(records) > MAX_RECORDS or inflated > MAX_INFLATED_BYTES or worst > MAX_RATIO:
        raise CheckpointError(f"ckpt={path}: refused: its archive holds {len(records)} records inflating to "
                              f"{inflated / 2**20:.0f} MB (compressed up to {worst:.0f}x); accepts at most "
                              f"{MAX_RECORDS} records, {MAX_INFLATED_BYTES / 2**30:g} GB and {MAX_RATIO:g}x")


def check_stored(settings: dict, checkpoint: dict) -> None:
    """Every plain value inference reads of a checkpoint, typed and bounded (:data:`STORED`, the normalisation
    recipe, the split), before anything is allocated from it; a :class:`SettingError` names the field."""
    for key, field in STORED.items():
        if key in settings:
            field.check(settings[key], key)
    normalization = settings.get("normalization")
    if normalization is not None:
        if not isinstance(normalization, dict) or set(normalization) - set(NORMALIZATION):
            raise SettingError(f"normalization={str(normalization)[:80]}: accepts a mapping of "
                               f"{', '.join(NORMALIZATION)}")
        for key, value in normalization.items():
            NORMALIZATION[key].check(value, f"normalization.{key}")
        if normalization.get("method", "percentile") == "percentile" and \
                not normalization.get("low", 1.0) < normalization.get("high", 99.8):
            raise SettingError(f"normalization.low={normalization.get('low')}, high={normalization.get('high')}: "
                               "accepts low < high")
        if normalization.get("method") in ("dataset_max", "fixed") and not (
                normalization.get("vmax") is not None and (normalization.get("vmin") or 0.0) < normalization["vmax"]):
            raise SettingError(f"normalization.vmin={normalization.get('vmin')}, vmax={normalization.get('vmax')}: "
                               "accepts vmin < vmax")
    split = checkpoint.get("beadseg_split")
    if split is not None and not (isinstance(split, dict) and len(split) <= 10_000_000 and all(
            isinstance(name, str) and len(name) <= 4096 and part in SPLITS for name, part in split.items())):
        raise SettingError(f"beadseg_split: accepts a mapping of image names to {', '.join(SPLITS)}")


def module_settings(path: str | Path) -> tuple[dict, dict]:
    """The checkpoint and its settings, whose ``net`` is a validated network description
    (:func:`~beadseg.models.registry.describe`; a checkpoint written before descriptions is translated), or a
    :class:`CheckpointError` naming what is refused."""
    from beadseg.models.registry import describe

    checkpoint = read_checkpoint(path)
    if not isinstance(checkpoint.get("hyper_parameters"), dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise CheckpointError(f"ckpt={path}: not a beadseg checkpoint (no hyper_parameters or state_dict)")
    settings = dict(checkpoint["hyper_parameters"])
    if "net" not in settings:
        raise CheckpointError(f"ckpt={path}: refused: it describes no network (no net setting)")
    try:
        settings["net"] = describe(settings["net"], "net")
        check_stored(settings, checkpoint)
    except SettingError as error:
        raise CheckpointError(f"ckpt={path}: refused: its setting {error}") from None
    return checkpoint, settings


def learned_diameter(hparams: dict) -> float | None:
    """The bead diameter (px) a checkpoint's model learned: stored as ``bead_diameter``, else the equivalent
    diameter of its stored ``bead_area`` (checkpoints written before diameters were stored), else ``None``.

    Examples
    --------
    >>> learned_diameter({"bead_diameter": 7.5}), round(learned_diameter({"bead_area": 44.0}), 2)
    (7.5, 7.48)
    """
    if hparams.get("bead_diameter"):
        return float(hparams["bead_diameter"])
    return math.sqrt(4 * float(hparams["bead_area"]) / math.pi) if hparams.get("bead_area") else None


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
    from beadseg.models.registry import build_network

    checkpoint, settings = module_settings(path)
    try:
        network = Network(build_network(settings["net"]), settings, checkpoint)
    except SettingError as error:  # a network larger than the registry builds
        raise CheckpointError(f"ckpt={path}: refused: {error}") from None
    if task is not None and network.task != task:
        what = {"segment": "a segmentation", "classify": "a classification"}
        raise CheckpointError(f"ckpt={path} holds {what[network.task]} model; this command needs {what[task]} one")
    weights = {key[len("net."):]: value for key, value in checkpoint["state_dict"].items() if key.startswith("net.")}
    try:
        network.net.load_state_dict(weights)
    except RuntimeError as error:
        raise CheckpointError(
            f"ckpt={path}: its weights do not fit its own network ({str(error).splitlines()[0]})"
        ) from None
    network.net.eval()
    return network


def checkpoint_split(ckpt: str | None) -> dict[str, str]:
    """Which image the checkpoint's training run put in which split (empty without a checkpoint)."""
    return (module_settings(ckpt)[0].get("beadseg_split") or {}) if ckpt else {}


def write_tuned_checkpoint(ckpt: Path, threshold: float, out: Path, peak_threshold: float | None = None) -> Path:
    """A copy of the checkpoint whose stored threshold is ``threshold`` (and peak threshold, for a centre-map
    model; the original stays as it was), at :func:`tuned_checkpoint_path`."""
    target = tuned_checkpoint_path(ckpt, out)
    if target.exists():
        raise FileExistsError(f"{target} exists already; beadseg never overwrites a checkpoint")
    checkpoint = read_checkpoint(ckpt)
    checkpoint["hyper_parameters"]["threshold"] = float(threshold)
    if peak_threshold is not None:
        checkpoint["hyper_parameters"]["peak_threshold"] = float(peak_threshold)
    with atomic_write(target) as partial:  # a save killed half way leaves no file to block the retry
        torch.save(checkpoint, partial)
    return target


def tuned_checkpoint_path(ckpt: Path, out: Path) -> Path:
    """Where :func:`write_tuned_checkpoint` writes ``ckpt``'s tuned copy: beside it, or in ``out`` for the
    shipped model (the installed package is not written to).

    Examples
    --------
    >>> tuned_checkpoint_path(Path("run/checkpoints/epoch004.ckpt"), Path("eval")).as_posix()
    'run/checkpoints/epoch004.tuned.ckpt'
    """
    from beadseg.pretrained import CHECKPOINT

    return (out if ckpt.resolve() == CHECKPOINT else ckpt.parent) / f"{ckpt.stem}.tuned.ckpt"


PATH_STATE = ("best_model_path", "last_model_path", "kth_best_model_path", "dirpath")  # callback state naming files


def _inside(path: str, folder: Path) -> bool:
    try:
        return Path(path).resolve().is_relative_to(folder.resolve())
    except (OSError, ValueError, TypeError):
        return False



def check_optimiser_state(checkpoint: dict, path: str | Path) -> None:
    """Refuse optimiser state that does not belong to the checkpoint's parameters: a tensor larger than the
    largest parameter, or more state than a few copies of them (Adam keeps two), before Lightning restores it.

    Raises
    ------
    CheckpointError
        Naming the optimiser state and its size.
    """
    weights = [value.numel() for value in checkpoint["state_dict"].values() if isinstance(value, torch.Tensor)]
    largest, total = max(weights, default=0), sum(weights)
    for index, optimiser in enumerate(checkpoint.get("optimizer_states") or []):
        state = optimiser.get("state", {}) if isinstance(optimiser, dict) else {}
        tensors = [value for entry in (state.values() if isinstance(state, dict) else []) if isinstance(entry, dict)
                   for value in entry.values() if isinstance(value, torch.Tensor)]
        held = sum(tensor.numel() for tensor in tensors)
        if any(tensor.numel() > largest for tensor in tensors) or held > 4 * total + 1024:
            raise CheckpointError(f"ckpt_path={path}: refused: its optimizer_states[{index}] holds {held} values for "
                                  f"{total} weights (at most {largest} per tensor): state of another network")

def trusted_resume(path: str | Path, run_dir: Path) -> tuple[Path, list[str]]:
    """A copy of the checkpoint ``path`` (in ``run_dir``) whose callback state names no file outside ``run_dir``
    (resolved, symlinks followed): Lightning would delete a "previous best" such state names when a better one is
    saved. What is dropped is listed, one line each; scores and counters are kept."""
    checkpoint, _ = module_settings(path)
    check_optimiser_state(checkpoint, path)
    dropped = []
    for name, state in (checkpoint.get("callbacks") or {}).items():
        if not isinstance(state, dict):
            continue
        for key in PATH_STATE:
            value = state.get(key)
            if value and not (isinstance(value, str) and _inside(value, run_dir)):
                state[key] = ""
                dropped.append(f"{str(name)[:60]}: {key}={str(value)[:120]!r}")
        models = state.get("best_k_models")
        if isinstance(models, dict):
            outside = [key for key in models if not (isinstance(key, str) and _inside(key, run_dir))]
            for key in outside:
                del models[key]
            dropped += [f"{str(name)[:60]}: best_k_models[{str(key)[:120]!r}]" for key in outside]
    copy = run_dir / f"resumed_from.{os.getpid()}.ckpt"  # one per process: DDP ranks each make their own
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, copy)
    return copy, dropped
