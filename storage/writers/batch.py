"""What every row builder shares: the builder contract and the batch's tally."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

import msgspec
import psycopg

from twin.records import TwinOutput

json = msgspec.json.Encoder().encode


@dataclass
class WriteResult:
    """What one batch wrote (``duplicates`` = readings already stored before)."""

    readings: int = 0
    inserted: int = 0
    dead_letters: int = 0
    events: int = 0
    devices: int = 0
    snapshots: int = 0
    anomalies: int = 0
    alerts: int = 0
    partitions_created: list[date] = field(default_factory=list)

    @property
    def duplicates(self) -> int:
        return self.readings - self.inserted


class RowBuilder(Protocol):
    """Collects one feature's rows from a batch, then writes them in the batch's transaction."""

    def add(self, out: TwinOutput, last: bool) -> None:
        """``last``: this is its twin's last output of the batch."""

    def write(self, cur: psycopg.Cursor, result: WriteResult) -> None: ...


def pg_text(value: str) -> str:
    """PostgreSQL text cannot hold NUL; dead letters keep the raw bytes in ``payload`` anyway."""
    return value.replace("\x00", "\ufffd") if "\x00" in value else value
