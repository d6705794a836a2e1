"""Every setting a user can give, typed and range-checked in one place, before any data is read or output claimed.

One mechanism serves the commands' settings (:data:`SETTINGS`, checked by :func:`check_settings`, shown by
``--help``) and the network descriptions checkpoints carry (:mod:`beadseg.models.registry`): a :class:`Field`
says a value's type and what it accepts, and an error is one line naming the key and what it accepts.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

MISSING = object()


class SettingError(ValueError):
    """A setting of the wrong type or out of range; the message names the key and what it accepts."""


def shown(value: Any, limit: int = 80) -> str:
    """``repr(value)`` for an error line, cut to about ``limit`` characters (a value may be megabytes long).

    Examples
    --------
    >>> shown("x" * 1000)
    "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx... (1002 characters)"
    """
    text = repr(value) if not isinstance(value, (list, dict, tuple, str)) or len(value) < 10_000 else \
        f"{type(value).__name__} of {len(value)}"
    return text if len(text) <= limit else text[: limit - 20] + f"... ({len(text)} characters)"


Entry = TypeVar("Entry")


def chosen(registry: Mapping[str, Entry], value: Any, key: str) -> Entry:
    """The entry of ``registry`` (its keys the one list of those names) that the setting ``key`` names; a
    :class:`SettingError` naming ``key`` and the names there are otherwise.

    Examples
    --------
    >>> chosen({"small": 3, "large": 40}, "large", "bead_kind")
    40
    >>> chosen({"small": 3, "large": 40}, "huge", "bead_kind")
    Traceback (most recent call last):
    ...
    beadseg.settings.SettingError: bead_kind='huge': accepts one of small, large
    """
    return registry[Field(str, choices=tuple(registry)).check(value, key)]


@dataclass(frozen=True)
class Field:
    """One typed setting: its type (``int``, ``float``, ``bool``, ``str``, or ``re.Pattern`` for a regex), a default,
    and what it accepts: an inclusive range (``low``, ``high``; ``open_low``/``open_high`` leave an end out), a set
    of choices, a name pattern, the only values allowed, ``also`` (words beside the type, e.g. ``auto``),
    ``nullable`` (null allowed), ``or_index`` (a name, or an index: a whole number ≥ 0), ``items`` (a list of
    (fewest, most) values, each accepted as the rest says) and, for a regex, the capture groups it needs.

    Examples
    --------
    >>> Field(float, low=0, open_low=True).check(1e-3, "optimizer.lr")
    0.001
    >>> Field(float, low=0, open_low=True).check(float("nan"), "optimizer.lr")
    Traceback (most recent call last):
    ...
    beadseg.settings.SettingError: optimizer.lr=nan: accepts a finite number > 0
    """

    kind: type
    default: Any = None
    low: float | None = None
    high: float | None = None
    choices: tuple | None = None
    pattern: str | None = None
    only: tuple | None = None
    nullable: bool = False
    also: tuple = ()
    open_low: bool = False
    open_high: bool = False
    groups: int = 0
    or_index: bool = False
    items: tuple[int, int] | None = None

    def accepts(self) -> str:
        if self.items is not None:
            fewest, most = self.items
            return (f"a list of {fewest} to {most} values, each " if fewest else f"a list of up to {most} values, each "
                    ) + replace(self, items=None).accepts()
        if self.only is not None:
            return " or ".join("null" if value is None else repr(value) for value in self.only)
        if self.choices:
            text = "one of " + ", ".join(map(str, self.choices))
        elif self.kind is re.Pattern:
            text = "a regular expression" + (f" with {self.groups} capture group" if self.groups else "")
        elif self.or_index:
            text = "a name (one line, up to 256 characters) or an index ≥ 0"
        elif self.pattern:
            text = f"a name matching {self.pattern}"
        else:
            text = {int: "a whole number", float: "a finite number", bool: "true or false", str: "text"}[self.kind]
            bounds = [f"{'>' if self.open_low else '≥'} {self.low:g}" if self.low is not None else "",
                      f"{'<' if self.open_high else '≤'} {self.high:g}" if self.high is not None else ""]
            text = " ".join([text, " and ".join(b for b in bounds if b)]).strip()
        extras = [*map(str, self.also), *(["null"] if self.nullable else [])]
        return text + (f", or {' or '.join(extras)}" if extras else "")

    def check(self, value: Any, where: str) -> Any:
        """``value`` if this field accepts it (a whole number stands for a float), else a :class:`SettingError`."""
        if value is None and self.nullable:
            return value
        if self.items is not None:
            if isinstance(value, (list, tuple)) and self.items[0] <= len(value) <= self.items[1]:
                each = replace(self, items=None)
                return [each.check(item, f"{where}[{index}]") for index, item in enumerate(value)]
        elif self.only is not None:
            if any(value == allowed and type(value) is type(allowed) for allowed in self.only):
                return value
        elif (value is None and self.nullable) or (isinstance(value, str) and value in self.also):
            return value
        elif self.or_index and isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        elif self._typed(value) and self._in_range(value):
            return float(value) if self.kind is float else value
        raise SettingError(f"{where}={shown(value)}: accepts {self.accepts()}")

    def _typed(self, value: Any) -> bool:
        if self.kind is bool:
            return isinstance(value, bool)
        if self.kind is int:
            return isinstance(value, int) and not isinstance(value, bool)
        if self.kind is float:
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                return False
            try:
                return math.isfinite(value)
            except OverflowError:  # a whole number too large for a float
                return False
        if self.kind is re.Pattern:
            if not isinstance(value, str):
                return False
            try:
                return re.compile(value).groups >= self.groups
            except re.error:
                return False
        return isinstance(value, str)

    def _in_range(self, value: Any) -> bool:
        if self.choices is not None:
            return value in self.choices
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            return False
        if self.kind not in (int, float):
            return True
        above = self.low is None or (value > self.low if self.open_low else value >= self.low)
        below = self.high is None or (value < self.high if self.open_high else value <= self.high)
        return above and below


PROBABILITY = Field(float, low=0.0, high=1.0)
COUNT = Field(int, low=1)
POSTPROCESS = {
    "postprocess.threshold": Field(float, low=0.0, high=1.0, open_low=True, open_high=True, nullable=True),
    "postprocess.fill_holes": Field(bool),
    "postprocess.watershed": Field(bool),
    "postprocess.split_depth": Field(float, low=0.0),
    "postprocess.min_area": Field(int, low=0),
    "postprocess.max_area": Field(int, low=1, nullable=True),
    "postprocess.min_circularity": Field(float, low=0.0, high=2.0),
    "postprocess.peak_threshold": Field(float, low=0.0, high=1.0, open_high=True, nullable=True),
    "postprocess.peak_distance": Field(int, low=1),
    "postprocess.split_area_ratio": Field(float, low=1.0, open_low=True, nullable=True),
    "postprocess.max_clump_beads": Field(float, low=2.0),
    "postprocess.particle_area_ratio": Field(float, low=1.0, open_low=True, nullable=True),
    "postprocess.particle_min_circularity": Field(float, low=0.0, high=2.0),
    "postprocess.particle_max_texture": Field(float, low=0.0, open_low=True),
    "postprocess.debris_area_fraction": Field(float, low=0.0, high=1.0, nullable=True),
    "postprocess.min_contrast_snr": Field(float, low=0.0, nullable=True),
    "postprocess.min_bead_contrast_snr": Field(float, low=0.0, nullable=True),
    "postprocess.bead_area": Field(float, low=0.0, open_low=True, nullable=True),
    "postprocess.edge_rule": Field(str, choices=("gundersen", "none")),
    "postprocess.chunk": Field(int, low=64),
    "postprocess.halo": Field(int, low=0),
}
INFERENCE = {
    "inference.tile": Field(int, low=32, high=16384),
    "inference.window": Field(int, low=32, high=8192),
    "inference.overlap": Field(int, low=0),
    "inference.batch_pixels": Field(int, low=1, also=("auto",)),
    "inference.blend": Field(str, choices=("gaussian", "cosine", "constant")),
    "inference.tta": Field(bool),
    "inference.mc_samples": Field(int, low=0),
    "inference.amp": Field(bool, nullable=True),
}
CORES = os.cpu_count() or 1
MAX_WORKERS = max(4 * CORES, 16)  # processes a setting may ask for: a few per core at most, never thousands
WORKERS = Field(int, low=0, high=MAX_WORKERS, also=("auto",))
IMAGE = {
    "image.pixel_size_um": Field(float, low=0.0, open_low=True, nullable=True),
    "image.bead_diameter": Field(float, low=1.0, high=4096.0, also=("auto", "model")),
    "image.bead_diameter_um": Field(float, low=0.0, high=10000.0, open_low=True, nullable=True),
    "image.diameter_tolerance": Field(float, low=1.0, high=4.0),
    "image.require_pixel_size": Field(bool),
    "image.scene": Field(str, pattern=r"[^\n]{1,256}", or_index=True, nullable=True),
    "image.channel": Field(str, pattern=r"[^\n]{1,256}", or_index=True, nullable=True),
    "image.z": Field(int, low=0, nullable=True),
    "image.t": Field(int, low=0, nullable=True),
}
DETECTOR = {
    "detector.polarity": Field(str, choices=("auto", "dark", "bright")),
    "detector.threshold": Field(float, low=0.0, open_low=True),
    "detector.min_distance": COUNT,
    "detector.background_size": Field(int, low=3),
    "detector.smooth_sigma": Field(float, low=0.0),
}
SOURCE = {
    "n_images": Field(int, low=0),
    "image_size": Field(int, low=16),
    "min_beads": Field(int, low=0),
    "max_beads": Field(int, low=0),
    "cluster_fraction": Field(float, low=0.0, high=1.0, nullable=True),
    "empty_fraction": PROBABILITY,
    "max_debris": Field(int, low=0),
    "touching_fraction": PROBABILITY,
    "modality": Field(str, choices=("brightfield", "fluorescence", "inverted", "ringed", "haloed", "mixed", "any")),
    "bit_depth": Field(int, choices=(8, 16), also=("mixed",)),
    "bead_diameter": IMAGE["image.bead_diameter"],
}
# Settings known by their last name wherever they sit (an augmentation's ``p``, a scheduler's ``factor``, ...).
BY_NAME = {
    "p": PROBABILITY,
    "lr": Field(float, low=0.0, open_low=True),
    "min_lr": Field(float, low=0.0),
    "eta_min": Field(float, low=0.0),
    "weight_decay": Field(float, low=0.0),
    "momentum": PROBABILITY,
    "factor": Field(float, low=0.0, high=1.0, open_low=True, open_high=True),
    "patience": Field(int, low=0),
    "min_delta": Field(float, low=0.0),
    "save_top_k": Field(int, low=-1),
    "every_n_epochs": COUNT,
    "max_images": Field(int, low=0),
    "minutes": Field(float, low=0.0, open_low=True, nullable=True),
    "seed": Field(int),
    "gamma": Field(float, low=0.0),
    "smooth": Field(float, low=0.0),
    "ignore_index": Field(int),
}
DATA = {  # a training data module's settings (beadseg-train, beadseg-pack)
    "data.batch_size": Field(int, low=1, high=4096),
    "data.val_batch_size": Field(int, low=1, high=4096),
    "data.patch_size": Field(int, low=8, high=4096),
    "data.patches_per_image": Field(int, low=1, high=10_000),
    "data.val_fraction": Field(float, low=0.0, high=1.0, open_high=True),
    "data.test_fraction": Field(float, low=0.0, high=1.0, open_high=True),
    "data.train_fraction": Field(float, low=0.0, high=1.0, open_low=True),
    "data.foreground_oversample": PROBABILITY,
    "data.cache_mb": Field(float, low=0.0),
    "data.group_by": Field(re.Pattern, nullable=True),
    "data.num_workers": WORKERS,
    "data.ignore_unlabelled": Field(bool),
    "data.bead_truth": Field(str, choices=("area", "watershed")),
    "data.normalization.method": Field(str, choices=("percentile", "dataset_max", "fixed")),
    "data.normalization.low": Field(float, low=0.0, high=100.0),
    "data.normalization.high": Field(float, low=0.0, high=100.0),
    "data.normalization.vmin": Field(float, nullable=True),
    "data.normalization.vmax": Field(float, nullable=True),
    "data.test_groups": Field(str, pattern=r"[^\n]{1,256}", items=(0, 100_000), nullable=True),
}
QA = {  # label QA: how a mask is judged against the beads the image shows
    "qa.min_labelled_fraction": PROBABILITY,
    "qa.min_offset_px": Field(float, low=0.0),
    "qa.min_offset_confidence": PROBABILITY,
    "qa.max_shift": Field(int, low=0, high=64),
    "qa.max_empty_label_fraction": PROBABILITY,
    "qa.size_ratio_range": Field(float, low=0.0, open_low=True, items=(2, 2)),
}
SETTINGS: dict[str, dict[str, Field]] = {
    "train": {
        **DATA,
        "optimizer.lr": Field(float, low=0.0, open_low=True),
        "optimizer.weight_decay": Field(float, low=0.0),
        "data.composites_per_image": Field(float, low=0.0),
        "data.composite_frames": Field(re.Pattern, nullable=True),
        "data.synthetic_modality": SOURCE["modality"],
        "data.annotations": Field(str, choices=("masks", "points")),
        "trainer.max_epochs": COUNT,
        "seed": Field(int),
        "module.threshold": Field(float, low=0.0, high=1.0, open_low=True, open_high=True),
        "module.match_distance": Field(float, low=0.0, open_low=True),
        "tune_thresholds.thresholds": Field(float, low=0.0, high=1.0, open_low=True, open_high=True, items=(1, 64)),
        "tune_thresholds.peak_thresholds": Field(float, low=0.0, high=1.0, open_high=True, items=(0, 64)),
        "module.object_metrics": Field(bool),
        "target.channels": Field(int, choices=(1, 2)),
        "target.centres.sigma": Field(float, low=0.0, high=64.0, open_low=True),
        "target.centres.weight": Field(float, low=0.0),
        "target.centres.loss.alpha": Field(float, low=0.0),
        "target.centres.loss.beta": Field(float, low=0.0),
        "data.synthetic_images": Field(int, low=0, high=100_000),
        "adequacy_bar": PROBABILITY,
        "loss.weights.bce": Field(float, low=0.0),
        "loss.weights.dice": Field(float, low=0.0),
        "loss.terms.dice.from_logits": Field(bool),
        "scheduler.interval": Field(str, choices=("epoch", "step")),
        "test": Field(bool),
        "monitor": Field(str, pattern=r"(train|val)/\w+"),
        "monitor_mode": Field(str, choices=("min", "max")),
        **{f"data.source.{key}": field for key, field in SOURCE.items()},
        **IMAGE,
    },
    "predict": {
        **POSTPROCESS, **INFERENCE, **IMAGE, **DETECTOR,
        "method.name": Field(str, choices=("checkpoint", "classical")),
        "num_workers": WORKERS,
        "post_workers": WORKERS,
        "frames_per_step": Field(int, low=1, high=256, also=("auto",)),
        "save_probability": Field(bool),
        "save_uncertainty": Field(bool),
        "overlay_max_side": Field(int, low=16),
        "overlay_compression": Field(int, low=0, high=9),
        "tiff_compression": Field(str, choices=("zlib", "none")),
        "save_debris": Field(bool),
        "group_regex": Field(re.Pattern, nullable=True, groups=1),
        "dilution.confidence": Field(float, low=0.0, high=1.0, open_low=True, open_high=True),
        "dilution.tolerance": Field(float, low=0.0),
        "dilution.volume_ul": Field(float, low=0.0, open_low=True, nullable=True),
        "dilution.depth_um": Field(float, low=0.0, open_low=True, nullable=True),
        "regions": Field(str, nullable=True),
        "flag_uncertainty": Field(float, low=0.0),
        "resume": Field(bool),
    },
    "eval": {
        **POSTPROCESS, **INFERENCE, **IMAGE, **DETECTOR, **QA,
        "method.name": Field(str, choices=("checkpoint", "classical")),
        "match_distance": Field(float, low=0.0, open_low=True),
        "min_iou": Field(float, low=0.0, high=1.0, open_low=True),
        "thresholds": Field(float, low=0.0, high=1.0, open_low=True, open_high=True, items=(0, 64)),
        "peak_thresholds": Field(float, low=0.0, high=1.0, open_high=True, items=(0, 64)),
        "split": Field(str, choices=("all", "val", "test", "train")),
        "write_threshold": Field(bool),
        "worst_images": Field(int, low=0),
        "frames_per_step": Field(int, low=1, high=256, also=("auto",)),
        "post_workers": WORKERS,
    },
    "qc": {
        **DETECTOR, **IMAGE,
        "workers": Field(int, low=0, high=MAX_WORKERS),
        "symlinks": Field(bool),
        "qc.min_beads": Field(int, low=0),
        "qc.min_snr": Field(float, low=0.0, open_low=True),
        "qc.max_noise_ratio": Field(float, low=1.0),
        "qc.max_saturated": PROBABILITY,
        "qc.min_focus_ratio": Field(float, low=0.0, high=1.0),
    },
    "analyze": {
        **DETECTOR, **IMAGE,
        "fix": Field(bool),
        "add_missing": Field(bool),
        **QA,
    },
    "export": {
        "tile": Field(int, low=32, high=8192),
        "tolerance": Field(float, low=0.0, open_low=True, nullable=True),
    },
    "explain": {
        **IMAGE,
        "methods": Field(str, choices=("integrated_gradients", "occlusion"), items=(1, 2)),
        "window": Field(int, low=1, high=512),
    },
    "synth": {
        "n": COUNT,
        "size": Field(int, low=16, high=2048),
        "seed": Field(int, low=0),
        "modality": SOURCE["modality"],
        "bit_depth": SOURCE["bit_depth"],
        **{f"source.{key}": field for key, field in SOURCE.items()},
    },
    "report": {
        "target_jaccard": PROBABILITY,
        "adequacy_bar": PROBABILITY,
    },
    "pack": {
        **IMAGE, **DATA,
        "seed": Field(int, low=0),
        "workers": Field(int, low=1, high=MAX_WORKERS),
        "chunk_bytes": Field(str, pattern=r"0*[1-9]\d{0,5}(\.\d+)?\s*[KMGT]?B", also=()),
    },
}

# Settings no field here checks, and why. A test composes every command's config and fails on a leaf that is
# neither checked (SETTINGS, BY_NAME, the network registry for ``model.*``) nor named here.
FREE = {
    "task_name": "the name of the command's run folder",
    "ckpt": "a path, named when it is opened", "ckpt_path": "a path, named when it is opened",
    "init_from": "a path, named when it is opened", "predictions": "a path, named when it is opened",
    "compare": "a path, named when it is opened", "out_masks": "a path, named when it is opened",
    "data.root": "a path, named when it is opened", "data.csv_file": "a path, named when it is opened",
    "data.images": "a sub-folder name", "data.masks": "a sub-folder name", "data.source.points": "a sub-folder name",
    "target.centres": "false, or the centre target's settings (checked)",
    "data.source.images": "a sub-folder name", "data.source.masks": "a sub-folder name",
    "tune_thresholds": "null, or its lists (checked)",
    "overlays": "checked by beadseg.inference.writers.overlay_every, naming the key",
    "rois": "checked by beadseg.inference.writers.roi_kinds, naming the key",
    "label_format": "a name of the label writers' registry (beadseg.formats.images.LABEL_FORMATS), checked there, "
                    "naming the key",
    "format": "a name of the export registry (beadseg.packaging.export.EXPORTERS), checked there, naming the key",
    "inference.device": "a torch device name, checked by torch",
    "loss.terms.dice.mode": "smp's DiceLoss mode, checked by smp",
}
FREE_UNDER = {
    "model.": "the network registry checks the description (beadseg.models.registry)",
    "trainer.": "Lightning's Trainer checks its own arguments",
    "callbacks.": "Lightning's callbacks check their own arguments",
    "logger.": "Lightning's loggers check their own arguments",
    "augmentation.": "albumentations checks its transforms' arguments (their p is checked here)",
    "hydra.": "Hydra's own settings",
}

# Pairs of settings that bound a range: the first must stay below the second (a range never inverted).
RANGES = [("data.normalization.low", "data.normalization.high"), ("postprocess.min_area", "postprocess.max_area"),
          ("data.source.min_beads", "data.source.max_beads"), ("source.min_beads", "source.max_beads"),
          ("data.normalization.vmin", "data.normalization.vmax")]


def check_settings(cfg: Any, command: str) -> None:
    """Refuse, by key, the first setting of ``command`` (a key of :data:`SETTINGS`) whose value ``cfg`` gives with
    the wrong type or out of range, then any setting known by its name (:data:`BY_NAME`: an augmentation's ``p``,
    a scheduler's ``factor``) wherever it sits; keys the config does not hold are skipped.

    Parameters
    ----------
    cfg : DictConfig
        The command's composed config.
    command : str
        ``train``, ``predict``, ``eval``, ``qc``, ``analyze``, ``export``, ``explain``, ``synth``, ``report``,
        ``pack``.

    Raises
    ------
    SettingError
        One line naming the key, the value and what the key accepts.

    Examples
    --------
    >>> from omegaconf import OmegaConf
    >>> check_settings(OmegaConf.create({"dilution": {"confidence": 1.5}}), "predict")
    Traceback (most recent call last):
    ...
    beadseg.settings.SettingError: dilution.confidence=1.5: accepts a finite number > 0 and < 1
    >>> check_settings(OmegaConf.create({"augmentation": {"transforms": [{"p": 2}]}}), "train")
    Traceback (most recent call last):
    ...
    beadseg.settings.SettingError: augmentation.transforms.0.p=2: accepts a finite number ≥ 0 and ≤ 1
    """
    from omegaconf import OmegaConf

    for key, field in SETTINGS.get(command, {}).items():
        value = OmegaConf.select(cfg, key, default=MISSING, throw_on_missing=False)
        if value is MISSING:
            continue
        field.check(OmegaConf.to_container(value) if OmegaConf.is_config(value) else value, key)
    for key, value in _leaves(cfg):
        *parents, name = key.split(".")
        named = BY_NAME.get(name)
        if named is not None and key not in SETTINGS.get(command, {}):
            named.check(value, key)
        elif key.startswith("data.source.") and name in SOURCE and key not in SETTINGS.get(command, {}):
            SOURCE[name].check(value, key)  # a drawn source's setting, however deep the sources nest
        elif name.isdigit() and parents and parents[-1] in BY_NAME:  # a list where a value is meant
            whole = ".".join(parents)
            raise SettingError(f"{whole}={OmegaConf.to_container(OmegaConf.select(cfg, whole))}: accepts "
                               f"{BY_NAME[parents[-1]].accepts()}")
    for low_key, high_key in RANGES:
        low, high = (OmegaConf.select(cfg, key, default=None, throw_on_missing=False) for key in (low_key, high_key))
        if isinstance(low, (int, float)) and isinstance(high, (int, float)) and low >= high:
            raise SettingError(f"{low_key}={low}, {high_key}={high}: accepts {low_key} < {high_key}")


def _leaves(node: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """``(dotted key, value)`` of every plain value under ``node`` that resolves (Hydra's own settings left out)."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    keys: list[Any]
    if isinstance(node, DictConfig):
        keys = [key for key in node.keys() if not (prefix == "" and key == "hydra")]
    elif isinstance(node, ListConfig):
        keys = list(range(len(node)))
    else:
        return [(prefix, node)]
    leaves = []
    for key in keys:
        path = f"{prefix}.{key}" if prefix else str(key)
        if OmegaConf.is_missing(node, key) or OmegaConf.is_interpolation(node, key):
            continue  # an interpolation is checked where it points
        try:
            value = node[key]
        except Exception:  # a value that resolves only inside the run (a resolver of Hydra's runtime)
            continue
        leaves += _leaves(value, path) if OmegaConf.is_config(value) else [(path, value)]
    return leaves


def typed_like(default: Any) -> Field | None:
    """The field a setting's default implies, for settings no :data:`SETTINGS` entry or name rule covers: a
    true/false default takes true/false, a whole number a whole number, a number a finite number; text, lists and
    null say nothing.

    Examples
    --------
    >>> typed_like(0.5).check(float("nan"), "loss.weights.bce")
    Traceback (most recent call last):
    ...
    beadseg.settings.SettingError: loss.weights.bce=nan: accepts a finite number
    >>> typed_like("auto") is None
    True
    """
    if isinstance(default, bool):
        return Field(bool)
    if isinstance(default, int):
        return Field(int)
    if isinstance(default, float):
        return Field(float)
    return None


def check_against_defaults(cfg: Any, defaults: Any, keys: list[str], command: str) -> None:
    """Refuse the first of ``keys`` (the settings a command line gives) whose value in ``cfg`` is not of the kind
    its default in ``defaults`` (the same config without those settings) is, unless a field covers it already.

    Examples
    --------
    >>> from omegaconf import OmegaConf
    >>> check_against_defaults(OmegaConf.create({"loss": {"scale": "abc"}}),
    ...                        OmegaConf.create({"loss": {"scale": 0.5}}), ["loss.scale"], "train")
    Traceback (most recent call last):
    ...
    beadseg.settings.SettingError: loss.scale='abc': accepts a finite number
    """
    from omegaconf import OmegaConf

    for key in keys:
        if (
            key.startswith(("hydra.", "trainer."))
            or key in SETTINGS.get(command, {})
            or key.rsplit(".", 1)[-1] in BY_NAME
        ):
            continue  # Lightning checks its Trainer's own arguments; fields check theirs
        try:
            default = OmegaConf.select(defaults, key, default=None, throw_on_missing=False)
            value = OmegaConf.select(cfg, key, default=MISSING, throw_on_missing=False)
        except Exception:  # an interpolation that resolves only inside the run
            continue
        field = typed_like(default)
        if field is not None and value is not MISSING and not OmegaConf.is_config(value):
            field.check(value, key)


def settings_help(command: str) -> str:
    """The checked settings of ``command`` with what each accepts (``--help`` shows it).

    Examples
    --------
    >>> "dilution.confidence" in settings_help("predict")
    True
    """
    fields = SETTINGS.get(command, {})
    width = max((len(key) for key in [*fields, *BY_NAME]), default=0)
    named = "\n".join(f"  *.{key.ljust(width - 2)}  {field.accepts()}" for key, field in BY_NAME.items())
    listed = "\n".join(f"  {key.ljust(width)}  {field.accepts()}" for key, field in fields.items())
    return f"{listed}\n  wherever they sit:\n{named}\n  any other number or true/false: of its default's kind"
