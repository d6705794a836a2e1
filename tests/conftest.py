"""Shared fixtures: composing beadseg configs in-process, tiny data folders, the lab's real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from beadseg.config import CONFIG_DIR
from tests.helpers import write_pair

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "microbeads" / "real"


def _share_the_cores() -> None:
    """Under pytest-xdist, each worker (and every process its tests start) gets its share of the cores: torch's
    default of one thread per core in every worker makes their OpenMP threads fight (a 25 s training took 160 s
    beside another)."""
    import os

    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        import torch

        threads = max(1, len(os.sched_getaffinity(0)) // workers)
        os.environ["OMP_NUM_THREADS"] = str(threads)  # the CLI processes tests start read it
        torch.set_num_threads(threads)


_share_the_cores()


@pytest.fixture(autouse=True, scope="session")
def manifest_cache(tmp_path_factory):
    """Manifests of read-only data folders go to a temporary cache, not the user's; runs a test does not place
    itself go to a temporary folder, not the checkout's outputs/."""
    import os

    os.environ["BEADSEG_CACHE_DIR"] = str(tmp_path_factory.mktemp("beadseg-cache"))
    os.environ["BEADSEG_LOG_DIR"] = str(tmp_path_factory.mktemp("runs"))  # runs a test does not place: never outputs/
    yield


@pytest.fixture
def compose_config():
    """``compose_config(name, overrides)`` -> the composed config, as the CLI would see it."""

    def _compose(name: str = "train", overrides: list[str] | None = None) -> DictConfig:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            return compose(config_name=name, overrides=overrides or [])

    return _compose


@pytest.fixture
def predict_here(compose_config, tmp_path):
    """``predict_here(*overrides)``: beadseg-predict's work in this process, as Python calls it (``image.*`` reaches
    the readers with the config, as on the command line), for tests whose point is not the command line: no 7 s
    of imports in a new interpreter."""
    from beadseg.inference.predict import predict

    def run(*overrides: str) -> dict:
        return predict(compose_config("predict", [f"paths.output_dir={tmp_path / 'predict_run'}", *overrides]))

    return run


@pytest.fixture
def bead_folder(tmp_path: Path) -> Path:
    """Three 32x40 16-bit images with one bright square bead each."""
    root = tmp_path / "beads"
    for index in range(3):
        mask = np.zeros((32, 40), np.uint8)
        mask[5 + index : 12 + index, 8:15] = 255
        image = (1000 + 20000 * (mask > 0)).astype(np.uint16)
        write_pair(root, f"img{index}", image, mask)
    return root


@pytest.fixture
def real_data() -> Path:
    if not (REAL_DATA / "images").is_dir():
        pytest.skip(f"the lab's real bead images are not at {REAL_DATA} (they sit beside the checkout in shared/)")
    return REAL_DATA
