"""``beadseg-predict ckpt=PATH input=FILE_OR_DIR output=DIR``: masks, instances, overlays and counts."""

from __future__ import annotations

import sys

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
    if result["failed"]:
        names = ", ".join(f["image"] for f in result["failed"])
        print(f"beadseg-predict: {len(result['failed'])} input(s) could not be read: {names} (see errors.csv)", file=sys.stderr)
    if result["missing"]:
        print(f"beadseg-predict: {len(result['missing'])} input(s) not done; continue with "
              f"output={result['output']} resume=true", file=sys.stderr)
    if result["failed"] or result["missing"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
