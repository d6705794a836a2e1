"""``beadseg-qc data.root=DIR``: frame quality control, ``qc.csv`` and the list of kept frames."""

from __future__ import annotations

import time
from pathlib import Path

from omegaconf import DictConfig

from beadseg.cli.app import beadseg_app
from beadseg.data.readers import PlaneChoice


@beadseg_app("qc")
def main(cfg: DictConfig) -> None:
    from hydra.utils import instantiate

    from beadseg.analysis.qc import run_qc

    started = time.time()
    result = run_qc(
        Path(cfg.data.root),
        Path(cfg.out),
        instantiate(cfg.qc),
        instantiate(cfg.detector),
        workers=cfg.workers,
        symlinks=cfg.symlinks,
        plane=PlaneChoice.from_config(cfg.get("image")),
    )
    rate = result["frames"] / max(time.time() - started, 1e-9)
    print(f"beadseg-qc: {result['frames']} frames ({rate:.0f}/s), {result['kept']} kept, flagged {result['flags']} "
          f"-> {result['out'] / 'qc.csv'}, {result['out'] / 'kept.txt'}")


if __name__ == "__main__":
    main()
