"""Data sets packed into litdata shards (Lightning's streaming format) for shared file systems and object stores.

``beadseg-pack`` writes a source's images (with their bead labels, or their class) into a few large chunk files
plus ``beadseg_pack.json``, the manifest that split and normalisation need. ``data=packed`` (segmentation) and
``data=packed_frames`` (classification) train from such a folder, local or at a URL litdata reads (``s3://…``).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
from pathlib import Path
from typing import Any

import numpy as np

from beadseg.data.io import BeadDataError
from beadseg.data.sample import BeadSample

PACK_FILE = "beadseg_pack.json"
FORMAT = "beadseg-pack"
log = logging.getLogger(__name__)
# a forked worker starts at once (a spawned one imports torch again, seconds per worker); the workers only read
# and encode images, which forking a process that holds torch (no CUDA context) allows
FORK = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
ROW_KEYS = ("name", "label", "bead_count", "height", "width", "dtype", "vmin", "vmax")


class PackItem:
    """litdata's ``fn``: one manifest row in, the item stored in the shard out."""

    def __init__(self, source, kind: str) -> None:
        self.source, self.kind = source, kind

    def __call__(self, row: dict) -> dict:
        read = self.source.read(row)
        if self.kind == "frames":
            return {"name": row["name"], "image": np.ascontiguousarray(read), "label": int(row["label"])}
        return {"name": row["name"], "image": np.ascontiguousarray(read.image), "labels": read.labels.astype(np.int32)}


def pack(source, out: str | Path, chunk_bytes: str = "64MB", workers: int = 1) -> dict:
    """Write every row of ``source`` into litdata shards under ``out``; returns the pack's manifest."""
    import litdata

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"out={out} is not empty; beadseg never overwrites a pack: choose a new folder")
    rows = source.entries()
    kind = "frames" if hasattr(source, "classes") else "beads"
    start_method = multiprocessing.get_start_method(allow_none=True)
    try:
        litdata.optimize(fn=PackItem(source, kind), inputs=rows, output_dir=str(out), chunk_bytes=chunk_bytes,
                         num_workers=workers, keep_data_ordered=True, mode=None, start_method=FORK)
    finally:  # litdata switches the whole process to "spawn": every later loader worker would start anew
        multiprocessing.set_start_method(start_method, force=True)
    meta = {"format": FORMAT, "version": 1, "kind": kind, "classes": list(getattr(source, "classes", [])),
            "rows": [{"index": i, **{k: row[k] for k in ROW_KEYS if k in row}} for i, row in enumerate(rows)]}
    (out / PACK_FILE).write_text(json.dumps(meta))
    return meta


def read_pack_meta(input_dir: str) -> dict:
    """The pack's manifest, from a folder or a URL (through fsspec); a clear error when it is no beadseg pack."""
    try:
        if "://" in input_dir:
            import fsspec

            with fsspec.open(f"{input_dir.rstrip('/')}/{PACK_FILE}", "r") as handle:
                meta = json.load(handle)
        else:
            meta = json.loads((Path(input_dir) / PACK_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError) as error:
        raise BeadDataError(f"data.input_dir={input_dir} is not a beadseg pack (no readable {PACK_FILE}): "
                            "write one with beadseg-pack data.root=<the image folder> out=<a new folder>, then "
                            "train with data.input_dir=<that folder>") from error
    if meta.get("format") != FORMAT:
        raise BeadDataError(f"data.input_dir={input_dir}: {PACK_FILE} is not a beadseg pack manifest")
    return meta


class PackedSource:
    """A pack as a data source: rows from its manifest, items streamed from its shards on demand."""

    def __init__(self, input_dir: str, kind: str = "beads", skip_missing: bool = False) -> None:
        if not input_dir:
            raise BeadDataError("data.input_dir is not set: give the folder (or URL) that beadseg-pack wrote")
        self.input_dir = str(input_dir)
        self.meta = read_pack_meta(self.input_dir)
        if self.meta["kind"] != kind:
            other = {"beads": "packed", "frames": "packed_frames"}[self.meta["kind"]]
            raise BeadDataError(f"data.input_dir={input_dir} packs {self.meta['kind']}, not {kind}: use data={other}")
        self.kind, self.classes = kind, list(self.meta["classes"])
        self.rows = self.present_rows(skip_missing)
        self._stream: Any = None  # litdata.StreamingDataset, opened on first read

    def present_rows(self, skip_missing: bool) -> list[dict]:
        """The manifest's rows whose shard is there (a local pack is checked; a remote one is trusted). A missing
        shard is an error naming it, unless ``skip_missing``: then its items are left out, with a warning."""
        index = Path(self.input_dir) / "index.json"
        rows = self.meta["rows"]
        if "://" in self.input_dir or not index.is_file():
            return rows
        chunks = json.loads(index.read_text()).get("chunks", [])
        ends = np.cumsum([chunk["chunk_size"] for chunk in chunks])
        missing = [i for i, chunk in enumerate(chunks) if not (index.parent / chunk["filename"]).is_file()]
        if not missing:
            return rows
        shard = np.searchsorted(ends, [row["index"] for row in rows], side="right")
        lost = np.isin(shard, missing)
        names = ", ".join(chunks[i]["filename"] for i in missing)
        if not skip_missing:
            raise BeadDataError(f"data.input_dir={self.input_dir}: shard(s) {names} are missing ({int(lost.sum())} of "
                                f"{len(rows)} items): copy the pack whole again, or train without them with "
                                "data.source.skip_missing=true")
        log.warning("data.input_dir=%s: shard(s) %s are missing: training without their %d items",
                    self.input_dir, names, int(lost.sum()))
        return [row for row, gone in zip(rows, lost) if not gone]

    def __getstate__(self) -> dict:  # loader workers and DDP ranks open their own reader
        return {**self.__dict__, "_stream": None}

    def entries(self) -> list[dict]:
        return self.rows

    def read(self, row: dict):
        if self._stream is None:
            import litdata

            self._stream = litdata.StreamingDataset(self.input_dir)
        item = self._stream[row["index"]]
        if item["name"] != row["name"]:
            raise BeadDataError(f"{self.input_dir}: item {row['index']} is {item['name']!r}, its manifest says "
                                f"{row['name']!r} (the pack is damaged: write it again)")
        if self.kind == "frames":
            return item["image"]
        return BeadSample(item["name"], item["image"], item["labels"])
