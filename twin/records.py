"""Records that flow through the engine.

Timestamps inside the hot path are integer epoch milliseconds (UTC by definition), which are
cheap to compare and to encode; they become timezone-aware datetimes at the store boundary
(see :func:`twin.clock.ms_to_datetime`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import msgspec

from twin.alerts.records import AlertTransition
from twin.anomaly.records import Anomaly


class Channel(StrEnum):
    """The topic suffix a message arrived on."""

    TELEMETRY = "telemetry"
    ATTRIBUTES = "attributes"
    EVENTS = "events"


class Reason(StrEnum):
    """Why a message or reading became a dead letter (the `reason` column)."""

    BAD_TOPIC = "bad_topic"
    OVERSIZE = "oversize"
    BAD_ENCODING = "bad_encoding"
    BAD_JSON = "bad_json"
    BAD_SHAPE = "bad_shape"
    BAD_TYPE = "bad_type"
    BAD_METRIC_NAME = "bad_metric_name"
    NON_FINITE = "non_finite"
    OUT_OF_RANGE = "out_of_range"
    BAD_TS = "bad_ts"
    TS_IN_FUTURE = "ts_in_future"
    TS_TOO_OLD = "ts_too_old"
    BAD_SEQ = "bad_seq"
    TOO_MANY = "too_many"
    TOO_DEEP = "too_deep"
    EXPIRED = "expired"
    STORE_REJECTED = "store_rejected"
    PARSE_FAILED = "parse_failed"


NO_TICKET = -1
"""The ticket of input that needs no acknowledgement (QoS 0, tests, wake-ups)."""


class RawMessage(msgspec.Struct, frozen=True, gc=False):
    """One MQTT message as it came off the wire."""

    topic: str
    payload: bytes
    received_ms: int
    ticket: int = NO_TICKET
    """The source's handle for acknowledging this message once what it produced is stored."""


class Reading(msgspec.Struct, frozen=True, gc=False):
    """One validated-in-shape telemetry reading of one device at one instant.

    Range checks against the device's profile happen in the twin, which knows the profile.
    """

    device_id: str
    ts_ms: int
    values: dict[str, float]
    received_ms: int
    seq: int | None = None


class Attributes(msgspec.Struct, frozen=True, gc=False):
    """Device metadata from the attributes topic (usually retained)."""

    device_id: str
    attributes: dict[str, Any]
    received_ms: int

    @property
    def kind(self) -> str | None:
        kind = self.attributes.get("kind")
        return kind if isinstance(kind, str) else None

    @property
    def profile(self) -> str | None:
        profile = self.attributes.get("profile")
        return profile if isinstance(profile, str) else None


class DeviceEvent(msgspec.Struct, frozen=True, gc=False):
    """A discrete event: a service, a fault code, a door opening."""

    device_id: str
    ts_ms: int
    type: str
    body: dict[str, Any]
    received_ms: int


class DeadLetter(msgspec.Struct, frozen=True, gc=False):
    """Input that could not be used, kept whole with the reason it was refused."""

    received_ms: int
    topic: str
    reason: Reason
    detail: str
    payload: bytes
    device_id: str | None = None
    ticket: int = NO_TICKET
    """Set on a dead letter that stands for a whole message (one without a device)."""


Inbound = Reading | Attributes | DeviceEvent
"""What the parser hands to a device's twin."""


class DeviceRecord(msgspec.Struct, frozen=True, gc=False):
    """A registry upsert: first sight of a device, or new attributes."""

    device_id: str
    kind: str
    profile: str
    attributes: dict[str, Any]
    first_seen_ms: int
    last_seen_ms: int


class Snapshot(msgspec.Struct, frozen=True, gc=False):
    """A twin's encoded state, written periodically and on shutdown to warm a restart."""

    device_id: str
    taken_ms: int
    last_seen_ms: int
    state: bytes  # JSON of twin.state.TwinState
    encode_ns: int = 0
    """How long encoding the state took (the snapshot duration metric)."""


class TwinOutput(msgspec.Struct, frozen=True, gc=False):
    """Everything one twin produced from one batch of its inputs."""

    device_id: str
    readings: list[Reading]
    dead_letters: list[DeadLetter]
    events: list[DeviceEvent]
    live: dict[str, str | int | float] | None
    lat_lon: tuple[float, float] | None = None
    registry: DeviceRecord | None = None
    snapshot: Snapshot | None = None
    anomalies: list[Anomaly] = msgspec.field(default_factory=list)
    """Anomaly episodes opened, escalated or closed by this batch (upserts by identity)."""
    alerts: list[AlertTransition] = msgspec.field(default_factory=list)
    """Alert transitions: opened, escalated, re-triggered, auto-resolved."""
    recheck: bool = False
    """The twin crossed a boundary that may change its maintenance recommendations."""
    kind: str = ""
    tickets: list[int] = msgspec.field(default_factory=list)
    """The messages this output holds everything of: acknowledged once it is committed."""
    repeats: int = 0
    """Readings the twin had just applied, delivered again: neither stored nor counted."""


class CatchUp(msgspec.Struct, frozen=True, gc=False):
    """What a twin restored from its snapshot after a crash must still learn.

    ``readings``: rows of its device stored after the snapshot's transaction, oldest commit
    first, replayed into the twin (they are stored already). ``seen``: the identities
    ``(ts_ms, seq or -1)`` of every row stored shortly before and after the snapshot: the broker
    delivers again what was stored but not yet acknowledged when the engine died, and those
    readings must not be counted twice.
    """

    readings: list[Reading]
    seen: frozenset[tuple[int, int]]


class DeviceInbox(msgspec.Struct, frozen=True, gc=False):
    """One device's share of a source batch: what its twin processes in one step."""

    device_id: str
    items: list[Inbound | DeadLetter]
    messages: int
    tickets: list[int] = msgspec.field(default_factory=list)
