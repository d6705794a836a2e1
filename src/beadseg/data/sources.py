"""Sources that combine other sources (e.g. real images plus synthetic ones)."""

from __future__ import annotations

from beadseg.data.folder import BeadSample


class ConcatSource:
    """The samples of every source in turn; names must stay unique (they key the split)."""

    def __init__(self, sources: list) -> None:
        self.sources = list(sources)

    def load(self) -> list[BeadSample]:
        samples = [sample for source in self.sources for sample in source.load()]
        names = [s.name for s in samples]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"the combined sources share image names: {duplicated[:5]}")
        return samples
