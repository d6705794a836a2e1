"""Retraining from the napari widget: the real-bead preset fine-tuned on a folder of corrected frames, run as an
ordinary ``beadseg-train`` in a child process (training imports torchvision and torch._dynamo, which kill napari
under software OpenGL when imported beside a viewer; a child process also keeps the viewer's memory its own).
Its epoch lines drive the widget's progress; Cancel interrupts it as Ctrl-C would (the run records where it
stopped and how to resume, nothing half-written)."""

from __future__ import annotations

import json
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

from beadseg.data.io import BeadDataError, list_images

EPOCH_LINE = re.compile(r"^epoch (\d+)/(\d+):.*?(?:about (.+?) left)?\]?$")
LIMIT_HOURS = 12.0  # a retraining still running after this long is stopped (the widget never waits without end)
STOP_GRACE_S = 60  # after Cancel, how long the run may take to record its interruption before it is killed


class RetrainCancelled(Exception):
    """The user pressed Cancel: the run was interrupted and says how to resume it."""


def retrain_command(folder: Path, checkpoint: str | None, run_dir: Path, overrides: Sequence[str] = ()) -> list[str]:
    """The ``beadseg-train`` command line of a retraining: the real-bead preset on ``folder`` from ``checkpoint``
    (the shipped model when ``None``), written to ``run_dir``. Each saved frame is its own group of the split
    (``data.group_by=null``): frames saved from tiles of one capture still leave one to validate on.

    Examples
    --------
    >>> retrain_command(Path("fixes"), None, Path("fixes/runs/1"))[2:]
    ['beadseg.cli.train', 'experiment=microbeads_real', 'data.root=fixes', 'data.group_by=null', \
'hydra.run.dir=fixes/runs/1']
    """
    start = [f"init_from={checkpoint}"] if checkpoint else []
    return [sys.executable, "-m", "beadseg.cli.train", "experiment=microbeads_real", f"data.root={folder}",
            "data.group_by=null", *start, f"hydra.run.dir={run_dir}", *overrides]


def retrain(folder: str | Path, checkpoint: str | None, on_epoch: Callable[[int, int, str], None],
            cancelled: Callable[[], bool], overrides: Sequence[str] = (), limit_hours: float = LIMIT_HOURS) -> dict:
    """Fine-tune on the corrected frames of ``folder`` (``images/`` and ``masks/``, as the widget saves them) and
    return the run's ``result.json`` (its ``checkpoint`` is the tuned best one). ``on_epoch(done, total, left)``
    follows the epochs; ``cancelled()`` is polled five times a second.

    Raises
    ------
    BeadDataError
        ``folder`` holds fewer than two saved frames (one trains, one validates).
    RetrainCancelled
        ``cancelled()`` became true (or ``limit_hours`` passed): the run was interrupted.
    RuntimeError
        The run failed: the message ends with the last lines it printed.
    """
    folder = Path(folder)
    saved = len(list_images(folder / "images")) if (folder / "images").is_dir() else 0
    if not saved:
        raise BeadDataError(f"{folder} holds no saved frame: count an image, correct it, press Save first")
    if saved < 2:
        raise BeadDataError(f"{folder} holds one saved frame: save a second (one frame trains, one checks the "
                            "retraining), then retrain")
    run_dir = folder / "runs" / time.strftime("%Y-%m-%d_%H-%M-%S")
    while run_dir.exists():
        run_dir = run_dir.with_name(run_dir.name + "_")
    process = subprocess.Popen(retrain_command(folder, checkpoint, run_dir, overrides), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, bufsize=1)
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_forward, args=(process, lines), daemon=True).start()
    tail: deque[str] = deque(maxlen=20)
    deadline = time.monotonic() + limit_hours * 3600
    while True:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            line = ""
        if line is None:
            break
        if line:
            tail.append(line.rstrip())
            match = EPOCH_LINE.match(line.strip())
            if match:
                on_epoch(int(match[1]), int(match[2]), match[3] or "")
        if cancelled() or time.monotonic() > deadline:
            _interrupt(process)
            raise RetrainCancelled(f"retraining cancelled; its run: {run_dir}")
    if process.wait() != 0 or not (run_dir / "result.json").is_file():
        raise RuntimeError(f"beadseg-train failed (exit {process.returncode}): " + " | ".join(list(tail)[-4:]))
    return json.loads((run_dir / "result.json").read_text())


def _forward(process: subprocess.Popen, lines: queue.Queue) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        lines.put(line)
    lines.put(None)


def _interrupt(process: subprocess.Popen) -> None:
    """Ctrl-C to the run (it records its interruption), then kill it if it has not ended in ``STOP_GRACE_S``."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
