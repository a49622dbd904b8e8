"""Writes a batch of twin outputs to PostgreSQL in one transaction.

The sink composes one row builder per feature (``storage/writers/``): telemetry, dead letters,
the registry, events and snapshots, anomalies, alerts with their outbox, and the marks the jobs
beside the dataflow follow. Each collects its rows from the batch; all of them are written on
one cursor and committed once.

Connection problems surface as :class:`~twin.errors.StoreUnavailable` (retry later); a batch
the server refuses for its content surfaces as :class:`~twin.errors.StoreRejected`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence

import psycopg
from psycopg import errors as pg_errors

from storage.database import connect
from storage.writers.alerts import AlertRows
from storage.writers.anomalies import AnomalyRows
from storage.writers.batch import RowBuilder, WriteResult
from storage.writers.dead_letters import DeadLetterRows
from storage.writers.marks import RecheckQueue, RollupMarks
from storage.writers.registry import EventRows, RegistryRows, SnapshotRows
from storage.writers.telemetry import STAGE, TelemetryRows
from twin import defaults
from twin.errors import StoreRejected, StoreUnavailable
from twin.records import DeadLetter, TwinOutput

__all__ = ["PgWriter", "WriteResult"]

log = logging.getLogger(__name__)

_RELAY = "INSERT INTO ack_relay (process, tickets) VALUES (%s, %s)"
"""Tickets of messages another process of a cluster read: relayed back to it in the same
transaction that commits what they produced (``flows.connectors.ack_relay``)."""


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class PgWriter:
    """One connection, opened on first use and reopened after a failure."""

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], int] = wall_clock_ms,
        history_interval_s: float = defaults.HISTORY_INTERVAL_S,
    ) -> None:
        self._url = url
        self._history_interval_s = history_interval_s
        self._clock = clock
        """Epoch ms now: decides which readings are late for an hour already rolled up."""
        self._conn: psycopg.Connection | None = None
        self._days: set[int] = set()  # days since epoch known to have a partition

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            try:
                conn = connect(self._url)
                conn.execute(STAGE)
                conn.commit()
            except psycopg.OperationalError as exc:
                raise StoreUnavailable(f"PostgreSQL unreachable: {exc}") from exc
            self._conn = conn
            self._days.clear()
        return self._conn

    def close(self) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.close()
        self._conn = None

    def write(
        self,
        outputs: Sequence[TwinOutput],
        dead_letters: Sequence[DeadLetter] = (),
        relay: Mapping[int, list[int]] | None = None,
    ) -> WriteResult:
        """One transaction; ``relay``: tickets of other processes' messages, by process."""
        conn = self._connection()
        try:
            result = self._write(conn, outputs, dead_letters)
            if relay:
                with conn.cursor() as cur:
                    cur.executemany(_RELAY, list(relay.items()))
            conn.commit()
            return result
        except pg_errors.CheckViolation as exc:
            # a partition vanished under us (retention elsewhere): forget what we knew, retry once
            self._rollback()
            if "no partition" not in str(exc):
                raise StoreRejected(str(exc)) from exc
            self._days.clear()
            return self.write(outputs, dead_letters, relay)
        except psycopg.OperationalError as exc:
            self.close()
            raise StoreUnavailable(f"PostgreSQL write failed: {exc}") from exc
        except psycopg.Error as exc:
            self._rollback()
            raise StoreRejected(f"PostgreSQL refused the batch: {exc}") from exc

    def _rollback(self) -> None:
        try:
            if self._conn is not None:
                self._conn.rollback()
        except psycopg.Error:
            self.close()

    def _write(
        self,
        conn: psycopg.Connection,
        outputs: Sequence[TwinOutput],
        extra_dead: Sequence[DeadLetter],
    ) -> WriteResult:
        telemetry = TelemetryRows(self._days)
        builders: list[RowBuilder] = [  # in the order they are written
            RegistryRows(),
            telemetry,
            AlertRows(),
            AnomalyRows(),
            EventRows(),
            RollupMarks(self._clock()),
            RecheckQueue(),
            SnapshotRows(self._history_interval_s),
            DeadLetterRows(extra_dead),
        ]
        last = {out.device_id: out for out in outputs}
        for out in outputs:
            is_last = last[out.device_id] is out
            for builder in builders:
                builder.add(out, is_last)
        result = WriteResult()
        with conn.cursor() as cur:
            for builder in builders:
                builder.write(cur, result)
        telemetry.committed()
        return result
