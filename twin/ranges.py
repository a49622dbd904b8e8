"""A profile's valid ranges: a reading outside them is a dead letter, not a measurement."""

from __future__ import annotations

import msgspec

from twin.profiles import METRIC_CATALOG, DeviceProfile
from twin.records import Channel, DeadLetter, Reading, Reason
from twin.topics import TopicRouter

_encode = msgspec.json.Encoder().encode


class ValidRanges:
    """Per profile, every metric's (min, max): the catalogue's, overridden by the profile's."""

    def __init__(self) -> None:
        self._ranges: dict[str, dict[str, tuple[float, float]]] = {}

    def of(self, profile: DeviceProfile) -> dict[str, tuple[float, float]]:
        ranges = self._ranges.get(profile.name)
        if ranges is None:
            ranges = {n: (s.valid_min, s.valid_max) for n, s in METRIC_CATALOG.items()}
            ranges.update({n: (s.valid_min, s.valid_max) for n, s in profile.metrics.items()})
            self._ranges[profile.name] = ranges
        return ranges


def out_of_range(reading: Reading, ranges: dict[str, tuple[float, float]]) -> str | None:
    for name, value in reading.values.items():
        bounds = ranges.get(name)
        if bounds is not None and not bounds[0] <= value <= bounds[1]:
            return name
    return None


def range_dead_letter(
    reading: Reading, metric: str, profile: DeviceProfile, prefix: str
) -> DeadLetter:
    spec = profile.spec(metric)
    assert spec is not None
    value = reading.values[metric]
    return DeadLetter(
        received_ms=reading.received_ms,
        topic=TopicRouter(prefix).topic(reading.device_id, Channel.TELEMETRY),
        reason=Reason.OUT_OF_RANGE,
        detail=(
            f"{metric}={value} outside the valid range [{spec.valid_min}, {spec.valid_max}] "
            f"{spec.unit} of profile {profile.name}"
        ),
        payload=_encode({"ts": reading.ts_ms, "seq": reading.seq, "values": reading.values}),
        device_id=reading.device_id,
    )
