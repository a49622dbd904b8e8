"""Turn raw MQTT messages into readings, attributes, events or dead letters.

Every payload form of the wire contract is accepted on the telemetry topic: one reading
``{"ts": ..., "seq": ..., "values": {...}}``, a JSON array of those, or flat key/values
``{"speed_kmh": 62.5}``. ``ts`` is epoch milliseconds or RFC 3339 text with an offset and
defaults to the time of arrival. Anything else becomes a :class:`~twin.records.DeadLetter`
with the raw bytes and a reason: :meth:`Parser.parse` never raises on any input.

Poison input is refused before it can hurt: the payload size first, then nesting depth and
number length from a scan of the bytes (a document nested a thousand deep would exhaust the
decoder's recursion), then per-object key counts and array lengths after decoding. A last guard
turns any exception the parser still raises into a ``parse_failed`` dead letter, so no byte
sequence on any topic can stop the dataflow.

Checks here are those that need no device knowledge (shape, types, finiteness, names, time).
Range checks against the device's profile happen in the twin.
"""

from __future__ import annotations

import re
import sys
from datetime import datetime
from typing import Annotated, Any

import msgspec

from twin.parse_dead_letters import dead, dead_part, json_type
from twin.payload_limits import NUL_ESCAPE, ParseLimits, holds_nul, structure_problem
from twin.profiles import KINDS
from twin.records import (
    Attributes,
    Channel,
    DeadLetter,
    DeviceEvent,
    Inbound,
    RawMessage,
    Reading,
    Reason,
)
from twin.topics import TopicRouter

METRIC_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")
RESERVED_NAMES = frozenset(
    {
        "device_id", "kind", "profile", "status", "last_seen", "last_seen_ms", "updated_ms",
        "messages", "readings", "rejected", "km_per_day", "usage_category",
        "operating_hours", "load_ema", "ts", "seq",
    }
)  # fmt: skip
"""Names used by the live twin hash; a metric may not shadow them."""

MAX_SAFE_INT = 2**53
_NON_FINITE_HINT = re.compile(rb"[:\[,]\s*-?(NaN|Infinity)\s*[,}\]]")
"""Python's json module writes NaN / Infinity tokens, which are not JSON: say so precisely."""
MS_PER_DAY = 86_400_000


class _Bad(Exception):
    """A refusal inside the parser; never escapes :func:`parse_message`."""

    def __init__(self, reason: Reason, detail: str) -> None:
        self.reason = reason
        self.detail = detail


_decode = msgspec.json.Decoder().decode
_DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError)


_Number = (
    Annotated[int, msgspec.Meta(ge=-MAX_SAFE_INT, le=MAX_SAFE_INT)]
    | Annotated[float, msgspec.Meta(ge=-sys.float_info.max, le=sys.float_info.max)]
)


class _WireReading(msgspec.Struct, forbid_unknown_fields=True):
    """The common telemetry form, ``{"ts": ms, "seq": n, "values": {...}}``, typed, so that the
    decoder checks every value in C. Anything it refuses takes the general path, which gives
    the precise reason."""

    values: dict[str, _Number]
    ts: int | None = None
    seq: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)] | None = None


_decode_reading = msgspec.json.Decoder(_WireReading).decode


class Parser:
    """Parses raw messages with fixed limits and topic prefix.

    ``parse`` is a pure function of the message: "now" for the future-timestamp check is the
    message's own arrival time, so a replay gives the same verdicts. ``fast``: one reading in
    the common form is decoded typed (values checked by the decoder), everything else and
    anything that fails goes the general way; both give the same records (a test holds them
    to it).
    """

    def __init__(
        self, limits: ParseLimits | None = None, prefix: str = "", *, fast: bool = True
    ) -> None:
        self.limits = limits or ParseLimits()
        self.router = TopicRouter(prefix)
        self.fast = fast
        self._good_names: set[str] = set()

    def parse(self, msg: RawMessage) -> list[Inbound | DeadLetter]:
        """Records or dead letters, never an exception (the last guard of the dataflow)."""
        try:
            return self._parse(msg)
        except Exception as exc:  # a parser bug must cost one message, never the flow
            device_id = None
            try:
                route = self.router.route(msg.topic)
                device_id = route[0] if route is not None else None
            except Exception:
                pass
            detail = f"the parser failed on this message: {type(exc).__name__}: {exc}"[:500]
            return [dead(msg, Reason.PARSE_FAILED, detail, device_id)]

    def _parse(self, msg: RawMessage) -> list[Inbound | DeadLetter]:
        route = self.router.route(msg.topic)
        if route is None:
            return [
                dead(
                    msg,
                    Reason.BAD_TOPIC,
                    "topic is not {prefix}devices/{id}/"
                    "telemetry|attributes|events with a valid device id",
                    None,
                )
            ]
        device_id, channel = route
        if len(msg.payload) > self.limits.max_payload_bytes:
            return [
                dead(
                    msg,
                    Reason.OVERSIZE,
                    f"payload of {len(msg.payload)} bytes exceeds {self.limits.max_payload_bytes}",
                    device_id,
                )
            ]
        refused = structure_problem(msg.payload, self.limits)
        if refused is not None:
            return [dead(msg, refused[0], refused[1], device_id)]
        if self.fast and channel is Channel.TELEMETRY:
            reading = self._common_reading(msg, device_id)
            if reading is not None:
                return [reading]
        try:
            doc = _decode(msg.payload)
        except _DECODE_ERRORS as exc:
            detail = str(exc) or type(exc).__name__
            if isinstance(exc, UnicodeDecodeError) or "UTF-8" in detail:
                return [dead(msg, Reason.BAD_ENCODING, f"payload is not UTF-8 ({detail})",
                              device_id)]  # fmt: skip
            if _NON_FINITE_HINT.search(msg.payload) or "out of range" in detail:
                return [
                    dead(
                        msg, Reason.NON_FINITE, f"a number is NaN or infinite ({detail})", device_id
                    )
                ]
            return [dead(msg, Reason.BAD_JSON, detail, device_id)]
        if channel is Channel.TELEMETRY:
            return self._telemetry(msg, device_id, doc)
        if NUL_ESCAPE in msg.payload and holds_nul(doc):
            return [
                dead(
                    msg,
                    Reason.STORE_REJECTED,
                    "a string holds NUL (\\u0000), which PostgreSQL text and JSON cannot store",
                    device_id,
                )
            ]
        if channel is Channel.ATTRIBUTES:
            return [self._attributes(msg, device_id, doc)]
        return self._events(msg, device_id, doc)

    # -- telemetry -----------------------------------------------------------------------

    def _common_reading(self, msg: RawMessage, device_id: str) -> Reading | None:
        """One reading in the common form with nothing to refuse, or None (the general path
        then decides, and explains)."""
        try:
            wire = _decode_reading(msg.payload)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None
        values = wire.values
        limits = self.limits
        if not values or len(values) > limits.max_metrics_per_reading:
            return None
        if not self._good_names.issuperset(values):
            return None  # a name not seen before: checked (and learnt) the general way
        received = msg.received_ms
        ts_ms = received if wire.ts is None else wire.ts
        if ts_ms < limits.min_ts_ms or ts_ms > received + limits.max_future_skew_ms:
            return None
        keep = limits.retention_days
        if keep and ts_ms // MS_PER_DAY < received // MS_PER_DAY - keep:
            return None
        return Reading(device_id=device_id, ts_ms=ts_ms, values=values, received_ms=received,
                       seq=wire.seq)  # fmt: skip

    def _telemetry(self, msg: RawMessage, device_id: str, doc: Any) -> list[Inbound | DeadLetter]:
        if type(doc) is dict:
            try:
                return [self._reading(doc, device_id, msg.received_ms)]
            except _Bad as bad:
                return [dead(msg, bad.reason, bad.detail, device_id)]
        if type(doc) is not list:
            return [
                dead(msg, Reason.BAD_SHAPE, "telemetry must be a JSON object or array", device_id)
            ]
        n = len(doc)
        if n == 0:
            return [dead(msg, Reason.BAD_SHAPE, "empty batch", device_id)]
        if n > self.limits.max_readings_per_message:
            return [
                dead(
                    msg,
                    Reason.TOO_MANY,
                    f"{n} readings exceed {self.limits.max_readings_per_message}",
                    device_id,
                )
            ]
        out: list[Inbound | DeadLetter] = []
        for i, item in enumerate(doc):
            if type(item) is not dict:
                out.append(
                    dead_part(
                        msg,
                        item,
                        i,
                        n,
                        Reason.BAD_SHAPE,
                        "reading must be a JSON object",
                        device_id,
                    )
                )
                continue
            try:
                out.append(self._reading(item, device_id, msg.received_ms))
            except _Bad as bad:
                out.append(dead_part(msg, item, i, n, bad.reason, bad.detail, device_id))
        return out

    def _reading(self, item: dict[str, Any], device_id: str, received_ms: int) -> Reading:
        values = item.get("values")
        if values is None:  # flat key/values form
            values = {k: v for k, v in item.items() if k != "ts" and k != "seq"}
        elif type(values) is not dict:
            raise _Bad(Reason.BAD_SHAPE, "values must be a JSON object")
        if not values:
            raise _Bad(Reason.BAD_SHAPE, "reading has no values")
        if len(values) > self.limits.max_metrics_per_reading:
            raise _Bad(
                Reason.TOO_MANY,
                f"{len(values)} metrics exceed {self.limits.max_metrics_per_reading}",
            )
        good = self._good_names
        for name, value in values.items():
            if name not in good:
                self._check_name(name)
            t = type(value)
            if t is float:
                if value - value != 0.0:  # NaN or ±Inf
                    raise _Bad(Reason.NON_FINITE, f"{name} is not a finite number")
            elif t is int:
                if not -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
                    raise _Bad(Reason.NON_FINITE, f"{name} is too large to be a measurement")
            else:
                raise _Bad(Reason.BAD_TYPE, f"{name} must be a number, not {json_type(value)}")
        ts = item.get("ts")
        ts_ms = received_ms if ts is None else self._ts(ts, received_ms)
        keep = self.limits.retention_days
        if keep and ts_ms // MS_PER_DAY < received_ms // MS_PER_DAY - keep:
            raise _Bad(
                Reason.EXPIRED,
                f"ts is {(received_ms - ts_ms) / MS_PER_DAY:.1f} days old: its day is past the "
                f"raw retention of {keep} days, so it would be deleted at once",
            )
        seq = item.get("seq")
        if seq is not None and (type(seq) is not int or not 0 <= seq < 2**63):
            raise _Bad(Reason.BAD_SEQ, "seq must be a non-negative integer")
        return Reading(
            device_id=device_id, ts_ms=ts_ms, values=values, received_ms=received_ms, seq=seq
        )

    def _check_name(self, name: str) -> None:
        if METRIC_NAME_RE.fullmatch(name) is None:
            raise _Bad(
                Reason.BAD_METRIC_NAME,
                f"metric name {name[:80]!r} is not [A-Za-z_][A-Za-z0-9_.-]{{0,63}}",
            )
        if name in RESERVED_NAMES:
            raise _Bad(Reason.BAD_METRIC_NAME, f"metric name {name!r} is reserved")
        if len(self._good_names) < 100_000:
            self._good_names.add(name)

    def _ts(self, ts: Any, received_ms: int) -> int:
        t = type(ts)
        if t is int:
            ts_ms = ts
        elif t is float:
            if ts - ts != 0.0:
                raise _Bad(Reason.BAD_TS, "ts is not finite")
            ts_ms = int(ts)
        elif t is str:
            try:
                dt = datetime.fromisoformat(ts)
            except ValueError:
                raise _Bad(Reason.BAD_TS, f"ts {ts[:64]!r} is not RFC 3339") from None
            if dt.tzinfo is None:
                raise _Bad(Reason.BAD_TS, f"ts {ts[:64]!r} has no UTC offset")
            ts_ms = round(dt.timestamp() * 1000)
        else:
            raise _Bad(
                Reason.BAD_TS,
                f"ts must be epoch milliseconds or RFC 3339 text, not {json_type(ts)}",
            )
        if ts_ms < self.limits.min_ts_ms:
            raise _Bad(
                Reason.TS_TOO_OLD,
                f"ts {ts_ms} is before 2000-01-01 (seconds instead of milliseconds?)",
            )
        if ts_ms > received_ms + self.limits.max_future_skew_ms:
            raise _Bad(
                Reason.TS_IN_FUTURE, f"ts is {(ts_ms - received_ms) / 1000:.0f} s ahead of arrival"
            )
        return ts_ms

    # -- attributes and events -----------------------------------------------------------

    def _attributes(self, msg: RawMessage, device_id: str, doc: Any) -> Inbound | DeadLetter:
        if type(doc) is not dict:
            return dead(msg, Reason.BAD_SHAPE, "attributes must be a JSON object", device_id)
        if len(doc) > self.limits.max_attributes:
            return dead(
                msg,
                Reason.TOO_MANY,
                f"{len(doc)} attributes exceed {self.limits.max_attributes}",
                device_id,
            )
        kind = doc.get("kind")
        if kind is not None and kind not in KINDS:
            return dead(msg, Reason.BAD_TYPE, f"kind must be one of {', '.join(KINDS)}", device_id)
        profile = doc.get("profile")
        if profile is not None and (
            type(profile) is not str or METRIC_NAME_RE.fullmatch(profile) is None
        ):
            return dead(msg, Reason.BAD_TYPE, "profile must be a profile name", device_id)
        return Attributes(device_id=device_id, attributes=doc, received_ms=msg.received_ms)

    def _events(self, msg: RawMessage, device_id: str, doc: Any) -> list[Inbound | DeadLetter]:
        items = doc if type(doc) is list else [doc]
        if not items:
            return [dead(msg, Reason.BAD_SHAPE, "empty event batch", device_id)]
        if len(items) > self.limits.max_readings_per_message:
            return [dead(msg, Reason.TOO_MANY, f"{len(items)} events in one message", device_id)]
        out: list[Inbound | DeadLetter] = []
        n = len(items)
        for i, item in enumerate(items):
            try:
                out.append(self._event(item, device_id, msg.received_ms))
            except _Bad as bad:
                if n == 1:
                    out.append(dead(msg, bad.reason, bad.detail, device_id))
                else:
                    out.append(dead_part(msg, item, i, n, bad.reason, bad.detail, device_id))
        return out

    def _event(self, item: Any, device_id: str, received_ms: int) -> DeviceEvent:
        if type(item) is not dict:
            raise _Bad(Reason.BAD_SHAPE, "event must be a JSON object")
        etype = item.get("type")
        if type(etype) is not str or METRIC_NAME_RE.fullmatch(etype) is None:
            raise _Bad(Reason.BAD_TYPE, "event needs a type name")
        ts = item.get("ts")
        ts_ms = received_ms if ts is None else self._ts(ts, received_ms)
        if len(item) > self.limits.max_keys:
            raise _Bad(Reason.TOO_MANY, f"{len(item)} keys exceed {self.limits.max_keys}")
        body = {k: v for k, v in item.items() if k != "ts" and k != "type"}
        return DeviceEvent(
            device_id=device_id, ts_ms=ts_ms, type=etype, body=body, received_ms=received_ms
        )
