"""Alert rules and the alert lifecycle, in device time."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as hs

from twin.alerts.book import RuleBook
from twin.alerts.defaults import BUILTIN_RULES
from twin.alerts.lifecycle import AlertEngine, AlertState
from twin.alerts.records import AlertTransition
from twin.alerts.rules import Level, Rule, Verdict, inside_polygon, threshold
from twin.anomaly.records import Anomaly
from twin.errors import ProfileError

T0 = 1_790_000_000_000
OVERHEAT = Rule(
    id="hot",
    type="threshold",
    metric="coolant_temp_c",
    levels=(Level(105, "major"), Level(115, "critical")),
    clear=100.0,
    sustain_s=30,
    clear_s=60,
)


def feed(engine: AlertEngine, st: AlertState, temps: list[float], start_s: int = 0):
    out: list[AlertTransition] = []
    for i, t in enumerate(temps):
        out += engine.on_reading(
            st, "car-1", "passenger_car", T0 + (start_s + i) * 1000, {"coolant_temp_c": t}
        )
    return out


def test_overheating_opens_once_escalates_and_resolves_after_the_clear_time():
    engine, st = AlertEngine(RuleBook([OVERHEAT])), AlertState()
    temps = [90.0] * 10 + [108.0] * 100 + [118.0] * 20 + [102.0] * 30 + [95.0] * 70
    out = feed(engine, st, temps)
    assert [t.transition for t in out] == ["opened", "escalated", "resolved"]
    opened, escalated, resolved = out
    assert opened.alert_id == f"car-1:hot:{T0 + 10_000}"  # identity: the first crossing
    assert opened.at_ms == T0 + 40_000 and opened.severity == "major"  # held 30 s first
    assert escalated.severity == "critical" and escalated.alert_id == opened.alert_id
    # 102 °C is above the 100 °C clear level: still open; clear from 160 s, resolved 60 s later
    assert resolved.at_ms == T0 + 220_000 and resolved.peak_severity == "critical"
    assert engine.open_summary(st) == (0, "")


def test_short_excursions_do_not_open_and_a_retrigger_counts_an_occurrence():
    engine, st = AlertEngine(RuleBook([OVERHEAT])), AlertState()
    out = feed(engine, st, [110.0] * 20 + [90.0] * 5)  # only 20 s above: never opens
    assert out == []
    out = feed(engine, st, [110.0] * 40 + [90.0] * 10 + [110.0] * 5, start_s=25)
    assert [t.transition for t in out] == ["opened", "retriggered"]
    assert out[-1].occurrences == 2 and out[-1].alert_id == out[0].alert_id


def test_replayed_telemetry_changes_nothing():
    engine, st = AlertEngine(RuleBook([OVERHEAT])), AlertState()
    temps = [90.0] * 5 + [110.0] * 50
    first = feed(engine, st, temps)
    again = feed(engine, st, temps)  # the same readings once more (a redelivery)
    assert [t.transition for t in first] == ["opened"] and again == []


def test_geofence_exit_and_polygons():
    fence = Rule(
        id="depot", type="geofence", trigger="exit", lat=52.5, lon=13.4, radius_m=1000, clear_s=0
    )
    engine, st = AlertEngine(RuleBook([fence])), AlertState()
    out = []
    for i, lat in enumerate([52.5, 52.503, 52.52, 52.52, 52.501]):
        out += engine.on_reading(st, "van-1", "truck", T0 + i * 1000, {"lat": lat, "lon": 13.4})
    assert [t.transition for t in out] == ["opened", "resolved"]
    assert out[0].at_ms == T0 + 2000 and "outside" in out[0].detail
    square = ((0.0, 0.0), (0.0, 1.0), (1.0, 1.0), (1.0, 0.0))
    assert inside_polygon(0.5, 0.5, square) and not inside_polygon(1.5, 0.5, square)


def test_no_data_opens_against_the_clock_and_resolves_on_the_next_reading():
    rule = Rule(id="no-data", type="no_data", silence_s=300, clear_s=0)
    engine, st = AlertEngine(RuleBook([rule])), AlertState()
    engine.on_reading(st, "p-1", "pump", T0, {"temperature_c": 50.0})
    assert engine.on_silence(st, "p-1", "pump", T0 + 200_000, T0) == []
    opened = engine.on_silence(st, "p-1", "pump", T0 + 400_000, T0)
    assert [t.transition for t in opened] == ["opened"] and opened[0].at_ms == T0 + 300_000
    assert engine.on_silence(st, "p-1", "pump", T0 + 500_000, T0) == []  # once per silence
    back = engine.on_reading(st, "p-1", "pump", T0 + 510_000, {"temperature_c": 50.0})
    assert [t.transition for t in back] == ["resolved"]


def test_fault_codes_map_to_severity_by_family_and_rates_only_while_parked():
    book = RuleBook(BUILTIN_RULES)
    engine, st = AlertEngine(book), AlertState()
    out = engine.on_event(st, "car-1", "passenger_car", T0, "dtc", "P0217")
    assert out[0].rule_id == "fault-codes" and out[0].severity == "critical"
    st2 = AlertState()
    assert engine.on_event(st2, "car-2", "passenger_car", T0, "dtc", "B1000")[0].severity == "info"
    st3 = AlertState()
    drive = [(50.0, 60.0), (48.0, 60.0), (47.9, 0.0), (40.0, 0.0)]  # fuel %, speed per minute
    out = []
    for i, (fuel, speed) in enumerate(drive):
        values = {"fuel_level_pct": fuel, "speed_kmh": speed}
        out += engine.on_reading(st3, "car-3", "passenger_car", T0 + i * 60_000, values)
    rates = [t for t in out if t.rule_id == "fuel-drain-parked"]
    assert [t.transition for t in rates] == ["opened"] and rates[0].at_ms == T0 + 180_000


def test_rules_say_what_is_wrong_with_them():
    with pytest.raises(ProfileError, match="needs a metric"):
        Rule(id="x", type="threshold", levels=(Level(1, "major"),)).check()
    with pytest.raises(ProfileError, match="type must be"):
        Rule(id="x", type="weather").check()
    for rule in BUILTIN_RULES:
        rule.check()
    with pytest.raises(ProfileError, match="cannot override itself"):
        Rule(id="x", type="no_data", overrides="x").check()


def test_a_device_override_replaces_the_shipped_rule_on_that_device_only():
    shipped = next(r for r in BUILTIN_RULES if r.id == "machine-overheating")
    hot_pump = Rule(
        id="p-7-runs-hot",
        type="threshold",
        devices=("p-7",),
        overrides=shipped.id,
        metric="temperature_c",
        levels=(Level(95, "major"),),
        sustain_s=30,
    )
    book = RuleBook([shipped, hot_pump])
    assert [r.id for r in book.applicable("p-7", "pump")] == ["p-7-runs-hot"]
    assert [r.id for r in book.applicable("p-8", "pump")] == ["machine-overheating"]
    engine = AlertEngine(book)
    opened: dict[str, list[str]] = {}
    for device in ("p-7", "p-8"):
        st, out = AlertState(), []
        for i in range(60):  # 90 °C for a minute: too hot for a pump, normal for p-7
            values = {"temperature_c": 90.0, "load_pct": 60.0}
            out += engine.on_reading(st, device, "pump", T0 + i * 1000, values)
        opened[device] = [t.rule_id for t in out if t.transition == "opened"]
    assert opened == {"p-7": [], "p-8": ["machine-overheating"]}


def test_an_open_alert_resolves_when_its_rule_is_removed_or_overridden():
    book = RuleBook([OVERHEAT])
    engine, st = AlertEngine(book), AlertState()
    out = feed(engine, st, [110.0] * 40)
    assert [t.transition for t in out] == ["opened"]
    version = book.version
    book.replace([])  # the rule was deleted while its alert was open
    assert book.version != version
    out = feed(engine, st, [110.0], start_s=40)
    assert [(t.transition, t.detail) for t in out] == [("resolved", "the rule no longer applies")]
    assert out[0].alert_id.endswith(f":hot:{T0}") and st.tracks == {}
    assert engine.open_summary(st) == (0, "")


def test_the_rule_book_version_follows_content_not_edits():
    assert RuleBook([OVERHEAT]).version == RuleBook([OVERHEAT]).version
    book = RuleBook([OVERHEAT])
    before = book.version
    book.replace([OVERHEAT])  # reloaded, unchanged: twins need not re-check their alerts
    assert book.version == before
    assert RuleBook([OVERHEAT, BUILTIN_RULES[0]]).version != before


def test_machine_overheating_follows_each_profiles_own_limits():
    engine = AlertEngine(RuleBook(BUILTIN_RULES))

    def opened(profile: str, temp: float) -> list[tuple[str, str]]:
        st, out = AlertState(), []
        for i in range(60):
            values = {"temperature_c": temp, "load_pct": 60.0}
            out += engine.on_reading(st, f"{profile}-1", profile, T0 + i * 1000, values)
        return [(t.rule_id, t.severity) for t in out if t.transition == "opened"]

    # pump 80 / 95 °C, compressor 100 / 110, CNC machine 55 / 65, conveyor 70 / 85
    assert opened("pump", 85.0) == [("machine-overheating", "major")]
    assert opened("compressor", 85.0) == []  # normal for a compressor
    assert opened("compressor", 112.0) == [("machine-overheating", "critical")]
    assert opened("cnc_machine", 60.0) == [("machine-overheating", "major")]
    assert opened("conveyor", 60.0) == []
    rule = next(r for r in engine.book.applicable("c-1", "cnc_machine") if r.metric)
    assert rule.clear == 50.0  # five degrees short of the first level: hysteresis

    anywhere = Rule(id="hot", type="threshold", metric="temperature_c", levels_from_profile=True)
    book = RuleBook([anywhere])
    assert book.applicable("g-1", "generic") == ()  # the generic profile sets no limits
    (pump,) = book.applicable("p-1", "pump")
    assert [(lv.value, lv.severity) for lv in pump.levels] == [(80, "warning"), (95, "critical")]


def test_a_limit_breach_is_one_alert_not_one_per_rule_type():
    engine, st = AlertEngine(RuleBook(BUILTIN_RULES)), AlertState()

    def breach(metric: str, at_s: int) -> Anomaly:
        return Anomaly(
            device_id="p-1",
            detector="rule",
            kind="high",
            metric=metric,
            severity="critical",
            score=0.9,
            started_ms=T0 + at_s * 1000,
        )

    out = []
    for i in range(60):  # the detectors report the breach; the threshold rule owns it
        values = {"temperature_c": 97.0, "load_pct": 60.0}
        out += engine.on_anomalies(st, "p-1", "pump", T0 + i * 1000, [breach("temperature_c", 0)])
        out += engine.on_reading(st, "p-1", "pump", T0 + i * 1000, values)
    assert [t.rule_id for t in out if t.transition == "opened"] == ["machine-overheating"]
    # vibration has no threshold rule: its critical breach still alerts
    out = engine.on_anomalies(st, "p-1", "pump", T0 + 61_000, [breach("vibration_mm_s", 61)])
    assert [t.rule_id for t in out if t.transition == "opened"] == ["critical-anomaly"]


def _judged_one_by_one(engine: AlertEngine, st: AlertState, ts_ms: int, values: dict) -> list:
    """Every rule a reading judges through the full state machine, as a reference for the
    short cut the engine takes for idle alerts with a reading short of every level."""
    out: list[AlertTransition] = []
    for rule in engine.book.applicable("car-1", "passenger_car"):
        verdict = None
        if rule.type == "threshold" and rule.metric in values:
            tr = st.tracks.get(rule.id)
            was = tr is not None and tr.phase in ("pending", "open")
            verdict = threshold(rule, values[rule.metric], was)
        elif rule.type == "no_data":
            verdict = Verdict(False)
        if verdict is not None:
            engine._step(st, rule, "car-1", ts_ms, verdict, out)
    return out


COLD = Rule(id="cold", type="threshold", metric="coolant_temp_c", above=False,
            levels=(Level(-20, "major"),), clear=-15.0, clear_s=5)  # fmt: skip
SILENT = Rule(id="quiet", type="no_data", silence_s=10)


@given(
    hs.lists(
        hs.tuples(
            hs.integers(-3, 20),
            hs.sampled_from([-30.0, -20.0, -17.0, 0.0, 90.0, 103.0, 105.0, 110.0, 120.0, None]),
        ),
        max_size=80,
    )
)
def test_idle_alerts_skip_the_state_machine_with_the_same_result(steps):
    rules = [OVERHEAT, COLD, SILENT]
    fast, slow = AlertEngine(RuleBook(rules)), AlertEngine(RuleBook(rules))
    a, b = AlertState(), AlertState()
    ts = T0
    for dt, temp in steps:
        ts += dt * 1000  # now and then back in time: late readings change nothing
        values = {} if temp is None else {"coolant_temp_c": temp}
        got = fast.on_reading(a, "car-1", "passenger_car", ts, values)
        if b.book_version != slow.book.version:
            b.book_version = slow.book.version
        want = _judged_one_by_one(slow, b, ts, values)
        assert got == want
        assert a.tracks == b.tracks
