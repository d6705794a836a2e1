"""Scale: memory and time against data-set size and frame size (a benchmark, never run by CI).

    python benchmarks/scale.py                       # everything (about 30 GB of frames under --work, deleted after)
    python benchmarks/scale.py --only classify       # or: loader, predict, frame
    python benchmarks/scale.py --frames 1000 10000 --predict-frames 2000 --sizes 10000 20000

Every measured command runs as its own process under a small wrapper that reports the peak resident memory
(ru_maxrss) of the process tree's largest member; frames are synthetic 16-bit (1440x1080 like the lab's camera)
and are written under --work, outside the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import tifffile

from beadseg.tables import read_csv

BIN = Path(sys.executable).parent
HERE = Path(__file__).resolve().parent
PEAK = ("import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
        "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code)")


def measured(command: list, env: dict | None = None, timeout: float = 7200) -> dict:
    """Run ``command`` in a fresh process; its wall time, peak RSS (MiB) and output."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PEAK, *map(str, command)], capture_output=True, text=True,
                          env={**os.environ, **(env or {}), "SCALE_T0": str(time.time())}, timeout=timeout)
    line = next(text for text in done.stdout.splitlines() if text.startswith("PEAK_RSS_KB"))
    _, kb, code = line.split()
    if int(code) != 0:
        raise RuntimeError(f"{command[0]} failed:\n{done.stderr[-3000:]}")
    return {"seconds": time.perf_counter() - start, "peak_mib": int(kb) / 1024, "stdout": done.stdout, "stderr": done.stderr}


def frame_pool(count: int, height: int = 1080, width: int = 1440) -> list[tuple[str, np.ndarray]]:
    """``count`` distinct 16-bit fluorescence frames per class (no beads / 3-40 beads), 1440x1080."""
    from beadseg.data.synthetic import render_beads

    pool = []
    for index in range(2 * count):
        rng = np.random.default_rng([7, index])
        label = index % 2
        image, _ = render_beads(rng, width, int(rng.integers(3, 41)) * label, "fluorescence", bit_depth=16)
        pool.append((("empty", "beads")[label], np.ascontiguousarray(image[:height])))
    return pool


def write_frames(root: Path, count: int, pool: list) -> Path:
    """``count`` frames in class folders (the pool repeated; each file is its own 3 MB TIFF)."""
    if (root / "done").exists():
        return root
    for index in range(count):
        label, image = pool[index % len(pool)]
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(folder / f"frame_{index:06d}.tif", image)
    (root / "done").write_text(str(count))
    return root


def classify_command(root: Path, run: Path, steps: int) -> list:
    return [BIN / "beadseg-train", "task=classify", "data=classify", f"data.root={root}", "data.patch_size=64",
            "data.batch_size=16", "model.model_name=resnet18", f"+trainer.limit_train_batches={steps // 3}",
            "trainer.max_epochs=3", "+trainer.limit_val_batches=20", "callbacks.early_stopping=null",
            "+callbacks.first_step._target_=scale_probe.FirstStep", f"hydra.run.dir={run}"]


def bench_classify(work: Path, sizes: list[int], steps: int) -> list[dict]:
    pool = frame_pool(8)
    rows = []
    for count in sizes:
        root = write_frames(work / f"frames_{count}", count, pool)
        cold = measured(classify_command(root, work / f"run_cold_{count}", steps), {"PYTHONPATH": str(HERE)})
        warm = measured(classify_command(root, work / f"run_warm_{count}", steps), {"PYTHONPATH": str(HERE)})
        first_step = float(next(text for text in warm["stdout"].splitlines() if text.startswith("FIRST_STEP_S")).split()[1])
        rows.append({"frames": count, "steps": steps, "cold_s": cold["seconds"], "warm_s": warm["seconds"],
                     "first_step_warm_s": first_step, "peak_mib": warm["peak_mib"], "peak_cold_mib": cold["peak_mib"]})
        print(rows[-1], flush=True)
    return rows


def bench_loader(work: Path, count: int) -> dict:
    """Frames/s one loader worker delivers vs frames/s the model trains on (same batch size, same machine)."""
    import torch
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from beadseg.config import CONFIG_DIR
    from beadseg.datasets import build_datamodule

    root = write_frames(work / f"frames_{count}", count, frame_pool(8))
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", ["task=classify", "data=classify", f"data.root={root}", "data.num_workers=1",
                                "data.batch_size=16", f"paths.output_dir={work / 'loader_run'}"])
    datamodule = build_datamodule(cfg.data)
    datamodule.setup()
    loader = datamodule.train_dataloader()
    batches, start = 0, None
    while batches < 60:  # several epochs when the data set is small
        for batch in loader:  # noqa: B007 - the last batch feeds the timed steps below
            if start is None:
                start = time.perf_counter()  # the worker has started
                continue
            batches += 1
            if batches == 60:
                break
    loader_fps = batches * 16 / (time.perf_counter() - start)
    module = instantiate(cfg.module)
    optimizer = torch.optim.Adam(module.parameters(), 1e-3)
    images, labels = batch["image"], batch["label"]
    for step in range(23):
        if step == 3:
            start = time.perf_counter()
        loss = module.loss_fn(module(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model_fps = 20 * 16 / (time.perf_counter() - start)
    return {"loader_frames_per_s": loader_fps, "model_frames_per_s": model_fps, "ratio": loader_fps / model_fps}


def small_frames(root: Path, count: int, size: int = 128) -> Path:
    from beadseg.data.synthetic import render_beads

    if (root / f"frame_{count - 1:05d}.tif").exists():
        return root
    root.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        image, _ = render_beads(np.random.default_rng([11, index]), size, None, "brightfield", bit_depth=8)
        tifffile.imwrite(root / f"frame_{index:05d}.tif", image)
    return root


def predict_command(inputs: Path, out: Path, *extra: str) -> list:
    return [BIN / "beadseg-predict", f"input={inputs}", f"output={out}", f"hydra.run.dir={out.parent / (out.name + '_hydra')}",
            *extra]


def bench_predict(work: Path, count: int) -> dict:
    everything = small_frames(work / "small", count)
    first = work / "small_first"
    first.mkdir(exist_ok=True)
    for path in sorted(everything.iterdir())[: count // 10]:
        if not (first / path.name).exists():
            (first / path.name).symlink_to(path)
    runs = {name: work / f"pred_{name}" for name in ("first", "all", "killed")}
    for out in runs.values():
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(out.parent / (out.name + "_hydra"), ignore_errors=True)
    small = measured(predict_command(first, runs["first"]))
    full = measured(predict_command(everything, runs["all"]))
    process = subprocess.Popen(list(map(str, predict_command(everything, runs["killed"]))), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    while process.poll() is None:
        parts = list((runs["killed"] / "parts").glob("*.jsonl")) if (runs["killed"] / "parts").is_dir() else []
        if sum(p.read_text().count("\n") for p in parts) >= count // 2:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.2)
    process.wait()
    killed_at = sum(p.read_text().count("\n") for p in (runs["killed"] / "parts").glob("*.jsonl"))
    resumed = measured(predict_command(everything, runs["killed"], "resume=true"))
    identical = all((runs["killed"] / t).read_bytes() == (runs["all"] / t).read_bytes() for t in ("counts.csv", "objects.csv"))
    beads = sum(int(r["count"]) for r in read_csv(runs["all"] / "counts.csv"))
    return {"frames": count, "first_frames": count // 10, "peak_first_mib": small["peak_mib"], "peak_all_mib": full["peak_mib"],
            "all_s": full["seconds"], "beads": beads, "killed_after": killed_at, "resume_s": resumed["seconds"],
            "identical_tables": identical}


def bench_frame(work: Path, side: int) -> dict:
    """One side x side 16-bit frame made of synthetic 2048² bright-field tiles, predicted with the shipped model."""
    from beadseg.data.synthetic import render_beads

    path = work / f"frame_{side}" / f"frame_{side}.tif"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tile, _ = render_beads(np.random.default_rng(5), 2048, 3000, "brightfield", bit_depth=16)
        frame = tifffile.memmap(path, shape=(side, side), dtype=np.uint16)
        for top in range(0, side, 2048):
            for left in range(0, side, 2048):
                block = frame[top : top + 2048, left : left + 2048]
                block[:] = tile[: block.shape[0], : block.shape[1]]
        frame.flush()
        del frame
    out = work / f"pred_frame_{side}"
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(out.parent / (out.name + "_hydra"), ignore_errors=True)
    run = measured(predict_command(path.parent, out))
    count = read_csv(out / "counts.csv")[0]["count"]
    return {"side": side, "megapixels": side * side / 1e6, "peak_mib": run["peak_mib"], "seconds": run["seconds"],
            "beads": int(count)}


def table(rows: list[dict]) -> str:
    def cell(value):
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(cell(v) for v in row.values()) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/beadseg-scale"))
    parser.add_argument("--only", choices=["classify", "loader", "predict", "frame"], action="append")
    parser.add_argument("--frames", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--predict-frames", type=int, default=2000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 20000])
    parser.add_argument("--keep", action="store_true", help="keep the generated frames")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    wanted = set(args.only or ["classify", "loader", "predict", "frame"])
    results = {}
    if "classify" in wanted:
        rows = bench_classify(args.work, args.frames, args.steps)
        results["classify"] = rows
        print("\nbeadseg-train task=classify on class folders of 1440x1080 16-bit TIFF frames\n" + table(rows), flush=True)
    if "loader" in wanted:
        results["loader"] = bench_loader(args.work, args.frames[0])
        print("\nOne loader worker vs the model's training step (ResNet-18, 64² crops, batch 16)\n"
              + table([results["loader"]]), flush=True)
    if "predict" in wanted:
        results["predict"] = bench_predict(args.work, args.predict_frames)
        print("\nbeadseg-predict on small frames (128², shipped model), killed at half and resumed\n"
              + table([results["predict"]]), flush=True)
    if "frame" in wanted:
        rows = [bench_frame(args.work, side) for side in args.sizes]
        results["frame"] = rows
        print("\nbeadseg-predict on one huge 16-bit frame (shipped model)\n" + table(rows), flush=True)
    (args.work / "scale_results.json").write_text(json.dumps(results, indent=2, default=str))
    if not args.keep:
        for folder in args.work.glob("frames_*"):
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
