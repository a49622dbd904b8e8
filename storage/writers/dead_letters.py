"""Dead letters: every refused message or reading, with its reason, copied in one COPY."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from storage.writers.batch import WriteResult, pg_text
from twin.clock import ms_to_datetime
from twin.records import DeadLetter, TwinOutput

_COPY_DEAD = "COPY dead_letters (received_at, topic, device_id, reason, detail, payload) FROM STDIN"


class DeadLetterRows:
    def __init__(self, extra: Sequence[DeadLetter] = ()) -> None:
        self.rows = [_row(d) for d in extra]

    def add(self, out: TwinOutput, last: bool) -> None:
        self.rows += [_row(d) for d in out.dead_letters]

    def write(self, cur: psycopg.Cursor, result: WriteResult) -> None:
        if not self.rows:
            return
        with cur.copy(_COPY_DEAD) as copy:
            for row in self.rows:
                copy.write_row(row)
        result.dead_letters = len(self.rows)


def _row(d: DeadLetter) -> tuple[object, ...]:
    return (
        ms_to_datetime(d.received_ms),
        pg_text(d.topic),
        d.device_id,
        d.reason.value,
        pg_text(d.detail),
        d.payload,
    )
