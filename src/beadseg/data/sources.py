"""Sources that draw their images (synthetic, composite) and sources that combine other sources (e.g. real
images plus synthetic ones)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter

import numpy as np

from beadseg.data.manifest import image_stats
from beadseg.data.sample import BeadSample

KEEP_BYTES = 1 << 30  # drawn images kept in memory (and shared with forked loader workers)


class RenderedSource(ABC):
    """A source whose ``n_images`` images are drawn by ``render(index)`` -> (name, image, instance labels), each
    depending only on its index (and the source's seed)."""

    n_images: int
    _rows: list[dict] | None = None  # drawn on first use
    _kept: dict[int, tuple[str, np.ndarray, np.ndarray]] | None = None

    @abstractmethod
    def render(self, index: int) -> tuple[str, np.ndarray, np.ndarray]:
        """Name, image and instance labels of image ``index``."""

    def entries(self) -> list[dict]:
        """One manifest row per image, each image drawn once here to measure it and kept (up to ``KEEP_BYTES``)
        for :meth:`read`: loader workers forked after this share the drawn images instead of drawing them again."""
        if self._rows is None:
            self._rows, self._kept, kept_bytes = [], {}, 0
            for index in range(self.n_images):
                name, image, labels = self.render(index)
                self._rows.append({"name": name, "index": index, **image_stats(image), "bead_count": int(labels.max())})
                if kept_bytes + image.nbytes + labels.nbytes <= KEEP_BYTES:
                    self._kept[index] = (name, image, labels)
                    kept_bytes += image.nbytes + labels.nbytes
        return self._rows

    def redraw(self) -> None:
        """Forget the drawn images (what they are drawn from changed): :meth:`entries` draws them again."""
        self._rows = self._kept = None

    def read(self, row: dict) -> BeadSample:
        kept = (self._kept or {}).get(row["index"])
        return BeadSample(*(kept or self.render(row["index"])))

    def load(self) -> list[BeadSample]:
        return [BeadSample(*self.render(index)) for index in range(self.n_images)]


class ConcatSource:
    """The rows of every source in turn; names must stay unique (they key the split).

    ``train_only`` sources add training frames alone (frames drawn beside a folder's, such as composites cut from
    its beads): validation and test judge the ``sources``' own images. Their rows come from
    :meth:`training_entries`, after the split, and a source that draws from the folder's frames (``hold_out``) is
    first told the captures that validation and test hold: none of their beads or backgrounds reach training.

    Examples
    --------
    >>> from beadseg.data.synthetic import SyntheticSource
    >>> source = ConcatSource([SyntheticSource(n_images=2, image_size=64, modality="fluorescence")],
    ...                       train_only=[SyntheticSource(n_images=3, image_size=64, modality="brightfield")])
    >>> len(source.entries()), len(source.training_entries(held_out=set()))
    (2, 3)
    """

    def __init__(self, sources: list, train_only: list | None = None) -> None:
        self.sources = list(sources)
        self.train_only = list(train_only or ())

    def entries(self) -> list[dict]:
        """The rows to split (train, validation, test): those of ``sources``."""
        rows = [{**row, "source": index} for index, source in enumerate(self.sources) for row in source.entries()]
        _check_unique(rows)
        return rows

    def training_entries(self, held_out: set[str]) -> list[dict]:
        """The rows of the ``train_only`` sources, drawn without the captures in ``held_out`` (validation, test)."""
        rows = []
        for index, source in enumerate(self.train_only, start=len(self.sources)):
            if hasattr(source, "hold_out"):
                source.hold_out(held_out)
            rows += [{**row, "source": index} for row in source.entries()]
        _check_unique(self.entries() + rows)
        return rows

    def read(self, row: dict) -> BeadSample:
        return [*self.sources, *self.train_only][row["source"]].read(row)

    def load(self) -> list[BeadSample]:
        return [self.read(row) for row in self.entries()]


def _check_unique(rows: list[dict]) -> None:
    duplicated = sorted(name for name, times in Counter(row["name"] for row in rows).items() if times > 1)
    if duplicated:
        raise ValueError(f"the combined sources share image names: {duplicated[:5]}")
