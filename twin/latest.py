"""A twin's newest value of each metric and the device time it was measured at, in a few
hundred bytes.

Two dicts of metric → value and metric → time took about 1.1 KiB per 11-metric twin; at a
million twins that is a gigabyte. Here a twin holds a list of its values (as sent: an integer
stays one) and an ``array('q')`` of their times; the metric names and where each one sits
are shared by every twin whose device sends the same metrics in the same order.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Mapping

NAME_SETS = 4096
"""How many sets of metric names are shared (a fleet has a handful; a device that keeps
sending new ones gets a private layout once the table is full)."""


class _Names:
    """Metric names in the order a device first sent them, and each one's value slot."""

    __slots__ = ("_next", "at", "names")

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        self.at = {name: k for k, name in enumerate(names)}
        self._next: dict[str, _Names] = {}

    def plus(self, name: str) -> _Names:
        """These names and one more (shared, as long as the table of sets has room)."""
        grown = self._next.get(name)
        if grown is None:
            grown = _Names((*self.names, name))
            if len(_SHARED) < NAME_SETS:
                self._next[name] = grown = _SHARED.setdefault(grown.names, grown)
        return grown


_SHARED: dict[tuple[str, ...], _Names] = {}
_NONE = _SHARED[()] = _Names(())


def _names_of(names: tuple[str, ...]) -> _Names:
    found = _SHARED.get(names)
    if found is None:
        found = _NONE
        for name in names:
            found = found.plus(name)
    return found


def shared_names(names: tuple[str, ...]) -> tuple[str, ...]:
    """The one copy of this tuple of metric names that twins share (a million restored twins
    would otherwise hold a million copies of the same few)."""
    return _names_of(names).names


class Latest(Mapping[str, float]):
    """Metric → newest value (a read-only mapping), with :meth:`time` for when it was
    measured; :meth:`update` folds in a reading."""

    __slots__ = ("_names", "_times", "_values")

    def __init__(self) -> None:
        self._names = _NONE
        self._values: list[float] = []
        """In the order of ``_names``: the values as sent (an integer stays one)."""
        self._times = array("q")

    @classmethod
    def of(cls, values: Mapping[str, float]) -> Latest:
        """From a snapshot's map of metric → value, every time 0 until :meth:`set_times`."""
        latest = cls()
        latest._names = _names_of(tuple(values))
        latest._values = list(values.values())
        latest._times = array("q", bytes(8 * len(latest._values)))
        return latest

    def set_times(self, times: Mapping[str, int]) -> None:
        """The times of a snapshot's values (metrics it does not name keep theirs)."""
        at, held = self._names.at, self._times
        for name, ts in times.items():
            k = at.get(name)
            if k is not None:
                held[k] = ts

    def update(self, values: Mapping[str, float], ts: int) -> bool:
        """Take each value not older than the one held; True if any moved."""
        at, held, times, moved = self._names.at, self._values, self._times, False
        for name, value in values.items():
            k = at.get(name)
            if k is None:
                self._names = self._names.plus(name)
                at, k = self._names.at, len(held)
                held.append(value)
                times.append(ts)
                moved = True
            elif ts >= times[k]:
                held[k] = value
                times[k] = ts
                moved = True
        return moved

    def time(self, name: str) -> int | None:
        k = self._names.at.get(name)
        return None if k is None else self._times[k]

    def times(self) -> dict[str, int]:
        return dict(zip(self._names.names, self._times, strict=True))

    def as_dict(self) -> dict[str, float]:
        """Metric → value (the live view and the snapshot)."""
        return dict(zip(self._names.names, self._values, strict=False))  # as long, always

    def __getitem__(self, name: str) -> float:
        return self._values[self._names.at[name]]

    def __contains__(self, name: object) -> bool:
        return name in self._names.at

    def __iter__(self) -> Iterator[str]:
        return iter(self._names.names)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Latest({self.as_dict()!r})"
