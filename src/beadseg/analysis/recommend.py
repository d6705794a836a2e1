"""From the fingerprint to a training recipe (the nnU-Net idea, for beads), each choice with its reason."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf


def _next_power_of_two(value: float) -> int:
    return int(2 ** np.ceil(np.log2(max(value, 1))))


def recommend(summary: dict, names: list[str], root: str) -> tuple[dict, list[dict]]:
    """Config values for ``beadseg-train`` and one ``{setting, value, reason}`` per choice."""
    diameter = summary["bead_equivalent_diameter_px"]["median"] or 8.0
    positive = summary["positive_ratio"]["mean"] or 0.1
    smallest_side = min(int(side) for size in summary["image_sizes"] for side in size.split("x"))
    choices: list[dict] = []

    def choose(setting: str, value, reason: str) -> None:
        choices.append({"setting": setting, "value": value, "reason": reason})

    patch = int(np.clip(_next_power_of_two(16 * diameter), 64, 512))
    patch = min(patch, 2 ** int(np.log2(smallest_side)))  # no bigger than the smallest image
    choose(
        "data.patch_size",
        patch,
        f"beads are {diameter:.1f} px across: a {patch}² patch holds ~{patch / diameter:.0f} bead diameters of context",
    )
    batch = int(np.clip(8 * (256 // patch) ** 2, 4, 32))
    choose(
        "data.batch_size",
        batch,
        f"~{batch * patch * patch / 1e6:.1f} Mpx per batch fits a small GPU and keeps steps stable",
    )
    choose(
        "optimizer.lr",
        1e-3,
        "Adam at 1e-3 with the plateau schedule halving it; the bead count does not change the gradient scale of a "
        "per-pixel loss",
    )
    if positive < 0.05:
        choose(
            "loss",
            "dice_focal",
            f"beads cover only {positive:.1%} of the pixels: Dice (overlap) plus focal (hard pixels) resist the "
            "imbalance",
        )
    else:
        choose(
            "loss",
            "bce_dice",
            f"beads cover {positive:.1%} of the pixels: BCE + Dice is stable and optimises overlap directly",
        )
    bright_16bit = 16 in summary["bit_depths"] and summary["polarity"] == "bright"
    method = "dataset_max" if bright_16bit else "percentile"
    choose(
        "data.normalization.method",
        method,
        "16-bit fluorescence: dividing by the data set's maximum keeps brightness comparable between images"
        if bright_16bit
        else f"{'/'.join(map(str, summary['bit_depths']))}-bit {summary['polarity']} beads: per-image percentiles "
             "remove illumination and exposure differences",
    )
    augmentation = "heavy" if summary["images"] < 200 else "light"
    choose(
        "augmentation",
        augmentation,
        f"{summary['images']} images: "
        + ("heavy augmentation stretches a small set" if augmentation == "heavy"
           else "enough images for light augmentation"),
    )
    tiles = [re.match(r"^(.*)_grid_", name) for name in names]
    if any(tiles):
        captures = len({m.group(1) for m in tiles if m})
        choose(
            "data.group_by",
            "^(.*)_grid_",
            f"names hold _grid_ tiles of {captures} captures: keep each capture on one side of the split",
        )
    merged = summary.get("merged_fraction", 0.0)
    choose(
        "watershed",
        bool(merged > 0.05),
        f"{merged:.0%} of labelled objects are larger than 1.8× the median bead: touching beads "
        + (
            "need watershed separation to be counted"
            if merged > 0.05
            else "are rare; plain connected components count well"
        ),
    )
    choose("init_from", "${beadseg.shipped_model:}",
           "start from the shipped bead model (mask + bead-centre map, 16 base channels): it already knows beads, "
           "empty background and debris; the run fine-tunes it on these images")
    choose(
        "tune_thresholds",
        {"thresholds": [0.3, 0.4, 0.5, 0.6, 0.7], "peak_thresholds": [0.1, 0.15, 0.2, 0.3, 0.4, 0.5]},
        "tune the mask and peak thresholds on the run's own validation images and store them in its checkpoint: "
        "beadseg-predict ckpt=<the run> needs nothing more",
    )
    choose("data.root", str(Path(root).resolve()), "the analysed folder")
    return {c["setting"]: c["value"] for c in choices}, choices


def write_recommended(settings: dict, path: Path, source: str) -> Path:
    """A primary Hydra config that extends train.yaml: ``beadseg-train --config-dir DIR --config-name recommended``."""
    values = {k: v for k, v in settings.items() if k not in ("loss", "augmentation", "watershed")}
    body: dict = {}
    for dotted, value in values.items():
        node = body
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    body.setdefault("model", {})["base_channels"] = 16  # the shipped model's width (init_from)
    defaults = ["train", {"override data": "folder"}, {"override target": "centres"},
                {"override loss": settings["loss"]}, {"override augmentation": settings["augmentation"]}, "_self_"]
    header = (
        f"# Written by beadseg-analyze on {date.today()} for {source}.\n"
        f"# Train with:  beadseg-train --config-dir {path.parent.resolve()} --config-name {path.stem}\n"
        f"# (any override still works on top, e.g. trainer.max_epochs=200). Watershed separation: "
        f"{'recommended' if settings['watershed'] else 'not needed'}.\n"
    )
    yaml = OmegaConf.to_yaml(OmegaConf.create({"defaults": defaults, **body}))
    path.write_text(header + yaml)
    return path
