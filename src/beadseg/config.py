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


OmegaConf.register_new_resolver("beadseg.precision", default_precision, replace=True)
OmegaConf.register_new_resolver("task_metric", task_metric, replace=True)
OmegaConf.register_new_resolver("beadseg.cuda", cuda_available, replace=True)
