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
    """16-bit mixed precision on a GPU; bf16 mixed precision on a CPU that computes in bf16 natively (AVX-512 BF16
    or AMX: the old default experiment trained 1.65 times as fast on such a CPU); full precision on other CPUs, where
    bf16 is emulated
    and slower.

    Examples
    --------
    >>> default_precision() in ("16-mixed", "bf16-mixed", "32-true")
    True
    """
    import torch  # only when a config asks: keeps --help fast

    if torch.cuda.is_available():
        return "16-mixed"
    return "bf16-mixed" if native_bf16_cpu() else "32-true"


def native_bf16_cpu() -> bool:
    """Whether this CPU computes in bf16 natively (AVX-512 BF16 or AMX tiles), as PyTorch reports it."""
    import torch

    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch.cpu's, private: absent in some versions
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)


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


def settings_help(command: str) -> str:
    """``--help``'s list of the command's checked settings and what each accepts (:mod:`beadseg.settings`)."""
    from beadseg.settings import settings_help as listed

    return listed(command) or "  (none beyond the config's own types)"


OmegaConf.register_new_resolver("beadseg.settings_help", settings_help, replace=True)


def configured_postprocess(**changes):
    """The :class:`~beadseg.beads.postprocess.PostProcess` that ``conf/postprocess/default.yaml`` describes (the
    defaults every command composes), with ``changes``: for callers outside a Hydra app (the napari widget), so
    that the defaults live in one place."""
    from beadseg.beads.postprocess import PostProcess

    settings = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "postprocess" / "default.yaml"))
    settings.pop("_target_")
    return PostProcess(**{**settings, **changes})
