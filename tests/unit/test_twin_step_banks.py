"""The twin step with the vectorised detectors (state in the shard's columns) against the
scalar ones (state in each twin), on the same batches: every output, alert and snapshot."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
import pytest

from tests.unit.test_columnar_detectors import fleet
from twin.alerts.book import RuleBook
from twin.alerts.defaults import BUILTIN_RULES
from twin.alerts.lifecycle import AlertEngine
from twin.anomaly.bank import Columns, TwinHeld
from twin.anomaly.config import FLEET
from twin.anomaly.detectors import AnomalyDetectors
from twin.anomaly.state import unpacked_state
from twin.processor import TwinProcessor, TwinSettings
from twin.profiles import ProfileBook
from twin.records import Attributes, DeviceEvent, DeviceInbox, Reading, TwinOutput
from twin.state import TwinState, decode_state, encode_state

CONFIG = msgspec.structs.replace(FLEET, warmup_readings=40)
SETTINGS = TwinSettings(snapshot_interval_ms=20_000)


def _processor(bank: Columns | TwinHeld, warm: dict[str, bytes] | None = None) -> TwinProcessor:
    return TwinProcessor(ProfileBook(), SETTINGS, warm, bank, AlertEngine(RuleBook(BUILTIN_RULES)))


def _inboxes() -> list[list[DeviceInbox]]:
    """A mixed fleet with injected faults, cut into batches of about 400 readings; a device's
    readings of a batch in one inbox (as the dataflow hands them over), its profile first."""
    items = fleet("mixed-faults", devices=40, duration_s=200)
    book = ProfileBook()
    profile_of = {d: p.name for d, p, _, _ in items if p is not None}
    batches: list[list[DeviceInbox]] = []
    seen: set[str] = set()
    for start in range(0, len(items), 400):
        by_device: dict[str, list] = {}
        for device_id, _, ts, values in items[start : start + 400]:
            inbox = by_device.setdefault(device_id, [])
            if device_id not in seen:
                seen.add(device_id)
                inbox.append(Attributes(device_id, {"profile": profile_of[device_id]}, ts))
            inbox.append(Reading(device_id, ts, dict(values), ts + 20))
            if ts % 37_000 < 1000:  # now and then an event between readings
                inbox.append(DeviceEvent(device_id, ts, "fault_code", {"code": "P0217"}, ts))
        batches.append([DeviceInbox(d, v, len(v)) for d, v in by_device.items()])
    assert book.get("pump").name == "pump"
    return batches


def _run(processor: TwinProcessor, batches: Sequence[list[DeviceInbox]]) -> list[TwinOutput]:
    states: dict[str, TwinState | None] = {}
    outputs = []
    for n, batch in enumerate(batches):
        now = 1_790_000_000_000 + n * 5_000
        work = [(states.get(i.device_id), i.device_id, i) for i in batch]
        for state, out in processor.process_batch(work, now):
            states[out.device_id] = state
            outputs.append(out)
    return outputs


def _comparable(out: TwinOutput) -> tuple[object, ...]:
    snapshot = None
    if out.snapshot is not None:
        state = decode_state(out.snapshot.state)
        snapshot = (state.health, sorted(state.detectors.open),
                    sorted(unpacked_state(state.detectors).tracks),
                    state.detectors.readings, state.alerts)  # fmt: skip
    return (
        out.device_id,
        len(out.readings),
        sorted((a.detector, a.metric, a.kind, a.started_ms, a.ended_ms or -1, a.severity)
               for a in out.anomalies),
        sorted((t.rule_id, t.transition, t.at_ms, t.severity or "") for t in out.alerts),
        out.live,
        snapshot,
    )  # fmt: skip


def test_the_vectorised_twin_step_gives_the_scalar_outputs() -> None:
    batches = _inboxes()
    scalar = _run(_processor(TwinHeld(AnomalyDetectors(CONFIG))), batches)
    columns = _run(_processor(Columns(CONFIG)).for_shard(), batches)
    assert len(scalar) == len(columns)
    for want, got in zip(scalar, columns, strict=True):
        assert _comparable(got) == _comparable(want), want.device_id
    kinds = {a.detector for o in scalar for a in o.anomalies}
    assert {"level", "rule"} <= kinds, kinds  # the comparison saw anomalies
    assert any(o.alerts for o in scalar)  # and alert transitions
    assert any(o.live is not None and o.live["anomalies_open"] for o in scalar)


def _older(raw: bytes) -> bytes:
    """A snapshot as an older release wrote it: each track an array of numbers."""
    state = decode_state(raw)
    state.detectors = unpacked_state(state.detectors)
    return encode_state(state)


@pytest.mark.parametrize("written_by", ["this release", "an older release"])
def test_a_twin_restored_into_columns_carries_on_from_its_snapshot(written_by: str) -> None:
    """A restart: snapshots of the scalar run's twins restore into a new shard's columns and
    the rest of the stream gives the scalar outputs (from packed tracks, or from the tracks
    of an older release's snapshots)."""
    batches = _inboxes()
    half = len(batches) // 2
    scalar = _processor(TwinHeld(AnomalyDetectors(CONFIG)))
    states: dict[str, TwinState] = {}
    for n, batch in enumerate(batches[:half]):
        work = [(states.get(i.device_id), i.device_id, i) for i in batch]
        for state, out in scalar.process_batch(work, 1_790_000_000_000 + n * 5_000):
            states[out.device_id] = state
    warm = {d: scalar.snapshot(st, 0).state for d, st in states.items()}
    assert any(decode_state(raw).detectors.packed for raw in warm.values())  # state was carried
    if written_by == "an older release":
        warm = {d: _older(raw) for d, raw in warm.items()}
        assert all(not decode_state(raw).detectors.packed for raw in warm.values())
    restored = _processor(Columns(CONFIG), dict(warm)).for_shard()
    carried = _processor(TwinHeld(AnomalyDetectors(CONFIG)), dict(warm))
    for processor in (restored, carried):
        for device_id in warm:
            state, _ = processor.start(device_id)
            processor.warm_states[device_id] = processor.snapshot(state, 0).state
    for device_id, raw in carried.warm_states.items():  # the columns give back what they took
        assert decode_state(restored.warm_states[device_id]) == decode_state(raw), device_id
    rest = batches[half:]
    got, want = _run(restored, rest), _run(carried, rest)
    assert [_comparable(o) for o in got] == [_comparable(o) for o in want]
