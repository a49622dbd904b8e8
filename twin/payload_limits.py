"""Bounds on what one message may carry, and the checks that run on its bytes before any
decoder sees them (a document nested a thousand deep would exhaust the decoder's recursion)."""

from __future__ import annotations

import re
from typing import Any

import msgspec
import numpy as np

from twin import defaults
from twin.records import Reason

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
"""A JSON string (escapes included): blanked before counting brackets and digits."""
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")
NUL_ESCAPE = b"\\u0000"
"""How NUL looks inside a JSON string: only a payload holding it can hold NUL."""


class ParseLimits(msgspec.Struct, frozen=True):
    """Bounds on what one message may carry."""

    max_payload_bytes: int = defaults.MAX_PAYLOAD_BYTES
    max_readings_per_message: int = 10_000
    max_metrics_per_reading: int = 256
    max_attributes: int = 256
    max_future_skew_ms: int = defaults.MAX_FUTURE_SKEW_S * 1000
    min_ts_ms: int = 946_684_800_000  # 2000-01-01T00:00:00Z
    max_depth: int = 32
    """Nesting of arrays and objects; a reading needs 3 (batch, reading, values)."""
    max_number_digits: int = 40
    """Digits in one JSON number: more is never a measurement, and decoding it costs."""
    max_keys: int = 256
    """Keys of one event body (readings and attributes have their own limits)."""
    retention_days: int = 0
    """Raw retention: a reading in a day that retention has already dropped is refused as
    ``expired`` (it would be deleted by the next maintenance). 0 = no limit."""


def structure_problem(payload: bytes, limits: ParseLimits) -> tuple[Reason, str] | None:
    """Depth and number length, from the bytes, before the decoder sees them."""
    opened = payload.count(b"[") + payload.count(b"{")
    digits = limits.max_number_digits + 1
    long_run = _LONG_RUNS.get(digits) or _LONG_RUNS.setdefault(digits, b"9" * digits)
    if opened <= limits.max_depth and long_run not in payload.translate(_DIGITS_AS_NINES):
        return None  # the common case: nothing can be too deep or too long
    long_digits = _LONG_DIGITS_RE[limits.max_number_digits]
    bare = _STRING.sub(b'""', payload) if b'"' in payload else payload
    if opened > limits.max_depth:
        brackets = np.frombuffer(bare.translate(None, _NOT_BRACKETS), dtype=np.uint8)
        if brackets.size:
            # '[' 91 and '{' 123 have bit 1 set, ']' 93 and '}' 125 do not
            steps = ((brackets >> 1) & 1).astype(np.int32) * 2 - 1
            depth = int(np.cumsum(steps).max())
            if depth > limits.max_depth:
                return Reason.TOO_DEEP, f"nested {depth} deep, more than {limits.max_depth}"
    if long_digits.search(bare) is not None:
        return Reason.NON_FINITE, f"a number has more than {limits.max_number_digits} digits"
    return None


_DIGITS_AS_NINES = bytes(0x39 if 0x30 <= c <= 0x39 else 0x20 for c in range(256))
"""Every digit as ``9``, everything else as a space: a run of digits is then a substring."""
_LONG_RUNS: dict[int, bytes] = {}


class _DigitPatterns(dict):
    def __missing__(self, digits: int) -> re.Pattern[bytes]:
        pattern = self[digits] = re.compile(rb"[0-9]{%d,}" % (digits + 1))
        return pattern


_LONG_DIGITS_RE = _DigitPatterns()


def holds_nul(doc: Any) -> bool:
    """True if any key or string in the document holds NUL (iterative: depth is bounded)."""
    stack = [doc]
    while stack:
        item = stack.pop()
        t = type(item)
        if t is str:
            if "\x00" in item:
                return True
        elif t is dict:
            for k, v in item.items():
                if "\x00" in k:
                    return True
                stack.append(v)
        elif t is list:
            stack.extend(item)
    return False
