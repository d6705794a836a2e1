"""``beadseg-analyze data.root=DIR``: fingerprint, label QA and a recommended experiment for a folder data set."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from beadseg.config import CONFIG_DIR


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="analyze")
def main(cfg: DictConfig) -> None:
    from beadseg.analysis.analyze import analyze

    written = analyze(cfg)
    print(f"beadseg-analyze: report {written['report']}; recommended experiment {written['recommended']}"
          + (f"; corrected masks in {written['fixed_masks']}" if "fixed_masks" in written else ""))


if __name__ == "__main__":
    main()
