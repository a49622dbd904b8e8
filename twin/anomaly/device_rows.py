"""Which track row holds each metric of one device, in a few bytes.

A device's tracks are nearly always made together (its first reading, or its restore), so
their rows follow each other: the first row and the metrics in row order say it all, and
a reading that carries them in that order spans a ``range`` of rows. A metric that joins later
and finds its row apart from the others is kept in a small dict beside them. At a million
twins this takes about a tenth of a dict of metric → row and its row numbers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence


class DeviceRows:
    __slots__ = ("apart", "first", "metrics")

    def __init__(self) -> None:
        self.first = -1
        self.metrics: tuple[str, ...] = ()
        """Metrics of rows ``first``, ``first + 1``, ... in order."""
        self.apart: dict[str, int] | None = None

    def get(self, metric: str) -> int | None:
        try:
            return self.first + self.metrics.index(metric)
        except ValueError:
            return None if self.apart is None else self.apart.get(metric)

    def __getitem__(self, metric: str) -> int:
        row = self.get(metric)
        if row is None:
            raise KeyError(metric)
        return row

    def __contains__(self, metric: str) -> bool:
        return self.get(metric) is not None

    def take_block(self, first: int, metrics: tuple[str, ...]) -> None:
        """Rows ``first``, ``first + 1``, ... for ``metrics`` (a device without rows yet)."""
        assert not self.metrics and self.apart is None
        self.first, self.metrics = first, metrics

    def add(self, metric: str, row: int) -> None:
        """A new metric's row (the metric has none yet)."""
        if not self.metrics:
            self.first = row
        if row == self.first + len(self.metrics):
            self.metrics += (metric,)
        else:
            self.apart = {**(self.apart or {}), metric: row}

    def items(self) -> Iterator[tuple[str, int]]:
        rows = range(self.first, self.first + len(self.metrics))
        yield from zip(self.metrics, rows, strict=True)
        if self.apart is not None:
            yield from self.apart.items()

    def span(self, keys: tuple[str, ...]) -> tuple[tuple[str, ...], Sequence[int]]:
        """A reading's metrics (each with its row) and their rows in the reading's order; the
        device's own tuple and a range when the reading carries its metrics in row order."""
        if keys == self.metrics:
            return self.metrics, range(self.first, self.first + len(keys))
        return keys, [self[m] for m in keys]
