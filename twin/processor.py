"""What a twin does with one device's share of a batch: validate, update, and report.

The processor is pure: it takes the twin's state and the device's inbox and returns the new
state plus a :class:`~twin.records.TwinOutput` holding the rows to store, the dead letters, the
live view for Redis and, now and then, a snapshot. The dataflow only wires it to the stores.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator, MutableMapping, Sequence

import msgspec

from twin.alerts.lifecycle import AlertEngine
from twin.alerts.records import AlertTransition
from twin.anomaly.bank import DetectorBank, bank_of
from twin.anomaly.columns import Item
from twin.anomaly.detectors import AnomalyDetectors, Observation
from twin.anomaly.records import Anomaly
from twin.anomaly.state import DetectorState
from twin.inbox_step import InboxStep, Work
from twin.maintenance.recheck import recommendation_mark
from twin.profiles import GENERIC, ProfileBook
from twin.ranges import ValidRanges, out_of_range, range_dead_letter
from twin.records import (
    Attributes,
    CatchUp,
    DeadLetter,
    DeviceEvent,
    DeviceInbox,
    DeviceRecord,
    Reading,
    Snapshot,
    TwinOutput,
)
from twin.state import TwinState, decode_state, encode_state

_encode = msgspec.json.Encoder().encode


class TwinSettings(msgspec.Struct, frozen=True):
    """How often twins snapshot themselves, and how long silence means offline."""

    snapshot_interval_ms: int = 30_000
    silence_ms: int = 300_000
    topic_prefix: str = ""


class TwinProcessor:
    """Applies inboxes to twin states under a set of device profiles.

    ``warm_states`` holds encoded snapshots loaded at start; a twin seen for the first time
    in this process takes its state from there, so a restarted engine carries on counting.
    A batch goes through in three passes: every inbox is applied to its twin, the detectors
    judge all accepted readings at once (vectorised, see :mod:`twin.anomaly.bank`), and the
    alert rules then follow each twin's readings and events in order.
    """

    def __init__(
        self,
        profiles: ProfileBook | None = None,
        settings: TwinSettings | None = None,
        warm_states: MutableMapping[str, bytes] | None = None,
        detectors: AnomalyDetectors | DetectorBank | None = None,
        alerts: AlertEngine | None = None,
        catch_up: MutableMapping[str, CatchUp] | None = None,
    ) -> None:
        """``detectors`` None: no anomaly detection (health stays 100); ``alerts`` None: no
        alert rules; ``catch_up``: what restored twins must still learn (after a crash)."""
        self.catch_up: MutableMapping[str, CatchUp] = catch_up if catch_up is not None else {}
        self.profiles = profiles or ProfileBook()
        self.detectors = bank_of(detectors)
        self.alerts = alerts
        self.settings = settings or TwinSettings()
        self.warm_states: MutableMapping[str, bytes] = (
            warm_states if warm_states is not None else {}
        )
        self._ranges = ValidRanges()

    def for_shard(self) -> TwinProcessor:
        """The twin step of one shard of devices: the same profiles, rules, snapshots to
        restore from and settings, with detector state of its own."""
        shard = copy.copy(self)
        if self.detectors is not None:
            shard.detectors = self.detectors.for_shard()
        return shard

    def start(self, device_id: str) -> tuple[TwinState, bool]:
        """The state a twin starts from here, and whether the device is new to the engine."""
        raw = self.warm_states.pop(device_id, None)
        if raw is not None:
            state = decode_state(raw)
            if self.detectors is not None:
                state.detectors = self.detectors.adopt(device_id, state.detectors)
            return state, False
        state = TwinState(device_id=device_id)
        if self.detectors is not None:
            state.detectors = self.detectors.adopt(device_id, state.detectors)
        return state, True

    def restore(
        self, device_id: str, now_ms: int
    ) -> tuple[TwinState | None, TwinOutput | None, frozenset[tuple[int, int]]]:
        """A twin's first activation in this process: its snapshot, caught up on the rows
        stored after it, and the identities of recent rows that must not count twice.

        ``None`` state for a device without a snapshot (``process`` then starts it, and
        reports it new). The output of the catch-up carries what the replayed rows changed
        (anomalies, alerts, live view, snapshot), not the rows themselves: they are stored.
        """
        if device_id not in self.warm_states:
            return None, None, frozenset()
        state, _ = self.start(device_id)
        catch_up = self.catch_up.pop(device_id, None)
        if catch_up is None:
            return state, None, frozenset()
        output = None
        if catch_up.readings:
            inbox = DeviceInbox(device_id=device_id, items=list(catch_up.readings), messages=0)
            state, caught = self.process(state, device_id, inbox, now_ms)
            output = msgspec.structs.replace(caught, readings=[], dead_letters=[])
        return state, output, catch_up.seen

    def wake(self, device_id: str, now_ms: int) -> TwinState:
        """A twin restored at start, before its device has said anything, so that its silence
        timers run even if the device never speaks again. Its silence counts from now: the
        engine's own downtime is not the device's (the broker may hold its messages)."""
        state, _ = self.start(device_id)
        state.last_arrival_ms = max(state.last_arrival_ms, now_ms)
        return state

    def process(
        self, state: TwinState | None, device_id: str, inbox: DeviceInbox, now_ms: int
    ) -> tuple[TwinState, TwinOutput]:
        """One device's inbox (a batch of one)."""
        return self.process_batch([(state, device_id, inbox)], now_ms)[0]

    def process_batch(
        self, work: Sequence[Work], now_ms: int
    ) -> list[tuple[TwinState, TwinOutput]]:
        """Every device's inbox of a batch (a device at most once); new state and output each."""
        steps = [self._apply(state, device_id, inbox) for state, device_id, inbox in work]
        verdicts = iter(self._judge(steps))  # each step takes as many as it has readings
        finish = self._finish
        return [(step.state, finish(step, verdicts, now_ms)) for step in steps]

    def _apply(self, state: TwinState | None, device_id: str, inbox: DeviceInbox) -> InboxStep:
        """The first pass: the inbox's items applied to the twin in order."""
        is_new = False
        if state is None:
            state, is_new = self.start(device_id)
        state.messages += inbox.messages
        step = InboxStep(state, self.profiles.get(state.profile), inbox, is_new)
        step.ranges = self._ranges.of(step.profile)
        for item in inbox.items:
            if type(item) is Reading:
                self._reading(state, step, item)
            elif type(item) is Attributes:
                self._attributes(state, step, item)
            elif type(item) is DeviceEvent:
                self._event(state, step, item)
            else:
                assert type(item) is DeadLetter
                step.dead.append(item)
        state.rejected += len(step.dead)
        return step

    def _judge(self, steps: list[InboxStep]) -> list[Observation]:
        """The second pass: the detectors judge every accepted reading of the batch at once,
        each scored before anything learns from it (one verdict per reading, in order)."""
        bank = self.detectors
        if bank is None:
            return []
        items: list[Item] = []
        states: list[DetectorState] = []
        for step in steps:
            if step.judged:
                items += step.judged
                states += [step.state.detectors] * len(step.judged)
        return bank.observe_batch(items, states) if items else []

    def _finish(self, step: InboxStep, verdicts: Iterator[Observation], now_ms: int) -> TwinOutput:
        """The third pass: the alert rules follow the twin's readings and events in order,
        with the detectors' verdicts on each reading."""
        state, alerts, device_id = step.state, self.alerts, step.device_id
        for item, profile in step.script:
            if type(item) is Reading:
                obs = next(verdicts, None)
                if obs is not None and obs.events:
                    step.anomalies.extend(obs.events)
                    if alerts is not None:
                        step.transitions += alerts.on_anomalies(
                            state.alerts, device_id, profile, item.ts_ms, obs.events
                        )
                if alerts is not None:
                    step.transitions += alerts.on_reading(
                        state.alerts, device_id, profile, item.ts_ms, item.values
                    )
            elif alerts is not None:
                assert type(item) is DeviceEvent
                code = item.body.get("code")
                step.transitions += alerts.on_event(
                    state.alerts, device_id, profile, item.ts_ms, item.type,
                    code if isinstance(code, str) else "",
                )  # fmt: skip
        return self._output(state, step, device_id, step.inbox, now_ms, step.is_new)

    def _reading(self, state: TwinState, step: InboxStep, item: Reading) -> None:
        if state.seen_before(item):  # the same reading again: stored once, counted once
            step.repeats += 1
            return
        bad = out_of_range(item, step.ranges)
        if bad is not None:
            prefix = self.settings.topic_prefix
            step.dead.append(range_dead_letter(item, bad, step.profile, prefix))
            return
        state.apply(item, step.profile)
        state.remember(item)
        step.accepted.append(item)
        step.judged.append((state.device_id, step.profile, item.ts_ms, item.values))
        step.script.append((item, state.profile))
        if "lat" in item.values:
            step.positioned = True

    def _attributes(self, state: TwinState, step: InboxStep, item: Attributes) -> None:
        step.attributes = {**(step.attributes or {}), **item.attributes}
        if item.kind is not None:
            state.kind = item.kind
        if item.profile is not None:
            state.profile = item.profile
            new_profile = self.profiles.get(item.profile)
            if state.kind == GENERIC:
                state.kind = new_profile.kind
            step.profile, step.ranges = new_profile, self._ranges.of(new_profile)
        state.last_arrival_ms = max(state.last_arrival_ms, item.received_ms)

    def _event(self, state: TwinState, step: InboxStep, item: DeviceEvent) -> None:
        state.events += 1
        state.last_event = item.type
        step.script.append((item, state.profile))
        state.last_arrival_ms = max(state.last_arrival_ms, item.received_ms)
        step.events.append(item)

    def _output(
        self,
        state: TwinState,
        step: InboxStep,
        device_id: str,
        inbox: DeviceInbox,
        now_ms: int,
        is_new: bool,
    ) -> TwinOutput:
        registry = None
        if is_new or step.attributes is not None:
            registry = DeviceRecord(
                device_id=device_id,
                kind=state.kind,
                profile=state.profile,
                attributes=step.attributes or {},
                first_seen_ms=state.first_seen_ms or state.last_arrival_ms or now_ms,
                last_seen_ms=state.last_seen_ms or now_ms,
            )
        bank = self.detectors
        if bank is not None and step.accepted:
            state.health = bank.health(device_id, state.detectors)
        recheck = self._recheck(state, step)
        snapshot = None
        if recheck or now_ms - state.snapshot_ms >= self.settings.snapshot_interval_ms:
            snapshot = self.snapshot(state, now_ms)  # the recommender reads it
        changed = step.accepted or step.attributes or step.events
        return TwinOutput(
            device_id=device_id,
            readings=step.accepted,
            dead_letters=step.dead,
            events=step.events,
            live=state.live_view(step.profile, now_ms, self._open(state)) if changed else None,
            lat_lon=state.position() if step.positioned else None,
            registry=registry,
            snapshot=snapshot,
            anomalies=step.anomalies,
            alerts=step.transitions,
            recheck=recheck,
            kind=state.kind,
            tickets=inbox.tickets,
            repeats=step.repeats,
        )

    @staticmethod
    def _recheck(state: TwinState, step: InboxStep) -> bool:
        """The twin crossed something that may change its maintenance recommendations."""
        mark = recommendation_mark(state)
        recheck = (
            mark != state.recs_mark
            or step.attributes is not None
            or any(e.type == "service" for e in step.events)
            or any(a.ended_ms is None for a in step.anomalies)
        )
        state.recs_mark = mark
        return recheck

    def silence_dues(self, states: Sequence[TwinState]) -> list[int | None]:
        """Wall-clock time of each twin's next timer: a dropout, a no-data alert, or an alert
        whose clear time runs out while its device says nothing."""
        bank, alerts = self.detectors, self.alerts
        limits: Sequence[int | None] = (
            bank.silence_limits_ms([s.device_id for s in states], [s.detectors for s in states])
            if bank is not None
            else [None] * len(states)
        )
        dues: list[int | None] = []
        for state, limit in zip(states, limits, strict=True):
            if not state.last_arrival_ms:
                dues.append(None)
                continue
            if alerts is not None:
                own = alerts.silence_limit_ms(
                    state.alerts, state.device_id, state.profile, state.last_seen_ms
                )
                if own is not None and (limit is None or own < limit):
                    limit = own
            dues.append(None if limit is None else state.last_arrival_ms + max(1000, limit) + 1)
        return dues

    def check_silence(self, state: TwinState, now_ms: int) -> TwinOutput | None:
        """Timers: dropout anomalies, no-data alerts, and alerts that cleared in silence. The
        device's event clock is extrapolated from its last arrival, so clock offsets between
        devices and the engine do not matter."""
        if not state.last_arrival_ms:
            return None
        device_now = state.last_seen_ms + (now_ms - state.last_arrival_ms)
        found: list[Anomaly] = []
        transitions: list[AlertTransition] = []
        bank = self.detectors
        if bank is not None:
            found = bank.check_silence(state.device_id, state.detectors, device_now)
            if found:
                state.health = bank.health(state.device_id, state.detectors)
        if self.alerts is not None:
            transitions = self.alerts.on_silence(
                state.alerts, state.device_id, state.profile, device_now, state.last_seen_ms
            )
            transitions += self.alerts.expire(
                state.alerts, state.device_id, state.profile, device_now
            )
        if not found and not transitions:
            return None
        profile = self.profiles.get(state.profile)
        return TwinOutput(
            device_id=state.device_id,
            readings=[],
            dead_letters=[],
            events=[],
            live=state.live_view(profile, now_ms, self._open(state), status="silent"),
            anomalies=found,
            alerts=transitions,
        )

    def _open(self, state: TwinState) -> int:
        """The twin's open anomaly episodes."""
        if self.detectors is None:
            return 0
        return self.detectors.open_count(state.device_id, state.detectors)

    def snapshot(self, state: TwinState, now_ms: int) -> Snapshot:
        state.snapshot_ms = now_ms
        started = time.perf_counter_ns()
        whole = state
        if self.detectors is not None:  # the detector state may live in the shard's columns
            whole = msgspec.structs.replace(
                state, detectors=self.detectors.export(state.device_id, state.detectors)
            )
        encoded = encode_state(whole)
        return Snapshot(
            device_id=state.device_id,
            taken_ms=now_ms,
            last_seen_ms=state.last_seen_ms,
            state=encoded,
            encode_ns=time.perf_counter_ns() - started,
        )

    def final(self, state: TwinState, now_ms: int) -> TwinOutput:
        """The output of a twin at shutdown: its last snapshot."""
        return TwinOutput(
            device_id=state.device_id,
            readings=[],
            dead_letters=[],
            events=[],
            live=None,
            snapshot=self.snapshot(state, now_ms),
        )
