"""A twin restored after a crash carries on from what is stored: snapshot plus catch-up equals
the twin that never stopped, detectors included (no second warm-up)."""

from __future__ import annotations

import msgspec

from twin.anomaly.config import FLEET
from twin.anomaly.detectors import AnomalyDetectors
from twin.processor import TwinProcessor
from twin.profiles import BUILTIN_PROFILES, ProfileBook
from twin.records import Attributes, CatchUp, DeviceInbox, Reading
from twin.state import decode_state, encode_state

T0 = 1_763_683_200_000
DEV = "pump-7"


def readings(n: int, start: int = 0) -> list[Reading]:
    out = []
    for i in range(start, n):
        values = {"temperature_c": 60.0 + (i % 5), "load_pct": 50.0 + i % 3}
        out.append(Reading(DEV, T0 + i * 1000, values, T0 + i * 1000, seq=i))
    return out


def processor(warm: dict[str, bytes] | None = None, catch_up=None) -> TwinProcessor:
    detectors = AnomalyDetectors(msgspec.structs.replace(FLEET, warmup_readings=20))
    return TwinProcessor(ProfileBook(BUILTIN_PROFILES), None, warm, detectors, None, catch_up)


def comparable(state) -> dict:
    doc = msgspec.json.decode(encode_state(state))
    doc.pop("snapshot_ms", None)  # when it was last snapshotted differs, by design
    doc.pop("messages", None)  # deliveries, not rows: what is replayed are rows
    return doc


def test_snapshot_plus_catch_up_equals_the_twin_that_never_stopped():
    attrs = Attributes(DEV, {"kind": "machine", "profile": "pump"}, T0)
    steady = processor()
    state, _ = steady.process(None, DEV, DeviceInbox(DEV, [attrs], 1), T0)
    for r in readings(40):
        state, _ = steady.process(state, DEV, DeviceInbox(DEV, [r], 1), r.received_ms)
    snapshot = encode_state(state)  # written at reading 40, then the engine dies at 70
    for r in readings(70, 40):
        state, _ = steady.process(state, DEV, DeviceInbox(DEV, [r], 1), r.received_ms)

    after = readings(70, 40)
    seen = frozenset((r.ts_ms, r.seq) for r in readings(70, 30))
    restored = processor({DEV: snapshot}, {DEV: CatchUp(readings=after, seen=seen)})
    back, caught, recent = restored.restore(DEV, T0 + 70_000)
    assert back is not None and caught is not None
    assert caught.readings == [] and caught.live is not None  # stored already; live view fresh
    assert recent == seen
    assert comparable(back) == comparable(state)
    assert back.readings == 70
    assert decode_state(encode_state(back)).detectors == state.detectors  # no second warm-up


def test_a_device_without_a_snapshot_starts_new_and_is_registered():
    p = processor()
    state, output, seen = p.restore("fresh-1", T0)
    assert state is None and output is None and not seen
    state, out = p.process(None, "fresh-1", DeviceInbox("fresh-1", readings(1), 1), T0)
    assert out.registry is not None and state.readings == 1
