"""Sources that combine other sources (e.g. real images plus synthetic ones)."""

from __future__ import annotations

from collections import Counter

from beadseg.data.sample import BeadSample


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
