"""Where the Hydra configs live and the resolvers they use."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

PACKAGE_DIR = Path(__file__).resolve().parent
# Installed from a wheel the configs ship inside the package; in a source checkout they sit at the top.
CONFIG_DIR = next(
    (path for path in (PACKAGE_DIR / "conf", PACKAGE_DIR.parents[1] / "conf") if (path / "train.yaml").is_file()),
    PACKAGE_DIR / "conf",
)


def default_precision() -> str:
    """Mixed precision on a GPU, full precision on the CPU (where fp16/bf16 autocast is slower or unsupported)."""
    import torch  # only when a config asks: keeps --help fast

    return "16-mixed" if torch.cuda.is_available() else "32-true"


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def task_metric(monitor: str) -> str:
    """The metric's short name for file names: val/jaccard -> jaccard."""
    return monitor.rsplit("/", 1)[-1]


def unique_suffix() -> str:
    """A short token that keeps run directories apart when two runs start in the same second (cached per config,
    like Hydra's ``now``, so a sweep and all its jobs share one)."""
    import os
    import secrets

    return f"{os.getpid() % 0x10000:04x}{secrets.token_hex(2)}"


def density_edges() -> list[int]:
    """The bead-density bins' upper edges, defined once (beadseg.data.split) for the split and the analysis."""
    from beadseg.data.split import DENSITY_EDGES

    return list(DENSITY_EDGES)


def shipped_model() -> str:
    """The shipped bead model's checkpoint (``init_from: ${beadseg.shipped_model:}``)."""
    from beadseg.pretrained import CHECKPOINT

    return str(CHECKPOINT)


OmegaConf.register_new_resolver("beadseg.density_edges", density_edges, replace=True)
OmegaConf.register_new_resolver("beadseg.shipped_model", shipped_model, replace=True)
OmegaConf.register_new_resolver("beadseg.unique", unique_suffix, use_cache=True, replace=True)
OmegaConf.register_new_resolver("beadseg.precision", default_precision, replace=True)
OmegaConf.register_new_resolver("task_metric", task_metric, replace=True)
OmegaConf.register_new_resolver("beadseg.cuda", cuda_available, replace=True)


class ConfigError(ValueError):
    """A setting of the wrong type or out of range; the message names the key."""


# key: (type, lowest, highest, inclusive low) -- checked before any data is read; absent keys are skipped.
TRAIN_RULES = {
    "optimizer.lr": (float, 0.0, None, False),
    "optimizer.weight_decay": (float, 0.0, None, True),
    "data.batch_size": (int, 1, None, True),
    "data.val_batch_size": (int, 1, None, True),
    "data.patch_size": (int, 8, None, True),
    "data.patches_per_image": (int, 1, None, True),
    "data.val_fraction": (float, 0.0, 1.0, True),
    "data.test_fraction": (float, 0.0, 1.0, True),
    "data.train_fraction": (float, 0.0, 1.0, False),
    "data.foreground_oversample": (float, 0.0, 1.0, True),
    "data.cache_mb": (float, 0.0, None, True),
    "model.dropout": (float, 0.0, 1.0, True),
    "model.base_channels": (int, 1, None, True),
    "trainer.max_epochs": (int, 1, None, True),
    "seed": (int, None, None, True),
}


def check_settings(cfg, rules: dict = TRAIN_RULES) -> None:
    """Refuse, by key, a setting whose value has the wrong type or lies out of range (``optimizer.lr=abc``)."""
    for key, (kind, low, high, inclusive) in rules.items():
        value = OmegaConf.select(cfg, key, default=None)
        if value is None:
            continue
        bad_type = isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int)
        if bad_type:
            raise ConfigError(f"{key}={value!r}: must be {'a number' if kind is float else 'a whole number'}")
        too_low = low is not None and (value < low if inclusive else value <= low)
        too_high = high is not None and value > high
        if too_low or too_high:
            bounds = " and ".join(
                part for part in (f"{'at least' if inclusive else 'above'} {low}" if low is not None else "",
                                  f"at most {high}" if high is not None else "") if part)
            raise ConfigError(f"{key}={value!r}: must be {bounds}")
