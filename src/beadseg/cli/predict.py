"""``beadseg-predict ckpt=PATH input=FILE_OR_DIR output=DIR``: masks, instances, overlays and counts."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from beadseg.cli.app import beadseg_app


@beadseg_app("predict")
def main(cfg: DictConfig) -> None:
    from beadseg.inference.predict import predict

    result = predict(cfg)
    if result.get("rank"):
        return
    print(f"beadseg-predict: {result['done']} images, {result['beads']} beads -> {result['output']} "
          "(counts.csv, objects.csv, masks/, instances/, overlays/)")
    if cfg.group_regex and result["done"]:
        dilution_report(cfg, Path(result["output"]))
    if result["failed"]:
        names = ", ".join(f["image"] for f in result["failed"])
        print(f"beadseg-predict: {len(result['failed'])} input(s) could not be read: {names} (see errors.csv)", file=sys.stderr)
    if result["missing"]:
        print(f"beadseg-predict: {len(result['missing'])} input(s) not done; continue with "
              f"output={result['output']} resume=true", file=sys.stderr)
    if result["failed"] or result["missing"]:
        sys.exit(1)


def dilution_report(cfg: DictConfig, out: Path) -> None:
    """The dilution-series report of the run's counts, where ``group_regex`` finds numeric dilutions."""
    with open(out / "counts.csv", newline="") as handle:
        counts = list(csv.DictReader(handle))
    try:
        written = instantiate(cfg.dilution).write(counts, cfg.group_regex, out)
    except ValueError as error:
        print(f"beadseg-predict: no dilution report: {error}", file=sys.stderr)
        return
    print(f"beadseg-predict: dilution report -> {written['text']} (table, figure)")


if __name__ == "__main__":
    main()
