"""The dataflow in-process with Bytewax's testing source and sink (no servers)."""

from __future__ import annotations

import json

from bytewax.testing import TestingSink, TestingSource, run_main

from flows.dataflow import build_flow
from twin.parsing import Parser
from twin.processor import TwinProcessor, TwinSettings
from twin.records import DeadLetter, RawMessage, Reason, TwinOutput
from twin.state import decode_state

T0 = 1_763_683_200_000


def msg(topic: str, body: object, at: int = T0) -> RawMessage:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    return RawMessage(topic=topic, payload=payload, received_ms=at)


def run(messages: list[RawMessage], batch_size: int = 3, warm: dict[str, bytes] | None = None):
    pg: list = []
    live: list = []
    processor = TwinProcessor(settings=TwinSettings(snapshot_interval_ms=10**12), warm_states=warm)
    flow = build_flow(
        TestingSource(messages, batch_size=batch_size),
        processor,
        Parser(),
        TestingSink(pg),
        TestingSink(live),
    )
    run_main(flow)
    return pg, live


def test_readings_flow_to_both_sinks_with_twins_keyed_by_device():
    messages = [msg("devices/p1/attributes", {"kind": "machine", "profile": "pump"})]
    for i in range(10):
        messages.append(
            msg(
                "devices/p1/telemetry",
                {"ts": T0 + i * 1000, "seq": i, "values": {"load_pct": 50.0 + i}},
            )
        )
        messages.append(msg("devices/c1/telemetry", {"ts": T0 + i * 1000, "speed_kmh": i}))
    pg, live = run(messages)
    outputs = [o for o in pg if isinstance(o, TwinOutput)]
    readings = [r for o in outputs for r in o.readings]
    assert sorted((r.device_id, r.ts_ms) for r in readings) == sorted(
        (d, T0 + i * 1000) for d in ("p1", "c1") for i in range(10)
    )
    last_live = {o.device_id: o.live for o in live if o.live}
    assert last_live["p1"]["readings"] == 10 and last_live["p1"]["load_pct"] == 59.0
    assert last_live["p1"]["profile"] == "pump"
    assert last_live["c1"]["readings"] == 10 and last_live["c1"]["speed_kmh"] == 9


def test_every_twin_writes_a_final_snapshot_at_end_of_stream():
    pg, _ = run([msg(f"devices/d{i}/telemetry", {"ts": T0, "rpm": i}) for i in range(5)])
    snaps = {
        o.snapshot.device_id: decode_state(o.snapshot.state)
        for o in pg
        if isinstance(o, TwinOutput) and o.snapshot is not None
    }
    assert set(snaps) == {f"d{i}" for i in range(5)}
    assert all(s.readings == 1 and s.messages == 1 for s in snaps.values())


def test_bad_messages_become_dead_letters_without_losing_neighbours():
    messages = [
        msg("devices/a/telemetry", {"ts": T0, "rpm": 1}),
        msg("devices/a/telemetry", b"{oops"),
        msg("not/a/device/topic", {"rpm": 1}),
        msg("devices/a/telemetry", {"ts": T0 + 1, "rpm": 2}),
    ]
    pg, _ = run(messages, batch_size=4)
    dead = [
        d for item in pg for d in ([item] if isinstance(item, DeadLetter) else item.dead_letters)
    ]
    assert sorted(d.reason for d in dead) == [Reason.BAD_JSON, Reason.BAD_TOPIC]
    readings = [r for o in pg if isinstance(o, TwinOutput) for r in o.readings]
    assert [r.values["rpm"] for r in readings] == [1, 2]


def test_a_batch_is_one_twin_activation_per_device():
    messages = [msg("devices/a/telemetry", {"ts": T0 + i, "rpm": i}) for i in range(50)]
    pg, _ = run(messages, batch_size=50)
    with_readings = [o for o in pg if isinstance(o, TwinOutput) and o.readings]
    assert len(with_readings) == 1 and len(with_readings[0].readings) == 50


def test_warm_state_continues_counts():
    pg, _ = run([msg("devices/a/telemetry", {"ts": T0, "rpm": 1})])
    snap = next(o.snapshot for o in pg if isinstance(o, TwinOutput) and o.snapshot)
    pg2, live2 = run([msg("devices/a/telemetry", {"ts": T0 + 5, "rpm": 2})], warm={"a": snap.state})
    assert live2[-1].live["readings"] == 2 and live2[-1].live["messages"] == 2
    assert all(o.registry is None for o in pg2 if isinstance(o, TwinOutput))
