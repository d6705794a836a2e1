"""``beadseg-analyze data.root=DIR``: fingerprint, label QA and a recommended experiment for a folder data set."""

from __future__ import annotations

from omegaconf import DictConfig

from beadseg.cli.app import beadseg_app


@beadseg_app("analyze")
def main(cfg: DictConfig) -> None:
    from beadseg.analysis.analyze import analyze

    written = analyze(cfg)
    print(f"beadseg-analyze: report {written['report']}; recommended experiment {written['recommended']}"
          + (f"; corrected masks in {written['fixed_masks']}" if "fixed_masks" in written else ""))


if __name__ == "__main__":
    main()
