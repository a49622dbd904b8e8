"""The relation layer: metrics that each read normally while the relation between them breaks,
named in the anomaly with what each of them should read given the others; scalar and
vectorised alike."""

from __future__ import annotations

import math
import random

import msgspec
import pytest
from msgspec.structs import replace

from twin.anomaly.columns import ColumnarDetectors
from twin.anomaly.config import FLEET, DetectorConfig
from twin.anomaly.detectors import AnomalyDetectors, DetectorState
from twin.anomaly.records import Anomaly
from twin.anomaly.relation import chi2_log10_sf
from twin.profiles import GENERIC, MACHINE, DeviceProfile, MetricSpec, ProfileError

T0 = 1_790_000_000_000
PUMP = DeviceProfile(
    name="pump",
    kind=GENERIC,
    description="a pump: flow follows pressure",
    metrics={"pressure": MetricSpec("bar", 0, 100), "flow": MetricSpec("m3/h", 0, 400)},
    relations=("pressure", "flow"),
)
BROKEN_AT = 3_000


def pump_stream(seed: int, n: int = 4_000, broken: bool = True) -> list[tuple[float, float]]:
    """Pressure wanders widely; flow follows it (4 per bar). From ``BROKEN_AT`` the flow falls
    behind by 10 over 300 readings and stays there: less than a fifth of its usual swing."""
    rng = random.Random(seed)
    pressure, out = 50.0, []
    for i in range(n):
        pressure += 0.02 * (50.0 - pressure) + rng.gauss(0, 1.5)
        flow = 4 * pressure + rng.gauss(0, 1.0)
        if broken and i >= BROKEN_AT:
            flow -= 10.0 * min(1.0, (i - BROKEN_AT) / 300)
        out.append((pressure, flow))
    return out


def _run(stream: list[tuple[float, float]], profile: DeviceProfile) -> list[Anomaly]:
    det, st = AnomalyDetectors(FLEET), DetectorState()
    events: list[Anomaly] = []
    for i, (p, q) in enumerate(stream):
        obs = det.observe(st, "pump1", profile, T0 + i * 1000, {"pressure": p, "flow": q})
        events += obs.events
    return events


def test_the_chi_square_tail_is_exact() -> None:
    # closed forms: k=2 is exp(-x/2); k=1 is erfc(sqrt(x/2))
    for x in (0.5, 3.0, 20.0, 90.0):
        assert chi2_log10_sf(x, 2) == pytest.approx(x / 2 / math.log(10), rel=1e-12)
        assert chi2_log10_sf(x, 1) == pytest.approx(-math.log10(math.erfc(math.sqrt(x / 2))))
    # k=3 against the series by integration of the density
    for x in (1.0, 7.8, 16.3):
        step, total, t = 1e-3, 0.0, x
        while t < x + 80:
            total += math.sqrt(t) * math.exp(-t / 2) / (math.sqrt(2 * math.pi)) * step
            t += step
        assert chi2_log10_sf(x, 3) == pytest.approx(-math.log10(total), rel=1e-3), x
    assert chi2_log10_sf(5_000.0, 5) > 1_000  # never underflows


def test_a_broken_relation_is_found_and_named_where_no_single_metric_is() -> None:
    events = _run(pump_stream(1), PUMP)
    opened = [a for a in events if a.ended_ms is None and a.detector == "relation"]
    assert opened, [(a.detector, a.metric) for a in events]
    first = opened[0]
    assert T0 + BROKEN_AT * 1000 <= first.started_ms <= T0 + (BROKEN_AT + 300) * 1000
    assert first.metric.split("+")[0] in ("flow", "pressure") and "+" in first.metric
    assert first.kind == "relation" and first.expected is not None
    assert 0.5 < first.score < 1
    plain = msgspec.structs.replace(PUMP, relations=())
    others = [a for a in _run(pump_stream(1), plain) if a.ended_ms is None]
    assert not [a for a in others if a.started_ms >= T0 + BROKEN_AT * 1000], others


def test_the_explanation_gives_each_named_metric_expected_against_observed() -> None:
    stream = pump_stream(1)
    events = [a for a in _run(stream, PUMP) if a.detector == "relation"]
    first = events[0]
    assert [e.metric for e in first.explanation] == first.metric.split("+")
    assert sorted(first.metric.split("+")) == ["flow", "pressure"]
    assert (first.explanation[0].expected, first.explanation[0].observed) == (
        first.expected,
        first.observed,
    )
    at = (first.started_ms - T0) // 1000
    pressure, flow = stream[at]
    by = {e.metric: e for e in first.explanation}
    assert by["flow"].observed == pytest.approx(flow, abs=1e-6)
    assert by["pressure"].observed == pytest.approx(pressure, abs=1e-6)
    # the flow fell behind what the pressure says (4 per bar), so the pressure reads high for
    # that flow: each expected value is the regression of the metric on the other
    assert 0 < by["flow"].expected - flow < 12
    assert by["flow"].expected == pytest.approx(4 * pressure, abs=3)
    assert 0 < pressure - by["pressure"].expected < 3
    closed = [a for a in events if a.ended_ms is not None]
    assert all(len(a.explanation) == len(a.metric.split("+")) for a in closed)


def test_a_healthy_relation_raises_nothing() -> None:
    for seed in (2, 3):
        events = _run(pump_stream(seed, broken=False), PUMP)
        assert not [a for a in events if a.detector == "relation"], seed


MOTOR = DeviceProfile(
    name="motor_pump",
    kind=MACHINE,
    description="a driven pump: power, current and flow follow the load it runs at",
    driver="load_pct",
    metrics={
        "load_pct": MetricSpec("%", 0, 150, watch="rules"),
        "power_kw": MetricSpec("kW", -1, 500),
        "current_a": MetricSpec("A", -1, 1000),
        "flow_m3h": MetricSpec("m3/h", 0, 2000),
    },
    relations=("load_pct", "power_kw", "current_a", "flow_m3h"),
)


def motor_stream(seed: int, n: int = 6_000, worn_at: int | None = None) -> list[dict[str, float]]:
    """Load about 75 % with a little noise; from reading 3,500 it runs at 50 %, and it stops for
    a minute now and then. Power, current and flow follow the load. From ``worn_at`` the flow
    falls by 15 % for the same load and power (a worn impeller)."""
    rng, out = random.Random(seed), []
    for i in range(n):
        load = (50.0 if i >= 3_500 else 75.0) + rng.gauss(0, 2)
        if i % 900 >= 840:
            load = 0.0
        worn = 0.85 if worn_at is not None and i >= worn_at else 1.0
        values = {"load_pct": round(load, 2)}
        for m, k in (("power_kw", 0.6), ("current_a", 1.07), ("flow_m3h", 1.6)):
            x = k * load * (worn if m == "flow_m3h" else 1.0)
            values[m] = round(x * (1 + rng.gauss(0, 0.02)), 3)
        out.append(values)
    return out


def _motor_events(stream: list[dict[str, float]], config: DetectorConfig = FLEET) -> list[Anomaly]:
    det, st = AnomalyDetectors(config), DetectorState()
    return [a for i, v in enumerate(stream)
            for a in det.observe(st, "m1", MOTOR, T0 + i * 1000, v).events]  # fmt: skip


def test_a_relation_with_the_driver_is_judged_at_the_operating_point() -> None:
    # a new operating point and stops are not faults: the others follow the driver as before
    for seed in (1, 2):
        assert _motor_events(motor_stream(seed)) == [], seed
    events = _motor_events(motor_stream(1, worn_at=5_000))
    opened = [a for a in events if a.ended_ms is None and a.detector == "relation"]
    assert opened, events
    assert opened[0].metric.split("+")[0] == "flow_m3h" and "load_pct" not in opened[0].metric
    assert T0 + 5_000_000 <= opened[0].started_ms <= T0 + 5_030_000
    why = opened[0].explanation[0]
    assert why.expected > why.observed  # less flow than the load and power say


def test_a_lasting_change_of_relation_is_learnt_after_it_has_been_reported() -> None:
    events = _motor_events(motor_stream(1, n=9_000, worn_at=5_000), replace(FLEET, adapt=300))
    relation = [a for a in events if a.detector == "relation"]
    assert relation and relation[-1].ended_ms is not None, relation  # closed: now the normal
    assert relation[0].started_ms < relation[-1].ended_ms < T0 + 9_000_000


def test_the_vectorised_path_and_a_restart_agree() -> None:
    stream = pump_stream(4)
    items = [(f"p{d}", PUMP, T0 + i * 1000, {"pressure": p, "flow": q})
             for i, (p, q) in enumerate(stream) for d in range(3)]  # fmt: skip
    half = len(items) // 2
    scalar, cd = AnomalyDetectors(FLEET), ColumnarDetectors(FLEET)
    states: dict[str, DetectorState] = {}
    for start in range(0, half, 120):
        chunk = items[start : min(start + 120, half)]
        want = [scalar.observe(states.setdefault(d, DetectorState()), d, p, ts, v)
                for d, p, ts, v in chunk]  # fmt: skip
        got = cd.observe_batch(chunk)
        assert [o.events for o in got] == [o.events for o in want]
        assert [o.score for o in got] == pytest.approx([o.score for o in want], abs=1e-12)
    cd = ColumnarDetectors(FLEET)
    for device_id, st in states.items():
        cd.load(device_id, msgspec.json.decode(msgspec.json.encode(st), type=DetectorState))
    rest = items[half:]
    want = [scalar.observe(states[d], d, p, ts, v) for d, p, ts, v in rest]
    got = cd.observe_batch(rest)
    assert [sorted(o.events, key=repr) for o in got] == [sorted(o.events, key=repr) for o in want]
    assert any(a.detector == "relation" for o in want for a in o.events)
    for device_id, st in states.items():
        assert cd.state(device_id).relation == st.relation


def test_a_relation_names_two_metrics_or_more() -> None:
    with pytest.raises(ProfileError, match="relations"):
        msgspec.structs.replace(PUMP, relations=("flow",)).check()
    with pytest.raises(ProfileError, match="unknown head"):
        msgspec.structs.replace(PUMP, relations=("flow", "head")).check()
    PUMP.check()
