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

    @abstractmethod
    def render(self, index: int) -> tuple[str, np.ndarray, np.ndarray]:
        """Name, image and instance labels of image ``index``."""

    def entries(self) -> list[dict]:
        """One manifest row per image, each image drawn once here to measure it and kept (up to ``KEEP_BYTES``)
        for :meth:`read`: loader workers forked after this share the drawn images instead of drawing them again."""
        if getattr(self, "_rows", None) is None:
            self._rows, self._kept, kept_bytes = [], {}, 0
            for index in range(self.n_images):
                name, image, labels = self.render(index)
                self._rows.append({"name": name, "index": index, **image_stats(image), "bead_count": int(labels.max())})
                if kept_bytes + image.nbytes + labels.nbytes <= KEEP_BYTES:
                    self._kept[index] = (name, image, labels)
                    kept_bytes += image.nbytes + labels.nbytes
        return self._rows

    def read(self, row: dict) -> BeadSample:
        kept = getattr(self, "_kept", {}).get(row["index"])
        return BeadSample(*(kept or self.render(row["index"])))

    def load(self) -> list[BeadSample]:
        return [BeadSample(*self.render(index)) for index in range(self.n_images)]


class ConcatSource:
    """The rows of every source in turn; names must stay unique (they key the split)."""

    def __init__(self, sources: list) -> None:
        self.sources = list(sources)

    def entries(self) -> list[dict]:
        rows = [{**row, "source": index} for index, source in enumerate(self.sources) for row in source.entries()]
        duplicated = sorted(name for name, times in Counter(row["name"] for row in rows).items() if times > 1)
        if duplicated:
            raise ValueError(f"the combined sources share image names: {duplicated[:5]}")
        return rows

    def read(self, row: dict) -> BeadSample:
        return self.sources[row["source"]].read(row)

    def load(self) -> list[BeadSample]:
        return [self.read(row) for row in self.entries()]
