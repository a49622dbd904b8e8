"""The parser's dead letters: the message whole (its bytes, up to a limit), or one element of a
batch (its own JSON), each with its reason."""

from __future__ import annotations

from typing import Any

import msgspec

from twin.records import DeadLetter, RawMessage, Reason

DEAD_LETTER_PAYLOAD_LIMIT = 64 * 1024
_encode = msgspec.json.Encoder().encode


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def dead(msg: RawMessage, reason: Reason, detail: str, device_id: str | None) -> DeadLetter:
    payload = msg.payload
    if len(payload) > DEAD_LETTER_PAYLOAD_LIMIT:
        detail = f"{detail} (payload truncated to {DEAD_LETTER_PAYLOAD_LIMIT} bytes)"
        payload = payload[:DEAD_LETTER_PAYLOAD_LIMIT]
    return DeadLetter(
        received_ms=msg.received_ms,
        topic=msg.topic,
        reason=reason,
        detail=detail,
        payload=payload,
        device_id=device_id,
        ticket=msg.ticket,
    )


def dead_part(
    msg: RawMessage, item: Any, index: int, count: int, reason: Reason, detail: str, device_id: str
) -> DeadLetter:
    """A dead letter for one element of a batch: its own JSON, not the whole message."""
    return DeadLetter(
        received_ms=msg.received_ms,
        topic=msg.topic,
        reason=reason,
        detail=f"reading {index + 1} of {count}: {detail}",
        payload=_encode(item),
        device_id=device_id,
    )
