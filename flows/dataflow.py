"""The dataflow: MQTT → parse → one twin per device → PostgreSQL and Redis.

```
raw messages ─ parse (per batch) ─┬─ dead letters without a device (bad topic) ──────┐
                                  └─ (device_id, inbox) ─ twin (stateful, per key) ─┤─> PostgreSQL
wake-ups at start (snapshotted devices) ─┘                                          └─> Redis
```

Parsing works on whole source batches and groups each batch by device, so a twin is activated
once per batch with everything its device sent, not once per reading. The twin step is keyed by
shard (a stable hash of the device id over a few shards per worker), not by device: one
activation serves every device of a shard that sent something, its detectors judge them
together, and the shard keeps one timer for all of its twins, so the runtime's cost per key is
paid per shard and batch, not per device.
"""

from __future__ import annotations

import heapq
import threading
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import bytewax.operators as op
import msgspec
from bytewax.dataflow import Dataflow
from bytewax.inputs import DynamicSource, Source, StatelessSourcePartition
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import Sink

from flows.runtime import metrics
from twin.inbox_step import Work
from twin.parsing import Parser
from twin.processor import TwinProcessor
from twin.records import DeadLetter, DeviceInbox, Inbound, RawMessage, Reading, TwinOutput
from twin.state import TwinState

SHARDS_PER_WORKER = 4
"""Keys of the twin step per worker of the whole dataflow (each worker takes its share). Few
and large: the vectorised detectors pay a fixed numpy cost per shard and round, so 64 shards
for one worker held readings at 10 per message for a p50 of 390 ms at 20,000 readings/s, and
4 for 50 ms; more than one per worker spreads the keys evenly enough over a cluster."""

SEEN_HORIZON_MS = 10 * 60 * 1000
"""How long a restored twin watches for readings stored before a crash and delivered again
(the broker redelivers what was not acknowledged as soon as the engine is back)."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def shard_of(device_id: str, shards: int) -> str:
    """The twin step's key of a device: the same in every process of a cluster."""
    return str(zlib.crc32(device_id.encode()) % shards)


def group_by_device(parser: Parser, shards: int) -> Callable[[list[RawMessage]], list[Any]]:
    """Parse a batch; emit ``(device_id, DeviceInbox)`` per device plus deviceless dead letters."""

    def parse_batch(batch: list[RawMessage]) -> list[Any]:
        inboxes: dict[str, tuple[list[Inbound | DeadLetter], list[int]]] = {}
        out: list[Any] = []
        parse = parser.parse
        for msg in batch:
            items = parse(msg)
            device_id = items[0].device_id
            if device_id is None:  # one dead letter for the whole message, with its ticket
                out.extend(items)
                continue
            slot = inboxes.get(device_id)
            if slot is None:
                inboxes[device_id] = (items, [msg.ticket])
            else:
                slot[0].extend(items)
                slot[1].append(msg.ticket)
        for device_id, (items, tickets) in inboxes.items():
            out.append(
                (
                    shard_of(device_id, shards),
                    DeviceInbox(
                        device_id=device_id, items=items, messages=len(tickets), tickets=tickets
                    ),
                )
            )
        return out

    return parse_batch


class DeviceTwin:
    """One device's twin in its shard: its first activation restores it (snapshot, catch-up
    after a crash), and redelivered readings are recognised. The state itself goes through
    the shard's :class:`twin.processor.TwinProcessor` with the rest of the batch; the
    engine's own persistence is the periodic snapshot in the output."""

    def __init__(self, processor: TwinProcessor, draining: threading.Event | None = None) -> None:
        self._processor = processor
        self._draining = draining
        self._drain_seen: set[tuple[int, int]] = set()
        self.state: TwinState | None = None
        self._started = False
        self._seen: frozenset[tuple[int, int]] = frozenset()
        self._seen_until = 0
        metrics.TWINS.inc()

    def take(
        self, values: list[DeviceInbox], now: int
    ) -> tuple[list[TwinOutput], DeviceInbox | None]:
        """The device's inboxes of an activation as one (None: only wake-ups), after what a
        first activation produces (the catch-up of a restored twin)."""
        outputs = []
        if not self._started:  # first activation: snapshot, catch-up after a crash
            self._started = True
            state, caught, seen = self._processor.restore(values[0].device_id, now)
            if caught is not None:
                outputs.append(caught)
            if seen:
                self._seen, self._seen_until = seen, now + SEEN_HORIZON_MS
            if state is not None and not values[0].items and not values[0].messages:
                state.last_arrival_ms = max(state.last_arrival_ms, now)  # woken at start
            self.state = state
        inboxes = [i for i in values if i.messages or i.items]
        if len(inboxes) < len(values) and self.state is None:  # a wake-up (WakeSource)
            self.state = self._processor.wake(values[0].device_id, now)
        if not inboxes:
            return outputs, None
        inbox = inboxes[0] if len(inboxes) == 1 else _merged(inboxes)
        if self._seen:
            inbox = self._without_seen(inbox, now)
        if self._draining is not None and self._draining.is_set():
            inbox = self._without_drained(inbox)
        elif self._drain_seen:
            self._drain_seen = set()
        return outputs, inbox

    def _without_drained(self, inbox: DeviceInbox) -> DeviceInbox:
        """While an orphaned session drains, a reading may come through it and the live session
        both: the second copy is not counted."""
        seen = self._drain_seen
        items = []
        for item in inbox.items:  # one inbox may hold both copies, far apart
            if type(item) is Reading:
                key = (item.ts_ms, -1 if item.seq is None else item.seq)
                if key in seen:
                    continue
                seen.add(key)
            items.append(item)
        if len(items) == len(inbox.items):
            return inbox
        metrics.REDELIVERED.inc(len(inbox.items) - len(items))
        return msgspec.structs.replace(inbox, items=items)

    def _without_seen(self, inbox: DeviceInbox, now: int) -> DeviceInbox:
        """Drop readings stored before a crash that the broker delivers again."""
        if now > self._seen_until:
            self._seen = frozenset()
            return inbox
        seen = self._seen
        items = [
            i
            for i in inbox.items
            if type(i) is not Reading or (i.ts_ms, -1 if i.seq is None else i.seq) not in seen
        ]
        if len(items) == len(inbox.items):
            return inbox
        metrics.REDELIVERED.inc(len(inbox.items) - len(items))
        return msgspec.structs.replace(inbox, items=items)

    def on_notify(self) -> list[TwinOutput]:
        """The device has been silent too long: a dropout anomaly."""
        if self.state is None:
            return []
        output = self._processor.check_silence(self.state, now_ms())
        return [output] if output is not None else []

    def due_ms(self) -> int | None:
        """When this twin's next timer is due (a dropout, a no-data alert, an alert to clear)."""
        if self.state is None:
            return None
        return self._processor.silence_dues([self.state])[0]

    def on_eof(self) -> list[TwinOutput]:
        if self.state is None:
            return []
        return [self._processor.final(self.state, now_ms())]


def _merged(inboxes: list[DeviceInbox]) -> DeviceInbox:
    """Several inboxes of one device (from several source batches) as one, in order."""
    first = inboxes[0]
    return DeviceInbox(
        device_id=first.device_id,
        items=[item for i in inboxes for item in i.items],
        messages=sum(i.messages for i in inboxes),
        tickets=[t for i in inboxes for t in i.tickets],
    )


class ShardLogic(StatefulBatchLogic[DeviceInbox, TwinOutput, None]):
    """The twins of one shard: one :class:`DeviceTwin` per device, all the shard's devices
    of an activation through the twin step as one batch (the detectors judge their readings
    together), and one timer for the shard (the earliest of its twins')."""

    def __init__(self, processor: TwinProcessor, draining: threading.Event | None) -> None:
        self._processor = processor
        self._draining = draining
        self._twins: dict[str, DeviceTwin] = {}
        self._due: dict[str, int] = {}
        """When each twin's heap entry comes due (epoch ms; its timer may have moved later
        since); the heap may hold older entries, skipped."""
        self._heap: list[tuple[int, str]] = []

    def on_batch(self, values: list[DeviceInbox]) -> tuple[list[TwinOutput], bool]:
        now = now_ms()
        by_device: dict[str, list[DeviceInbox]] = {}
        for inbox in values:
            by_device.setdefault(inbox.device_id, []).append(inbox)
        outputs: list[TwinOutput] = []
        twins: list[DeviceTwin] = []
        work: list[Work] = []
        for device_id, inboxes in by_device.items():
            twin = self._twins.get(device_id)
            if twin is None:
                twin = self._twins[device_id] = DeviceTwin(self._processor, self._draining)
            made, taken = twin.take(inboxes, now)
            outputs += made
            if taken is not None:
                twins.append(twin)
                work.append((twin.state, device_id, taken))
        if work:
            done = self._processor.process_batch(work, now)
            for twin, (state, output) in zip(twins, done, strict=True):
                twin.state = state
                outputs.append(output)
            metrics.PRESENCE.heard_many([o.device_id for _, o in done], now)
            metrics.latency("twin", [done[-1][1]], now)
        self._schedule(list(by_device))
        return outputs, StatefulBatchLogic.RETAIN

    def _schedule(self, device_ids: list[str]) -> None:
        """Timers are lazy: a twin's timer moves later with nearly every reading, so its heap
        entry stays where it is and is checked again when it comes due; only a timer that
        moves earlier (or a twin without one) needs a new entry."""
        twins = self._twins
        held = [(d, state) for d in device_ids if (state := twins[d].state) is not None]
        dues = self._processor.silence_dues([state for _, state in held])
        due_of, heap = self._due, self._heap
        for (device_id, _), due in zip(held, dues, strict=True):
            if due is not None:
                was = due_of.get(device_id)
                if was is None or due < was:
                    due_of[device_id] = due
                    heapq.heappush(heap, (due, device_id))

    def on_notify(self) -> tuple[list[TwinOutput], bool]:
        now, heap, outputs = now_ms(), self._heap, []
        fired: list[str] = []
        while heap and heap[0][0] <= now:
            due, device_id = heapq.heappop(heap)
            if self._due.get(device_id) != due:
                continue  # an older entry: replaced by an earlier one since
            del self._due[device_id]
            fired.append(device_id)
        for device_id in fired:
            twin = self._twins[device_id]
            moved = twin.due_ms()
            if moved is not None and moved <= now:  # else it moved later, or away
                outputs += twin.on_notify()
        self._schedule(fired)
        return outputs, StatefulBatchLogic.RETAIN

    def notify_at(self) -> datetime | None:
        heap = self._heap
        while heap and self._due.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
        return datetime.fromtimestamp(heap[0][0] / 1000, UTC) if heap else None

    def on_eof(self) -> tuple[list[TwinOutput], bool]:
        outputs: list[TwinOutput] = []
        for twin in self._twins.values():
            outputs += twin.on_eof()
        return outputs, StatefulBatchLogic.RETAIN

    def snapshot(self) -> None:
        """The engine keeps its own snapshots (in the twins' outputs), not the runtime's."""
        return None


class _WakePartition(StatelessSourcePartition[DeviceInbox]):
    def __init__(self, device_ids: list[str], batch: int = 1000) -> None:
        self._ids = device_ids
        self._at = 0
        self._batch = batch

    def next_batch(self) -> list[DeviceInbox]:
        if self._at >= len(self._ids):
            raise StopIteration
        chunk = self._ids[self._at : self._at + self._batch]
        self._at += self._batch
        return [DeviceInbox(device_id=d, items=[], messages=0) for d in chunk]


class WakeSource(DynamicSource[DeviceInbox]):
    """One empty inbox per device to restore at start: twins come back from their snapshots
    with their silence timers running, so a device that died while the engine was down is
    still reported silent. Each worker wakes its share; the stream then ends."""

    def __init__(self, device_ids: list[str]) -> None:
        self._ids = sorted(device_ids)

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _WakePartition:
        return _WakePartition(self._ids[worker_index::worker_count])


def _has_device(item: Any) -> bool:
    return type(item) is tuple


def build_flow(
    source: Source[RawMessage],
    processor: TwinProcessor,
    parser: Parser,
    pg_sink: Sink[TwinOutput | DeadLetter],
    live_sink: Sink[TwinOutput] | None,
    flow_id: str = "twinstream",
    wake: Source[DeviceInbox] | None = None,
    draining: threading.Event | None = None,
    shards: int = SHARDS_PER_WORKER,
) -> Dataflow:
    """``shards``: keys of the twin step (``SHARDS_PER_WORKER`` per worker of the whole
    dataflow, every process of a cluster alike)."""
    flow = Dataflow(flow_id)
    raw = op.input("mqtt", flow, source)
    parsed = op.flat_map_batch("parse", raw, group_by_device(parser, shards))
    split = op.branch("split", parsed, _has_device)
    inboxes = split.trues
    if wake is not None:
        woken = op.map(
            "wake_shard", op.input("wake", flow, wake), lambda i: (shard_of(i.device_id, shards), i)
        )
        inboxes = op.merge("inboxes", inboxes, woken)
    twins = op.stateful_batch(
        "twin", inboxes, lambda resume: ShardLogic(processor.for_shard(), draining)
    )
    outputs = op.map("unkey", twins, lambda kv: kv[1])
    to_pg = op.merge("to_pg", outputs, split.falses)
    op.output("postgres", to_pg, pg_sink)
    if live_sink is not None:
        live = op.filter(
            "live", outputs, lambda o: o.live is not None or o.lat_lon is not None or bool(o.alerts)
        )
        op.output("redis", live, live_sink)
    return flow
