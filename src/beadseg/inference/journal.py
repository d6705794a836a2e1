"""The run journal of ``beadseg-predict``: the output folder claimed with the run's settings, one JSON line per
finished frame in each process's own part file, and what a resumed run finds done.

A frame's line is written (and synced) only once its files are in place, so a line is a promise that the files
are whole; a line cut short by a kill is ignored, and ``resume=true`` redoes that frame.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import IO, cast

from omegaconf import DictConfig, OmegaConf

from beadseg.files import remove_stale_partials
from beadseg.inference.writers import OUTPUT_SETTINGS

STATE_FILE = ".beadseg-predict.json"
KEPT_OUTPUTS = {".hydra", "predict.log"}  # what a fresh run directory already holds
# The predict settings that decide what a frame's beads are (with OUTPUT_SETTINGS: what is written of them).
BEAD_SETTINGS = ("method", "detector", "inference", "postprocess", "image")


def part_lines(out: Path) -> dict[str, dict]:
    """Every finished record under ``out/parts`` by image name (a line cut short by a kill is ignored)."""
    records: dict[str, dict] = {}
    for part in sorted((out / "parts").glob("*.jsonl")):
        for line in part.read_text().splitlines(keepends=True):
            if not line.endswith("\n"):
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            records[record["image"]] = record
    return records


def completed_images(out: Path) -> set[str]:
    """The images with a record and no error under ``out/parts``: what a resumed run skips."""
    return {name for name, record in part_lines(out).items() if "error" not in record}


class Journal:
    """This process's part file, ``parts/<host>-<pid>.jsonl``: one line per frame, flushed and synced at once."""

    def __init__(self, out: Path) -> None:
        self.path = out / "parts" / f"{socket.gethostname()}-{os.getpid()}.jsonl"
        self.file: IO[str] | None = None

    def append(self, record: dict) -> None:
        if self.file is None:
            self.file = open(self.path, "a")  # noqa: SIM115 - stays open for the run; closed in close()
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


def claim_output(out: Path, settings: dict, resume: bool) -> None:
    """A new output folder gets the run's settings; ``resume=true`` needs a folder of a run with the same ones."""
    state = out / STATE_FILE
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"output={out} is a file, not a folder: give a folder for the results")
    present = {p.name for p in out.iterdir()} - KEPT_OUTPUTS if out.is_dir() else set()
    if resume:
        if not state.is_file():
            raise FileExistsError(f"output={out} holds no beadseg-predict run to resume ({STATE_FILE} is missing)")
        before = json.loads(state.read_text())
        changed = sorted(key for key in set(before) | set(settings) if before.get(key) != settings.get(key))
        if {"input", "input_files"} & set(changed):
            raise ValueError(f"resume=true: output={out} holds the run of input={before.get('input')} "
                             f"({before.get('input_files', {}).get('count', '?')} files), not of input="
                             f"{settings['input']} ({settings['input_files']['count']} files): resume with the same "
                             "input, or predict into a new output folder")
        if changed:
            raise ValueError(f"resume=true: output={out} was predicted with other settings ({', '.join(changed)}); "
                             "resume with the same settings, or predict into a new output folder")
        shutil.rmtree(out / ".scratch", ignore_errors=True)  # memory maps of images a kill interrupted
        remove_stale_partials(out)  # and the files it was writing
        return
    if present:
        raise FileExistsError(f"output={out} already holds results; beadseg never overwrites them: choose another "
                              "(or continue an interrupted run there with resume=true)")
    out.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{STATE_FILE}.", suffix=".partial", dir=out)  # one per claim
    partial = Path(name)
    with os.fdopen(handle, "w") as state_file:
        state_file.write(json.dumps(settings, indent=2))
    try:
        os.link(partial, state)  # atomic: of two runs claiming the folder at once, exactly one succeeds
    except FileExistsError:
        raise FileExistsError(f"output={out} was just claimed by another beadseg-predict run; choose another "
                              "output folder") from None
    finally:
        partial.unlink()
    for sub in ("masks", "instances", "overlays", "parts"):
        (out / sub).mkdir(exist_ok=True)


def file_set(files: list[Path]) -> dict:
    """The input's fingerprint: how many files, and a hash of their paths, sizes and times (a link that leads
    nowhere, broken or looping, by the link itself: reading it later names it in ``errors.csv``)."""
    digest = hashlib.sha256()
    for path in files:
        try:
            stat, where = path.stat(), path.resolve()
        except (OSError, RuntimeError):
            stat, where = path.lstat(), path.absolute()
        digest.update(f"{where}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return {"count": len(files), "sha256": digest.hexdigest()}


def run_settings(cfg: DictConfig, ckpt: str | None, files: list[Path]) -> dict:
    """What must match for a resumed run to continue this one: the input and its files, the model, the settings
    that decide the beads and what is written of them."""
    plain = cast(dict, OmegaConf.to_container(cfg, resolve=True))
    return {"ckpt": ckpt, "input": str(Path(cfg.input).resolve()), "input_files": file_set(files),
            **{key: plain.get(key) for key in BEAD_SETTINGS + OUTPUT_SETTINGS}}
