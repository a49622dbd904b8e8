"""The dataflow: MQTT → parse → one twin per device → PostgreSQL and Redis.

```
raw messages ─ parse (per batch) ─┬─ dead letters without a device (bad topic) ──────┐
                                  └─ (device_id, inbox) ─ twin (stateful, per key) ─┤─> PostgreSQL
wake-ups at start (snapshotted devices) ─┘                                          └─> Redis
```

Parsing works on whole source batches and groups each batch by device, so a twin is activated
once per batch with everything its device sent, not once per reading.
"""

from __future__ import annotations

import itertools
import threading
import time
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
from twin.parsing import Parser
from twin.processor import TwinProcessor
from twin.records import DeadLetter, DeviceInbox, Inbound, RawMessage, Reading, TwinOutput
from twin.state import TwinState, decode_state, encode_state

SEEN_HORIZON_MS = 10 * 60 * 1000
"""How long a restored twin watches for readings stored before a crash and delivered again
(the broker redelivers what was not acknowledged as soon as the engine is back)."""

_activations = itertools.count()
"""Twin activations that produced readings, for sampling the twin-stage latency."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def group_by_device(parser: Parser) -> Callable[[list[RawMessage]], list[Any]]:
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
                    device_id,
                    DeviceInbox(
                        device_id=device_id, items=items, messages=len(tickets), tickets=tickets
                    ),
                )
            )
        return out

    return parse_batch


class TwinLogic(StatefulBatchLogic[DeviceInbox, TwinOutput, bytes | None]):
    """Bytewax adapter around :class:`twin.processor.TwinProcessor` for one device.

    ``snapshot`` returns immutable bytes (cheap for the runtime, unlike ``stateful_map``'s
    deep copies); the engine's own persistence is the periodic snapshot in the output.
    """

    def __init__(
        self,
        processor: TwinProcessor,
        resume: bytes | None,
        draining: threading.Event | None = None,
    ) -> None:
        self._processor = processor
        self._draining = draining
        self._drain_seen: set[tuple[int, int]] = set()
        self._state: TwinState | None = decode_state(resume) if resume is not None else None
        self._started = resume is not None
        self._seen: frozenset[tuple[int, int]] = frozenset()
        self._seen_until = 0
        metrics.TWINS.inc()

    def on_batch(self, values: list[DeviceInbox]) -> tuple[list[TwinOutput], bool]:
        now = now_ms()
        process = self._processor.process
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
        else:
            state = self._state
        for inbox in values:
            if not inbox.messages and not inbox.items:  # a wake-up (WakeSource): no output
                if state is None:
                    state = self._processor.wake(inbox.device_id, now)
                continue
            if self._seen:
                inbox = self._without_seen(inbox, now)
            draining = self._draining is not None and self._draining.is_set()
            if draining:
                inbox = self._without_drained(inbox)
            elif self._drain_seen:
                self._drain_seen = set()
            state, output = process(state, inbox.device_id, inbox, now)
            outputs.append(output)
        if outputs:
            metrics.PRESENCE.heard(outputs[-1].device_id, now)
            # one activation with readings in 64 (this runs once per device: keep it cheap)
            if outputs[-1].readings and next(_activations) % metrics.LATENCY_SAMPLE == 0:
                metrics.latency("twin", outputs, now)
        self._state = state
        return outputs, StatefulBatchLogic.RETAIN

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

    def on_notify(self) -> tuple[list[TwinOutput], bool]:
        """The device has been silent too long: a dropout anomaly."""
        if self._state is None:
            return [], StatefulBatchLogic.RETAIN
        output = self._processor.check_silence(self._state, now_ms())
        return ([output] if output is not None else []), StatefulBatchLogic.RETAIN

    def notify_at(self) -> datetime | None:
        if self._state is None:
            return None
        due = self._processor.silence_due_ms(self._state)
        return None if due is None else datetime.fromtimestamp(due / 1000, UTC)

    def on_eof(self) -> tuple[list[TwinOutput], bool]:
        if self._state is None:
            return [], StatefulBatchLogic.RETAIN
        return [self._processor.final(self._state, now_ms())], StatefulBatchLogic.RETAIN

    def snapshot(self) -> bytes | None:
        return None if self._state is None else encode_state(self._state)


class _WakePartition(StatelessSourcePartition[tuple[str, DeviceInbox]]):
    def __init__(self, device_ids: list[str], batch: int = 1000) -> None:
        self._ids = device_ids
        self._at = 0
        self._batch = batch

    def next_batch(self) -> list[tuple[str, DeviceInbox]]:
        if self._at >= len(self._ids):
            raise StopIteration
        chunk = self._ids[self._at : self._at + self._batch]
        self._at += self._batch
        return [(d, DeviceInbox(device_id=d, items=[], messages=0)) for d in chunk]


class WakeSource(DynamicSource[tuple[str, DeviceInbox]]):
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
    wake: Source[tuple[str, DeviceInbox]] | None = None,
    draining: threading.Event | None = None,
) -> Dataflow:
    flow = Dataflow(flow_id)
    raw = op.input("mqtt", flow, source)
    parsed = op.flat_map_batch("parse", raw, group_by_device(parser))
    split = op.branch("split", parsed, _has_device)
    inboxes = split.trues
    if wake is not None:
        inboxes = op.merge("inboxes", inboxes, op.input("wake", flow, wake))
    twins = op.stateful_batch(
        "twin", inboxes, lambda resume: TwinLogic(processor, resume, draining)
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
