"""``beadseg-predict ckpt=PATH input=FILE_OR_DIR output=DIR``: masks, instances, overlays and counts."""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig

from beadseg.cli.app import beadseg_app

OUTPUTS = ("counts.csv", "objects.csv", "debris.csv", "group_counts.csv", "regions.csv", "masks/", "instances/",
           "overlays/", "rois/", "probability/", "centres/", "uncertainty/")


@beadseg_app("predict")
def main(cfg: DictConfig) -> None:
    from beadseg.inference.predict import predict

    result = predict(cfg)
    if result.get("rank"):
        return
    out = Path(result["output"])
    written = ", ".join(name for name in OUTPUTS if (out / name.rstrip("/")).exists())
    groups = f", {result['groups']} groups in group_counts.csv" if result.get("groups") else ""
    print(f"beadseg-predict: {result['done']} images, {result['beads']} beads{groups} -> {out} ({written})")
    if result.get("dilution_report"):
        print(f"beadseg-predict: dilution report -> {result['dilution_report']} (table, figure)")
    if result.get("dilution_note"):
        print(f"beadseg-predict: no dilution report: {result['dilution_note']}", file=sys.stderr)
    if result["failed"]:
        names = ", ".join(f["image"] for f in result["failed"])
        print(
            f"beadseg-predict: {len(result['failed'])} input(s) could not be read: {names} (see errors.csv)",
            file=sys.stderr,
        )
    if result["missing"]:
        print(f"beadseg-predict: {len(result['missing'])} input(s) not done; continue with "
              f"output={result['output']} resume=true", file=sys.stderr)
    if result["failed"] or result["missing"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
