"""The default experiment (``make train``): wall time and best validation Jaccard, beside other recipes.

Each recipe is ``beadseg-train`` with its overrides, run as a user runs it (a fresh process, the built-in synthetic
data, the machine's cores), one after the other in this one run, so that the ratios compare like with like:

    python benchmarks/default_experiment.py                         # the default beside the old default (fp32, 40 epochs)
    python benchmarks/default_experiment.py --recipe "model.base_channels=12 trainer.max_epochs=26"   # any other

The table gives each recipe's wall time (and its ratio to the default's), epochs, time per epoch and the best
validation Jaccard with its epoch (``result.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# the default before 2026-12-04 (issue 29 asked for the same val Jaccard in half its time)
OLD_DEFAULT = "trainer.precision=32-true model.base_channels=16 optimizer.lr=1e-3 scheduler=plateau trainer.max_epochs=40"


def run_recipe(overrides: list[str], run_dir: Path) -> dict:
    """``beadseg-train`` with ``overrides`` into ``run_dir``: its wall time and ``result.json``."""
    started = time.perf_counter()
    done = subprocess.run([BIN / "beadseg-train", *overrides, f"hydra.run.dir={run_dir}", "callbacks.progress_bar=null"],
                          capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"beadseg-train {' '.join(overrides)} failed:\n{done.stderr[-3000:]}")
    return {"seconds": seconds, **json.loads((run_dir / "result.json").read_text())}


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {seconds % 60:04.1f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", action="append", default=None,
                        help=f"overrides of a recipe to run beside the default (default: {OLD_DEFAULT!r})")
    parser.add_argument("--work", type=Path, default=ROOT / "outputs" / "benchmarks"
                        / f"default_experiment_{time.strftime('%Y%m%d_%H%M%S')}")
    args = parser.parse_args()
    recipes = [("default (make train)", [])] + [(text, shlex.split(text)) for text in (args.recipe or [OLD_DEFAULT])]
    rows = []
    for index, (name, overrides) in enumerate(recipes):
        print(f"[{index + 1}/{len(recipes)}] beadseg-train {' '.join(overrides)}", flush=True)
        result = run_recipe(overrides, args.work / f"recipe{index}")
        rows.append({"recipe": name, **result})
    base = rows[0]["seconds"]
    print(f"\nbeadseg-train on {os.cpu_count()} CPU cores ({time.strftime('%Y-%m-%d')}):\n")
    print("| recipe | wall time | ratio | epochs | per epoch | best val Jaccard (epoch) |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['recipe']} | {minutes(row['seconds'])} | {row['seconds'] / base:.2f} | {row['epochs_run']} | "
              f"{row['seconds'] / row['epochs_run']:.1f} s | {row['best_score']:.4f} ({row['best_epoch']}) |")


if __name__ == "__main__":
    main()
