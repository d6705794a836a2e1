"""beadseg-predict against the network alone on the same frames, with the CPU cost of every stage around it.

    python benchmarks/pipeline.py                      # 16 frames of 1440x1080, 16 bit (the lab's camera)
    python benchmarks/pipeline.py --frames 240 --workers 0 1 4 8 15

Frames: synthetic 16-bit TIFFs of the lab's camera size with a dilution series' spread of densities (50 to 1000
beads a frame, log-uniform, touching clusters and specks). The shipped model on the CPU, or on the GPU when one is
present (the table says which).

- network alone: the frames already normalised in memory, each resized as beadseg-predict resizes it for the
  network (the bead size it estimates, or none with ``image.bead_diameter=model``), through the network in the
  predictor's own batches, maps brought back to the host; measured again right before each beadseg-predict run
  (this machine's speed drifts by several per cent within minutes);
- stages: median milliseconds of one core per frame for reading (with the normalisation bounds and the image's
  noise), the default bead-size estimate, normalising and handing the frame to a worker, post-processing (beads,
  debris, measurements) and writing the default outputs (mask, labels, overlay, record), each timed alone where
  beadseg-predict runs it (the last two in a finishing worker, with the threshold and peaks found by the network's
  step); the finishing pool's frames/s on the main process's threads (post_workers=0) and in 1, 2... worker
  processes;
- beadseg-predict: the whole command (in this process, as the CLI runs it, start-up and tables included) for
  each ``post_workers`` count and once with the bead size not estimated, ``--repeats`` times: seconds per frame
  beside its own network-alone reference, the median difference, the run's own time outside its network passes
  (free of the machine's drift between runs), that time as a share of the passes (free of the machine's speed,
  as far as both slow down alike) and the part of it before the first pass (start-up: the model loaded,
  the loader started, the first step's frames read and sized; a fixed cost, spread here over 16 frames), and
  whether its tables equal the first run's.
"""

from __future__ import annotations

import argparse
import filecmp
import math
import pickle
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir

from beadseg.beads.postprocess import PostProcess
from beadseg.beads.size import BeadSizing
from beadseg.config import CONFIG_DIR
from beadseg.data.io import open_image
from beadseg.data.synthetic import render_beads
from beadseg.inference.finish import find_beads, finish_frame, write_frame
from beadseg.inference.frame import Frame
from beadseg.inference.predict import predict
from beadseg.inference.predictor import ModelPredictor, load_predictor
from beadseg.inference.task import InputImages
from beadseg.inference.tiling import to_device
from beadseg.inference.writers import OutputOptions
from beadseg.system import usable_cpus
from beadseg.workers.handover import SharedBlocks
from beadseg.workers.pool import WorkerPool

HEIGHT, WIDTH = 1080, 1440
FINISHING = "the main process's threads between passes (CPU), finishing workers (GPU)"
RUNS_IN = {"read + bounds + noise": "loader workers", "size estimate (image.bead_diameter=auto)": "loader workers",
           "normalise + hand over": "the network's process", "post-process": FINISHING, "write": FINISHING}


def make_frames(folder: Path, count: int, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(count):
        beads = int(np.exp(rng.uniform(np.log(50), np.log(1000))) * WIDTH**2 / (HEIGHT * WIDTH))
        image, _ = render_beads(rng, WIDTH, n_beads=beads, bit_depth=16, n_debris=int(rng.integers(0, 40)))
        paths.append(folder / f"frame_{index:04d}.tif")
        tifffile.imwrite(paths[-1], image[:HEIGHT])
    return paths


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def network_alone(predictor, images: list[np.ndarray], zooms: list[float]) -> float:
    """Frames/s of the bare network on normalised frames, each resized beforehand by the zoom beadseg-predict
    gives it (so that the network sees the pixels it sees there), in the predictor's batches, maps copied back."""
    frames = []
    for image, zoom in zip(images, zooms):
        frame = torch.from_numpy(predictor.normalization(image))[None, None]
        if zoom != 1:
            mode = {"mode": "bicubic"} if zoom > 1 else {"mode": "bilinear", "antialias": True}
            frame = F.interpolate(frame, scale_factor=zoom, align_corners=False, **mode)
        frames.append(frame)
    with torch.no_grad():
        predictor.tile_model(to_device(frames[0].numpy(), predictor.device))  # warm-up
        sync(predictor.device)
        start = time.perf_counter()
        first = 0
        while first < len(frames):
            batch = max(1, predictor.per_pass(frames[first].shape[-2] * frames[first].shape[-1]))
            same = [f for f in frames[first : first + batch] if f.shape == frames[first].shape]
            maps, _ = predictor.tile_model(to_device(torch.cat(same).numpy(), predictor.device))
            maps.float().cpu().numpy()
            first += len(same)
        sync(predictor.device)
    return len(images) / (time.perf_counter() - start)


def timed_finish(frame: Frame, out: Path, options: OutputOptions, post: PostProcess) -> tuple[float, float]:
    """A frame finished as beadseg-predict's workers finish it: seconds of this process's CPU post-processing it,
    then writing it."""
    start = time.process_time()
    beads = find_beads(frame, post)
    found = time.process_time()
    write_frame(frame, beads, out, options)
    return found - start, time.process_time() - found


def stages(predictor, sizing: BeadSizing, paths: list[Path], work: Path) -> tuple[dict[str, float], dict[int, float]]:
    """Median ms of one core per frame for each stage outside the network, each timed where beadseg-predict runs
    it: reading with the normalisation bounds and the noise, and the size estimate ``sizing`` (loader workers),
    normalising and handing a frame to a worker (the network's process), post-processing and writing (a finishing
    worker); and the finishing pool's frames/s by worker count."""
    post = PostProcess().for_model(predictor)
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        options = OutputOptions.from_config(compose("predict", overrides=["input=none"]), len(paths))  # the default outputs
    for sub in ("masks", "instances", "overlays"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    times: dict[str, list[float]] = {stage: [] for stage in RUNS_IN}
    results = []
    loader = InputImages(paths, list(range(len(paths))), predictor.normalization)
    for index in range(len(paths)):
        start = time.process_time()
        frame = loader[index]  # what a loader worker does
        times["read + bounds + noise"].append(time.process_time() - start)
        frame.image = frame.image.numpy()
        start = time.process_time()
        sizing.for_frame(frame.image)  # what a loader worker adds by default
        times["size estimate (image.bead_diameter=auto)"].append(time.process_time() - start)
        frame.maps, frame.uncertainty, frame.found = predictor.predict_frames([frame.image], post, [frame.bounds])[0]
        results.append(frame)
    blocks = SharedBlocks(1)
    for result in results:  # the network is done: every stage below has the cores to itself
        start = time.process_time()
        predictor.normalization.apply(result.image, result.bounds)
        block, placed = blocks.place((result, work, options, post))
        pickle.dumps(placed, protocol=pickle.HIGHEST_PROTOCOL)
        times["normalise + hand over"].append(time.process_time() - start)
        blocks.release(block)
    blocks.close()
    finishing = []
    with WorkerPool(1, finishing.append) as pool:
        for result in results:
            pool.submit(timed_finish, result, work, options, post)
    times["post-process"], times["write"] = zip(*finishing)
    counts = sorted({0} | {count for count in (1, 2, 4, 8, 16) if count < usable_cpus()} | {usable_cpus()})
    rates = {workers: finishing_rate(results, work, options, post, workers,
                                     max(2, math.ceil(4 * workers / len(results)))) for workers in counts}
    return {stage: 1000 * statistics.median(values) for stage, values in times.items()}, rates


def ready(seconds: float) -> None:
    """A worker with beadseg's finishing imported, held a moment so that each worker gets one of these."""
    import beadseg.inference.finish  # noqa: F401

    time.sleep(seconds)


def finishing_rate(results: list[Frame], work: Path, options: OutputOptions, post: PostProcess,
                   workers: int, rounds: int = 2) -> float:
    """Frames/s the finishing pool alone sustains with ``workers`` processes, the maps at hand (as from a GPU
    faster than the pool): how post-processing and writing scale with cores."""
    with WorkerPool(workers, lambda record: None) as pool:
        list(pool.executor.map(ready, [0.5] * workers))  # every worker started before the clock runs
        start = time.perf_counter()
        for result in results * rounds:
            pool.submit(finish_frame, result, work, options, post)
        pool.drain()
        return len(results) * rounds / (time.perf_counter() - start)


def run_predict(frames: Path, out: Path, workers: int, *overrides: str) -> tuple[float, float, float]:
    """Seconds the whole beadseg-predict command took, the seconds its network's passes took within it (each
    pass timed where the predictor makes it: what the rest of the run adds, free of the drift between runs), and
    the seconds before its first pass (start-up: the model loaded, the loader started, the first step's frames
    read and sized)."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("predict", overrides=[f"input={frames}", f"output={out}", f"post_workers={workers}",
                                            f"paths.output_dir={out}", "+trainer.enable_progress_bar=false",
                                            *overrides])
    passes = []  # (start, seconds) of each pass
    untimed = ModelPredictor.tile_model

    def timed(self, tiles, zoom=1.0):
        begin = time.perf_counter()
        maps = untimed(self, tiles, zoom)
        sync(self.device)
        passes.append((begin, time.perf_counter() - begin))
        return maps

    ModelPredictor.tile_model = timed
    try:
        start = time.perf_counter()
        predict(cfg)
        return time.perf_counter() - start, sum(seconds for _, seconds in passes), passes[0][0] - start
    finally:
        ModelPredictor.tile_model = untimed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each command, each after its reference")
    parser.add_argument("--output", type=Path, default=None, help="also write the table (markdown) here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        (work / "frames").mkdir()
        paths = make_frames(work / "frames", args.frames)
        predictor = load_predictor(None)
        device = predictor.device
        card = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({usable_cpus()} cores)"
        images = [np.asarray(open_image(p)) for p in paths]
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            sizing = BeadSizing.from_config(compose("predict", overrides=["input=none"]).image, predictor.bead_diameter)
        zooms = [sizing.for_frame(image).zoom for image in images]  # what the default image.bead_diameter=auto gives
        reference = {"auto": zooms, "model": [1.0] * len(images)}
        cost, rates = stages(predictor, sizing, paths[: min(len(paths), 12)], work / "stages")
        commands = [(f"post_workers={workers}", workers, (), "auto") for workers in args.workers]
        commands.append((f"post_workers={args.workers[0]}, image.bead_diameter=model (no per-frame size estimate)",
                         args.workers[0], ("image.bead_diameter=model",), "model"))
        pairs: dict[str, list[tuple[float, float]]] = {what: [] for what, *_ in commands}  # (alone, predict) s/frame
        outside: dict[str, list[float]] = {what: [] for what, *_ in commands}  # s/frame outside its network passes
        before: dict[str, list[float]] = {what: [] for what, *_ in commands}  # s/frame of it before the first pass
        share: dict[str, list[float]] = {what: [] for what, *_ in commands}  # outside / the passes: speed-free
        same: dict[str, bool] = {}
        for _ in range(args.repeats):  # each run beside its own reference: this machine's speed drifts by minutes
            for what, workers, overrides, kind in commands:
                alone = 1 / network_alone(predictor, images, reference[kind])
                out = work / f"predict_{len(pairs[what])}_{workers}_{kind}"
                wall, network, startup = run_predict(work / "frames", out, workers, *overrides)
                pairs[what].append((alone, wall / len(paths)))
                outside[what].append((wall - network) / len(paths))
                before[what].append(startup / len(paths))
                share[what].append((wall - network) / network)
                first = work / f"predict_0_{args.workers[0]}_{kind}"
                same[what] = same.get(what, True) and all(
                    filecmp.cmp(first / table, out / table, shallow=False) for table in ("counts.csv", "objects.csv"))
    resized = sum(zoom != 1 for zoom in zooms)
    lines = [f"# beadseg-predict vs the network alone: {len(paths)} frames of {WIDTH}x{HEIGHT}, 16 bit",
             "", f"Device: {card}; {platform.processor() or platform.machine()}, torch {torch.__version__}; "
             f"network batches of {predictor.per_pass(HEIGHT * WIDTH)} frame(s); {resized} of {len(paths)} frames "
             f"resized for the network by the estimated bead size (zooms {min(zooms):.2f}-{max(zooms):.2f}), the same "
             "in the network-alone reference of the runs that estimate it.", "",
             "| stage (outside the network) | runs in | ms of one core per frame (median) |", "|---|---|---:|"]
    lines += [f"| {stage} | {RUNS_IN[stage]} | {ms:.1f} |" for stage, ms in cost.items()]
    lines += [f"| **total** | | **{sum(cost.values()):.1f}** |", "",
              "| finishing pool alone (maps at hand) | frames/s | vs 1 worker |", "|---|---:|---:|"]
    lines += [f"| {f'{workers} worker(s)' if workers else f'threads of the network process ({usable_cpus()})'} | "
              f"{rate:.1f} | {rate / rates[1]:.2f} |" for workers, rate in rates.items()]
    lines += ["", f"| run ({args.repeats} runs, each right after the network alone on the same frames and pixels) | "
              "s per frame: network alone | beadseg-predict | vs network alone | s per frame beyond the network "
              "(median) | s per frame outside the run's own network passes | as a share of those passes | of it, "
              "before the first pass (start-up) | tables equal in every run |", "|---|---|---|---|---:|---|---|---|---|"]
    for what, _, _, _ in commands:
        alone_s, predict_s = zip(*pairs[what])
        beyond = statistics.median(p - a for a, p in pairs[what])
        lines.append(f"| beadseg-predict {what} | {' / '.join(f'{a:.2f}' for a in alone_s)} | "
                     f"{' / '.join(f'{p:.2f}' for p in predict_s)} | "
                     f"{' / '.join(f'{a / p:.2f}' for a, p in pairs[what])} | {beyond:.2f} | "
                     f"{' / '.join(f'{o:.3f}' for o in outside[what])} | "
                     f"{' / '.join(f'{x:.1%}' for x in share[what])} | "
                     f"{' / '.join(f'{b:.3f}' for b in before[what])} | {'yes' if same[what] else 'NO'} |")
    table = "\n".join(lines)
    print(table)
    if args.output:
        args.output.write_text(table + "\n")


if __name__ == "__main__":
    main()
