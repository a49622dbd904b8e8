"""The PostgreSQL sink: retried, never dropped (the Redis sink is in ``redis_sink``).

PostgreSQL gets everything that must not be lost, and only once a batch has committed are its
messages reported to the ledger (``flows.connectors.ledger``) and acknowledged to the broker.
Batches commit on a writer thread, in order, while the dataflow prepares the next one; while
PostgreSQL is unreachable the writer retries with exponential backoff and its queue of one
batch fills, holding the worker, so the MQTT source stops reading and the broker keeps the
backlog; a batch the server refuses for its *content* is split per device and what still fails
becomes dead letters (``store_rejected``). A second stop signal abandons retrying, and the batch
stays unacknowledged.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence

import msgspec
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from flows.connectors.ledger import CommitLedger
from flows.runtime import metrics
from storage.maintenance import maintain
from storage.pg_writer import PgWriter, WriteResult
from twin import defaults
from twin.errors import StoreRejected, StoreUnavailable
from twin.records import Channel, DeadLetter, Reason, TwinOutput
from twin.topics import TopicRouter

log = logging.getLogger(__name__)

_json = msgspec.json.Encoder().encode

SNAPSHOT_LOG_S = 300.0
"""How often a PostgreSQL sink worker says how many twin snapshots it wrote."""


class _Abandoned(Exception):
    """A second stop signal: give up writing; nothing of the batch is acknowledged."""


class Backoff:
    """Exponential backoff with a ceiling."""

    def __init__(self, initial_s: float = 0.1, max_s: float = 5.0) -> None:
        self.initial_s, self.max_s = initial_s, max_s
        self.delay = initial_s

    def next(self) -> float:
        delay = self.delay
        self.delay = min(self.delay * 2, self.max_s)
        return delay


class _PgPartition(StatelessSinkPartition[TwinOutput | DeadLetter]):
    """Commits each batch on a writer thread while the dataflow prepares the next: the
    dataflow hands a batch over only once the one before it is committed (one slot), so at
    most one batch commits while the next is prepared; that is also how an unreachable
    PostgreSQL holds up the flow and, through it, the source.
    Batches commit in order, and each is acknowledged only once committed."""

    def __init__(self, sink: PgSink, worker_index: int) -> None:
        self._sink = sink
        self._writer = PgWriter(sink.url, history_interval_s=sink.history_interval_s)
        self._maintains = worker_index == 0
        self._next_maintenance = 0.0
        self._snapshots = 0
        self._snapshots_since = time.monotonic()
        self._relay: dict[int, list[int]] = {}
        """Other processes' tickets in the batch being written (a cluster)."""
        self._queue: queue.SimpleQueue[list[TwinOutput | DeadLetter] | None] = queue.SimpleQueue()
        self._slot = threading.Semaphore(1)
        """Held from the hand-over of a batch until it is committed."""
        self._failure: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"postgres-writer-{worker_index}", daemon=True
        )
        self._thread.start()

    def write_batch(self, items: list[TwinOutput | DeadLetter]) -> None:
        while True:
            if self._failure is not None:  # a defect in the writer stops the flow, visibly
                raise RuntimeError("the PostgreSQL writer failed") from self._failure
            if self._slot.acquire(timeout=1.0):
                self._queue.put(items)
                return

    def _run(self) -> None:
        while True:
            items = self._queue.get()
            if items is None:
                return
            try:
                self._commit(items)
            except BaseException as exc:
                log.exception("the PostgreSQL writer failed")
                self._failure = exc
                return
            finally:
                self._slot.release()

    def _commit(self, items: list[TwinOutput | DeadLetter]) -> None:
        outputs = [i for i in items if type(i) is TwinOutput]
        dead = [i for i in items if type(i) is DeadLetter]
        started = time.perf_counter()
        ledger = self._sink.ledger
        mine: list[int] = []
        self._relay = {}
        if ledger is not None:
            tickets = [t for o in outputs for t in o.tickets] + [d.ticket for d in dead]
            mine, self._relay = ledger.split(tickets)
        try:
            try:
                result = self._until_available(outputs, dead)
            except StoreRejected as exc:
                metrics.SINK_ERRORS.labels("postgres").inc()
                log.error("%s; writing the batch device by device", exc)
                result = self._isolate(outputs, dead)
        except _Abandoned:
            log.error(
                "PostgreSQL still unreachable at forced stop; %d readings not written (their "
                "messages stay unacknowledged: the broker delivers them again)",
                sum(len(o.readings) for o in outputs),
            )
            return
        if ledger is not None:  # everything these messages produced is committed
            ledger.committed(mine)
        metrics.SINK_SECONDS.labels("postgres").observe(time.perf_counter() - started)
        metrics.SINK_BATCH.labels("postgres").observe(len(items))
        metrics.latency("postgres", outputs, time.time_ns() // 1_000_000)
        _count(result, outputs, dead)
        self._snapshots += result.snapshots
        if time.monotonic() - self._snapshots_since >= SNAPSHOT_LOG_S:
            self._log_snapshots()
        if self._maintains and time.monotonic() >= self._next_maintenance:
            self._maintain()

    def _until_available(self, outputs: list[TwinOutput], dead: list[DeadLetter]) -> WriteResult:
        """Write, retrying with backoff while PostgreSQL is unreachable.

        Raises StoreRejected when the server refuses the content, and _Abandoned when a second
        stop signal gives up retrying.
        """
        backoff = Backoff(self._sink.retry_initial_s, self._sink.retry_max_s)
        attempts = 0
        while True:
            try:
                result = self._writer.write(outputs, dead, self._relay)
                self._relay = {}  # relayed once, with the first transaction that commits
                return result
            except StoreUnavailable as exc:
                attempts += 1
                metrics.SINK_RETRIES.labels("postgres").inc()
                if self._sink.abandon.is_set():
                    raise _Abandoned from exc
                delay = backoff.next()
                if attempts == 1 or attempts % 20 == 0:
                    log.warning("%s; retry %d in %.1fs", exc, attempts, delay)
                time.sleep(delay)

    def _isolate(self, outputs: list[TwinOutput], dead: list[DeadLetter]) -> WriteResult:
        """Write what the store accepts device by device; what it refuses becomes dead letters."""
        total = WriteResult()
        refused: list[DeadLetter] = []
        relay, self._relay = self._relay, {}  # relayed once everything is written, below
        groups: list[tuple[list[TwinOutput], list[DeadLetter]]] = [([o], []) for o in outputs]
        groups += [([], [d]) for d in dead]
        for outs, dls in groups:
            try:
                _merge(total, self._until_available(outs, dls))
            except StoreRejected as exc:
                refused.extend(_refused(outs, dls, str(exc), self._sink.topic_prefix))
        if refused:
            try:
                _merge(total, self._until_available([], refused))
            except StoreRejected as exc:
                log.error("PostgreSQL refused %d dead letters as well: %s", len(refused), exc)
        if relay:
            self._relay = relay
            self._until_available([], [])
        return total

    def _maintain(self) -> None:
        """Partitions ahead of time, raw retention and old notification records, hourly, from
        one worker."""
        self._next_maintenance = time.monotonic() + self._sink.maintenance_interval_s
        try:
            done = maintain(
                self._sink.url,
                ahead_days=self._sink.partitions_ahead_days,
                retention_days=self._sink.retention_days,
                hourly_retention_days=self._sink.hourly_retention_days,
                daily_retention_days=self._sink.daily_retention_days,
            )
            if done.created or done.dropped:
                log.info(
                    "telemetry partitions: created %s, dropped %s",
                    [str(d) for d in done.created],
                    [str(d) for d in done.dropped],
                )
            if done.notifications_pruned or done.rollups_pruned:
                log.info("pruned %d notification records and %d rolled-up rows past retention",
                         done.notifications_pruned, done.rollups_pruned)  # fmt: skip
        except Exception as exc:  # maintenance is retried next hour; never stops ingestion
            self._next_maintenance = time.monotonic() + 60
            log.warning("partition maintenance failed: %s", exc)

    def _log_snapshots(self) -> None:
        """One line every few minutes (and at stop), not one per snapshot."""
        if self._snapshots:
            minutes = (time.monotonic() - self._snapshots_since) / 60
            log.info("twin snapshots: %d written in %.1f min", self._snapshots, minutes)
        self._snapshots, self._snapshots_since = 0, time.monotonic()

    def close(self) -> None:
        self._queue.put(None)  # after the batch in hand, if any
        self._thread.join()
        self._log_snapshots()
        self._writer.close()


def _count(result: WriteResult, outputs: Sequence[TwinOutput], dead: Sequence[DeadLetter]) -> None:
    metrics.ROWS.labels("telemetry").inc(result.inserted)
    metrics.READINGS.inc(result.readings)
    metrics.readings_by_kind(outputs)
    for o in outputs:
        if o.snapshot is not None:
            metrics.SNAPSHOT_BYTES.observe(len(o.snapshot.state))
            metrics.SNAPSHOT_SECONDS.observe(o.snapshot.encode_ns / 1e9)
    repeats = result.duplicates + sum(o.repeats for o in outputs)
    if repeats:
        metrics.DUPLICATES.inc(repeats)
    if result.dead_letters:
        metrics.ROWS.labels("dead_letters").inc(result.dead_letters)
        for d in dead:
            metrics.DEAD_LETTERS.labels(d.reason.value).inc()
        for o in outputs:
            for d in o.dead_letters:
                metrics.DEAD_LETTERS.labels(d.reason.value).inc()
    if result.snapshots:
        metrics.ROWS.labels("twin_snapshots").inc(result.snapshots)
    if result.events:
        metrics.ROWS.labels("device_events").inc(result.events)
    if result.devices:
        metrics.ROWS.labels("devices").inc(result.devices)
    if result.alerts:
        for o in outputs:
            for t in o.alerts:
                metrics.ALERT_TRANSITIONS.labels(t.transition, t.severity or "none").inc()
    if result.anomalies:
        metrics.ROWS.labels("anomalies").inc(result.anomalies)
        for o in outputs:
            for a in o.anomalies:
                if a.ended_ms is None:
                    metrics.ANOMALIES.labels(a.detector, a.kind, a.severity).inc()


def _merge(total: WriteResult, part: WriteResult) -> None:
    total.readings += part.readings
    total.inserted += part.inserted
    total.dead_letters += part.dead_letters
    total.events += part.events
    total.devices += part.devices
    total.snapshots += part.snapshots
    total.anomalies += part.anomalies
    total.alerts += part.alerts


def _refused(
    outs: list[TwinOutput], dls: list[DeadLetter], error: str, prefix: str = ""
) -> list[DeadLetter]:
    """Everything a refused batch carried, as dead letters on the topics it came from."""
    detail = f"refused by PostgreSQL: {error[:500]}"
    topics = TopicRouter(prefix)
    out: list[DeadLetter] = []
    for o in outs:
        for r in o.readings:
            out.append(
                DeadLetter(
                    received_ms=r.received_ms,
                    topic=topics.topic(o.device_id, Channel.TELEMETRY),
                    reason=Reason.STORE_REJECTED,
                    detail=detail,
                    payload=_json({"ts": r.ts_ms, "seq": r.seq, "values": r.values}),
                    device_id=o.device_id,
                )
            )
        for e in o.events:
            out.append(
                DeadLetter(
                    received_ms=e.received_ms,
                    topic=topics.topic(o.device_id, Channel.EVENTS),
                    reason=Reason.STORE_REJECTED,
                    detail=detail,
                    payload=_json({"ts": e.ts_ms, "type": e.type, **e.body}),
                    device_id=o.device_id,
                )
            )
        reg = o.registry
        if reg is not None:  # the device's attributes: never silently gone
            out.append(
                DeadLetter(
                    received_ms=reg.last_seen_ms,
                    topic=topics.topic(o.device_id, Channel.ATTRIBUTES),
                    reason=Reason.STORE_REJECTED,
                    detail=detail,
                    payload=_json(
                        {"kind": reg.kind, "profile": reg.profile} | dict(reg.attributes)
                    ),
                    device_id=o.device_id,
                )
            )
        out.extend(o.dead_letters)
    for d in dls:  # a dead letter refused as it was: keep the bytes, make the text safe
        out.append(
            DeadLetter(
                received_ms=d.received_ms,
                topic=d.topic.encode("utf-8", "replace").decode("ascii", "replace"),
                reason=d.reason,
                detail=d.detail.encode("ascii", "replace").decode("ascii"),
                payload=d.payload,
                device_id=d.device_id,
            )
        )
    return out


class PgSink(DynamicSink[TwinOutput | DeadLetter]):
    """Telemetry, registry, events, snapshots and dead letters, one transaction per batch."""

    def __init__(
        self,
        url: str,
        *,
        ledger: CommitLedger | None = None,
        topic_prefix: str = "",
        abandon: threading.Event | None = None,
        retention_days: int = defaults.RETENTION_DAYS,
        partitions_ahead_days: int = defaults.PARTITIONS_AHEAD_DAYS,
        hourly_retention_days: int = defaults.HOURLY_RETENTION_DAYS,
        daily_retention_days: int = defaults.DAILY_RETENTION_DAYS,
        maintenance_interval_s: float = 3600.0,
        history_interval_s: float = defaults.HISTORY_INTERVAL_S,
        retry_initial_s: float = 0.1,
        retry_max_s: float = 5.0,
    ) -> None:
        self.url = url
        self.ledger = ledger
        """Told which messages are committed, so their source acknowledges them."""
        self.topic_prefix = topic_prefix
        self.abandon = abandon or threading.Event()
        self.retention_days = retention_days
        self.partitions_ahead_days = partitions_ahead_days
        self.hourly_retention_days = hourly_retention_days
        self.daily_retention_days = daily_retention_days
        self.maintenance_interval_s = maintenance_interval_s
        self.history_interval_s = history_interval_s
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _PgPartition:
        return _PgPartition(self, worker_index)
