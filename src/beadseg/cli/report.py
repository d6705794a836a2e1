"""``beadseg-report dir=DIR``: figures and REPORT.md of a run or a sweep, read from its logs."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from beadseg.cli.app import beadseg_app


@beadseg_app("report")
def main(cfg: DictConfig) -> None:
    from beadseg.report.writer import write_report

    print(f"beadseg-report: {write_report(Path(cfg.dir), cfg.target_jaccard, cfg.adequacy_bar)} (figures beside it)")


if __name__ == "__main__":
    main()
