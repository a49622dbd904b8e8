"""The messages a simulated fleet sends, in order, each with the time it is due.

Pure and deterministic: a configuration, a seed and a start time give the same messages (topics,
payloads, timestamps) every time, whether they are published in real time or not. Device time:
reading ``k`` of device ``d`` (of ``n``) is taken at ``start + (k * n + d) / rate`` seconds, so
every device reports at an even interval ``n / rate`` and the fleet at ``rate`` readings/s. A
message carries ``batch`` consecutive readings of one device and is due at its last reading;
devices flush at staggered readings, so batched traffic is as even as single readings.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import msgspec

from simulators.faults import Fault, FaultInjector
from simulators.fleet import BAD_PAYLOADS, Device, make_fleet
from twin.topics import TopicRouter

_json = msgspec.json.Encoder().encode


@dataclass(frozen=True)
class TrafficConfig:
    devices: int = 100
    rate: float = 1000.0
    """Readings per second, all devices together."""
    batch: int = 1
    duration_s: float = 10.0
    seed: int = 1
    prefix: str = ""
    bad_fraction: float = 0.0
    season: str = "SUMMER"
    vehicle_share: float = 0.6
    id_prefix: str = ""


@dataclass(frozen=True)
class Outgoing:
    due_s: float
    """Seconds after the start at which the message is due."""
    topic: str
    payload: bytes
    device: int
    readings: int = 0
    bad_reason: str | None = None
    retain: bool = False
    kind: str = "telemetry"


class TrafficSource(Protocol):
    """What the publisher sends: simulated traffic, or a replayed recording."""

    @property
    def fleet(self) -> Sequence[object]: ...

    def attributes(self) -> list[Outgoing]: ...

    def messages(self) -> Iterator[Outgoing]: ...

    def rebase(self, start_ms: int) -> None: ...


class Traffic:
    def __init__(self, config: TrafficConfig, start_ms: int, faults: Sequence[Fault] = ()) -> None:
        self.config = config
        self._topics = TopicRouter(config.prefix)
        self.start_ms = start_ms
        self.fleet: list[Device] = make_fleet(
            config.devices, config.seed, config.vehicle_share, config.season, config.id_prefix
        )
        self._set_faults(faults)

    def _set_faults(self, faults: Sequence[Fault]) -> None:
        self.faults = list(faults)
        by_device: dict[str, list[Fault]] = {}
        for f in self.faults:
            by_device.setdefault(f.device_id, []).append(f)
        self._injectors = [FaultInjector(by_device.get(d.device_id, [])) for d in self.fleet]

    def rebase(self, start_ms: int) -> None:
        """Move device time zero (and the faults with it), e.g. to when publishing starts."""
        shift = start_ms - self.start_ms
        self.start_ms = start_ms
        self._set_faults(
            [replace(f, start_ms=f.start_ms + shift, end_ms=f.end_ms + shift) for f in self.faults]
        )

    def topic(self, device_id: str, channel: str = "telemetry") -> str:
        return self._topics.topic(device_id, channel)

    def attributes(self) -> list[Outgoing]:
        """Each device's metadata, retained, sent once before its telemetry."""
        return [
            Outgoing(
                0.0,
                self.topic(d.device_id, "attributes"),
                _json(d.attributes),
                i,
                retain=True,
                kind="attributes",
            )
            for i, d in enumerate(self.fleet)
        ]

    def messages(self) -> Iterator[Outgoing]:
        """Telemetry (and the events it triggers) until ``duration_s``, in due order."""
        c = self.config
        n = len(self.fleet)
        interval = n / c.rate
        bad_every = round(1 / c.bad_fraction) if c.bad_fraction > 0 else 0
        seqs = [0] * n
        buffers: list[list[tuple[int, dict[str, float]]]] = [[] for _ in range(n)]
        m = 0
        g = 0  # global reading slot: reading k of device d is slot k * n + d
        while True:
            due = g / c.rate
            if due >= c.duration_s:
                break
            d, k = g % n, g // n
            g += 1
            dev = self.fleet[d]
            ts = self.start_ms + round(due * 1000)
            values = dev.step(interval)
            injector = self._injectors[d]
            if not injector.faults or injector.apply(dev, values, ts, interval):
                buffers[d].append((ts, values))  # else dropout: the device is silent
            if (k + 1 + d) % c.batch:  # devices flush their batches at staggered readings
                continue
            taken, buffers[d] = buffers[d], []
            events = dev.take_events()
            m += 1
            if bad_every and m % bad_every == 0:
                reason, payload = BAD_PAYLOADS[(m // bad_every) % len(BAD_PAYLOADS)]
                yield Outgoing(due, self.topic(dev.device_id), payload, d, bad_reason=reason)
                continue
            if not taken:
                continue
            yield self._telemetry(d, taken, seqs, due)
            for event in events:
                event["ts"] = taken[-1][0]
                yield Outgoing(
                    due, self.topic(dev.device_id, "events"), _json(event), d, kind="event"
                )
        end = g / c.rate
        for d, taken in enumerate(buffers):  # at the end every device flushes what it holds
            if taken:
                yield self._telemetry(d, taken, seqs, end)

    def _telemetry(
        self, d: int, taken: list[tuple[int, dict[str, float]]], seqs: list[int], due: float
    ) -> Outgoing:
        readings = []
        for ts, values in taken:
            seqs[d] += 1
            readings.append({"ts": ts, "seq": seqs[d], "values": values})
        payload = _json(readings[0] if self.config.batch == 1 else readings)
        return Outgoing(due, self.topic(self.fleet[d].device_id), payload, d, len(readings))
