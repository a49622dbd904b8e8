"""Simulated traffic: determinism, schedule, physical coherence and injected faults."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from pathlib import Path

import msgspec
import pytest

from simulators import scenario as scenarios
from simulators.faults import FAULT_KINDS, Fault
from simulators.fleet import BAD_PAYLOADS, Machine, Vehicle, make_fleet
from simulators.traffic import Traffic, TrafficConfig
from twin.errors import ConfigurationError
from twin.parsing import Parser
from twin.records import DeadLetter, RawMessage

START = 1_790_000_000_000


def readings_by_device(traffic: Traffic) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for msg in traffic.messages():
        if msg.kind != "telemetry" or msg.bad_reason:
            continue
        body = json.loads(msg.payload)
        out[msg.topic.split("/")[-2]].extend(body if isinstance(body, list) else [body])
    return out


def test_same_seed_same_messages_other_seed_other_messages():
    config = TrafficConfig(devices=30, rate=300, duration_s=5, seed=7, bad_fraction=0.02)
    first = [(m.due_s, m.topic, m.payload) for m in Traffic(config, START).messages()]
    again = [(m.due_s, m.topic, m.payload) for m in Traffic(config, START).messages()]
    other = [
        (m.due_s, m.topic, m.payload)
        for m in Traffic(TrafficConfig(**{**config.__dict__, "seed": 8}), START).messages()
    ]
    assert first == again
    assert first != other
    assert len(first) >= 1500


@pytest.mark.parametrize("batch", [1, 5])
def test_schedule_gives_the_rate_and_even_device_intervals(batch: int):
    config = TrafficConfig(devices=40, rate=400, batch=batch, duration_s=10, seed=1)
    messages = list(Traffic(config, START).messages())
    assert [m.due_s for m in messages] == sorted(m.due_s for m in messages)
    assert sum(m.readings for m in messages) == 4000  # every reading, the last ones flushed
    by_device = readings_by_device(Traffic(config, START))
    for readings in by_device.values():
        ts = [r["ts"] for r in readings]
        gaps = {b - a for a, b in itertools.pairwise(ts)}
        assert gaps <= {99, 100, 101}  # 40 devices at 400/s: one reading each 100 ms
        assert [r["seq"] for r in readings] == list(range(1, len(readings) + 1))


def test_every_message_is_valid_for_the_engine_except_the_bad_ones():
    config = TrafficConfig(devices=50, rate=500, batch=3, duration_s=6, bad_fraction=0.05)
    traffic = Traffic(config, START)
    parser = Parser()
    reasons = {reason for reason, _ in BAD_PAYLOADS}
    seen_bad: set[str] = set()
    for msg in [*traffic.attributes(), *traffic.messages()]:
        out = parser.parse(RawMessage(msg.topic, msg.payload, START + 10_000))
        dead = [x for x in out if isinstance(x, DeadLetter)]
        if msg.bad_reason:
            seen_bad.add(msg.bad_reason)
            if msg.bad_reason != "out_of_range":  # range checks happen in the twin, per profile
                assert [d.reason for d in dead] == [msg.bad_reason]
        else:
            assert not dead, (msg.topic, msg.payload, dead)
    assert seen_bad == reasons


def test_vehicle_signals_are_physically_coherent():
    car = next(d for d in make_fleet(5, seed=3) if isinstance(d, Vehicle))
    odo, fuel = car.odometer, car.fuel
    rows = [car.step(1.0) for _ in range(1800)]
    speeds = [r["speed_kmh"] for r in rows]
    km = sum(speeds) / 3600
    assert rows[-1]["odometer_km"] - odo == pytest.approx(km, rel=0.05)  # odometer integrates
    assert max(speeds) > 20 and min(speeds) == 0  # drives and stops
    idle = [r["rpm"] for r in rows if r["speed_kmh"] < 2]
    assert idle and all(rpm == 800 for rpm in idle)
    assert rows[-1]["coolant_temp_c"] > rows[0]["coolant_temp_c"] + 20  # warms up
    refuelled = any(
        b["fuel_level_pct"] > a["fuel_level_pct"] + 10 for a, b in itertools.pairwise(rows)
    )
    assert refuelled or rows[-1]["fuel_level_pct"] < fuel
    assert all(b["brake_pad_mm"] <= a["brake_pad_mm"] for a, b in itertools.pairwise(rows))


def test_winter_is_colder_than_summer_and_machines_follow_their_pattern():
    summer = [d.ambient for d in make_fleet(60, seed=2, season="SUMMER") if isinstance(d, Vehicle)]
    winter = [d.ambient for d in make_fleet(60, seed=2, season="WINTER") if isinstance(d, Vehicle)]
    assert sum(winter) / len(winter) < sum(summer) / len(summer) - 15
    compressors = [d for d in make_fleet(40, seed=2, vehicle_share=0) if isinstance(d, Machine)]
    intermittent = next(d for d in compressors if d.pattern == "INTERMITTENT")
    loads = [intermittent.step(5.0)["load_pct"] for _ in range(2000)]
    assert any(v == 0 for v in loads) and any(v > 60 for v in loads)  # runs and idles


def _all_kinds_scenario() -> scenarios.Scenario:
    lines = ['name = "all"']
    for kind in FAULT_KINDS:
        lines += ["[[faults]]", f'kind = "{kind}"', "share = 0.05", "start_s = [20, 40]"]
        lines += ["duration_s = [15, 25]", "severity = [0.8, 1.0]"]
    return scenarios.parse("\n".join(lines))


def test_every_fault_shows_in_the_signals_exactly_in_its_ground_truth_window(tmp_path: Path):
    config = TrafficConfig(devices=40, rate=80, duration_s=90, seed=5)
    clean = readings_by_device(Traffic(config, START))
    fleet = Traffic(config, START).fleet
    faults = _all_kinds_scenario().plan(fleet, config.seed, START, config.duration_s)
    assert {f.kind for f in faults} == set(FAULT_KINDS)
    truth = tmp_path / "truth.jsonl"
    scenarios.write_ground_truth(truth, faults)
    recorded = [json.loads(line) for line in truth.read_text().splitlines()]
    assert len(recorded) == len(faults)

    for f in faults:  # one fault at a time, against the same traffic without it
        faulty = readings_by_device(Traffic(config, START, [f]))[f.device_id]
        base = {r["ts"]: r["values"] for r in clean[f.device_id]}
        got = {r["ts"]: r["values"] for r in faulty}
        inside = [ts for ts in base if f.start_ms <= ts < f.end_ms]
        before = [ts for ts in base if ts < f.start_ms]
        assert inside and before
        assert all(got[ts] == base[ts] for ts in before), f  # nothing changes early
        if f.kind == "dropout":
            assert not any(ts in got for ts in inside)  # silent inside, back afterwards
            assert any(ts in got for ts in base if ts >= f.end_ms)
            continue
        changed = [ts for ts in inside if got[ts] != base[ts]]
        if f.kind in ("fuel_leak", "battery_degradation", "brake_wear"):
            assert changed, f  # wear and leaks show while the device runs
        else:
            assert len(changed) >= len(inside) // 2, f  # visible through the window
        for ts in changed:
            differs = {m for m in base[ts] if got[ts].get(m) != base[ts][m]}
            assert differs <= set(f.metrics), (f, differs)
        if f.kind not in ("fuel_leak", "battery_degradation", "brake_wear"):
            after = [ts for ts in base if ts >= f.end_ms + 1000]
            assert all(got[ts] == base[ts] for ts in after), f  # sensor faults end on time
        row = next(r for r in recorded if r["device_id"] == f.device_id and r["fault"] == f.kind)
        assert (row["start_ms"], row["end_ms"], row["metrics"]) == (
            f.start_ms,
            f.end_ms,
            list(f.metrics),
        )


def test_fault_plan_is_deterministic_and_clipped_to_the_run():
    fleet = make_fleet(100, seed=4)
    scenario = scenarios.load("mixed-faults")
    a = scenario.plan(fleet, 4, START, duration_s=120)
    b = scenario.plan(fleet, 4, START, duration_s=120)
    assert a == b and a
    assert all(START <= f.start_ms < f.end_ms <= START + 120_000 for f in a)
    assert len(scenario.plan(fleet, 4, START)) > len(a)  # the full ten minutes hold more


def test_shipped_scenarios_load_and_bad_ones_say_why(tmp_path: Path):
    for name in ("quiet", "mixed-faults", "load-test"):
        assert scenarios.load(name).name == name
    with pytest.raises(ConfigurationError, match="no scenario 'nope'"):
        scenarios.load("nope")
    cases = {
        'name = "x"\n[[faults]]\nkind = "melting"\nshare = 0.1': "kind must be one of",
        'name = "x"\n[[faults]]\nkind = "spike"': "share",
        'name = "x"\n[[faults]]\nkind = "spike"\nshare = 0.1\nseverity = [0.5, 2]': "severity",
        'name = "x"\n[run]\nspeed = 3': "unknown [run] key",
        'name = "x"\n[run]\nseason = "SPRING"': "season",
        "name = ": "not valid TOML",
    }
    for text, message in cases.items():
        with pytest.raises(ConfigurationError, match=message.replace("[", r"\[")):
            scenarios.parse(text)


def test_fault_records_are_json_lines_with_utc_times():
    f = Fault("veh-1", "overheating", START, START + 1500, 0.5, ("coolant_temp_c",))
    row = f.ground_truth()
    assert row["start"].endswith("+00:00") and row["fault"] == "overheating"
    assert msgspec.json.decode(json.dumps(row))["end_ms"] == START + 1500
