"""Where the twins' detector state lives while the engine runs, behind one interface.

* :class:`TwinHeld`: the scalar layers (:class:`~twin.anomaly.detectors.AnomalyDetectors`),
  state inside each twin's :class:`~twin.state.TwinState`, one reading at a time. The
  reference, and what the evaluation and the unit tests of single layers use.
* :class:`Columns`: the vectorised layers (:class:`~twin.anomaly.columns.ColumnarDetectors`),
  state in numpy columns of the shard that owns the device, a batch at a time. A twin then
  carries an empty :class:`~twin.anomaly.state.DetectorState`; its snapshot takes the state out
  of the columns (:meth:`export`) and a restore puts it back (:meth:`adopt`).

Both judge the same readings the same way (a test runs both through the twin step).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from twin.anomaly.columns import ColumnarDetectors, Item
from twin.anomaly.config import DetectorConfig
from twin.anomaly.detectors import AnomalyDetectors, Observation
from twin.anomaly.records import Anomaly
from twin.anomaly.state import DetectorState, packed_state, unpacked_state


class DetectorBank(Protocol):
    """The detectors of one shard of twins (a device always lands in the same shard)."""

    config: DetectorConfig

    def for_shard(self) -> DetectorBank:
        """The bank of another shard: shares the layers, not the state."""
        ...

    def adopt(self, device_id: str, st: DetectorState) -> DetectorState:
        """A restored twin's detector state taken in; returns what the twin keeps."""
        ...

    def export(self, device_id: str, st: DetectorState) -> DetectorState:
        """The twin's whole detector state, for its snapshot."""
        ...

    def observe_batch(
        self, items: Sequence[Item], states: Sequence[DetectorState]
    ) -> list[Observation]:
        """Judge readings in order per device (``states``: each reading's twin state)."""
        ...

    def health(self, device_id: str, st: DetectorState) -> int: ...

    def open_count(self, device_id: str, st: DetectorState) -> int: ...

    def silence_limits_ms(
        self, device_ids: Sequence[str], states: Sequence[DetectorState]
    ) -> list[int | None]:
        """How long each twin's device may be silent (None: no limit known yet)."""
        ...

    def check_silence(self, device_id: str, st: DetectorState, now_ms: int) -> list[Anomaly]: ...


class TwinHeld:
    """The scalar layers; each twin holds its own detector state."""

    def __init__(self, detectors: AnomalyDetectors) -> None:
        self.detectors = detectors
        self.config = detectors.config

    def for_shard(self) -> TwinHeld:
        return self

    def adopt(self, device_id: str, st: DetectorState) -> DetectorState:
        return unpacked_state(st)

    def export(self, device_id: str, st: DetectorState) -> DetectorState:
        return packed_state(st)

    def observe_batch(
        self, items: Sequence[Item], states: Sequence[DetectorState]
    ) -> list[Observation]:
        observe = self.detectors.observe
        return [
            observe(st, device_id, profile, ts, values)
            for (device_id, profile, ts, values), st in zip(items, states, strict=True)
        ]

    def health(self, device_id: str, st: DetectorState) -> int:
        return self.detectors.health(st)

    def open_count(self, device_id: str, st: DetectorState) -> int:
        return len(st.open)

    def silence_limits_ms(
        self, device_ids: Sequence[str], states: Sequence[DetectorState]
    ) -> list[int | None]:
        limit = self.detectors.silence_limit_ms
        return [limit(st) for st in states]

    def check_silence(self, device_id: str, st: DetectorState, now_ms: int) -> list[Anomaly]:
        return self.detectors.check_silence(st, device_id, now_ms)


HELD_IN_COLUMNS = DetectorState()
"""What every twin of a shard with :class:`Columns` carries in place of its detector state:
one empty state for them all (nothing writes to it), 190 bytes a twin saved."""


class Columns:
    """The vectorised layers; the shard's columns hold every twin's detector state."""

    def __init__(self, config: DetectorConfig) -> None:
        self.config = config
        self.columns = ColumnarDetectors(config)

    def for_shard(self) -> Columns:
        return Columns(self.config)

    def adopt(self, device_id: str, st: DetectorState) -> DetectorState:
        if st.readings or st.tracks or st.packed or st.open or st.raised:  # not a fresh twin
            self.columns.load(device_id, st)
        return HELD_IN_COLUMNS

    def export(self, device_id: str, st: DetectorState) -> DetectorState:
        return self.columns.state(device_id)

    def observe_batch(
        self, items: Sequence[Item], states: Sequence[DetectorState]
    ) -> list[Observation]:
        return self.columns.observe_batch(items)

    def health(self, device_id: str, st: DetectorState) -> int:
        return self.columns.health(device_id)

    def open_count(self, device_id: str, st: DetectorState) -> int:
        return self.columns.open_count(device_id)

    def silence_limits_ms(
        self, device_ids: Sequence[str], states: Sequence[DetectorState]
    ) -> list[int | None]:
        return self.columns.silence_limits_ms(device_ids)

    def check_silence(self, device_id: str, st: DetectorState, now_ms: int) -> list[Anomaly]:
        return self.columns.check_silence(device_id, now_ms)


def bank_of(detectors: AnomalyDetectors | DetectorBank | None) -> DetectorBank | None:
    """What the twin step takes: the scalar layers are wrapped, a bank is used as it is."""
    if isinstance(detectors, AnomalyDetectors):
        return TwinHeld(detectors)
    return detectors
