"""Twin state: event-time latest values, usage figures, snapshots, validation by profile."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.clock import MS_PER_DAY
from twin.errors import ProfileError
from twin.processor import TwinProcessor, TwinSettings
from twin.profiles import BUILTIN_PROFILES, MetricSpec, ProfileBook, profile_from_mapping
from twin.records import (
    Attributes,
    DeadLetter,
    DeviceEvent,
    DeviceInbox,
    Reading,
    Reason,
)
from twin.state import (
    IDENTITY,
    RECENT_READINGS,
    decode_state,
    encode_state,
    holds_identity,
    reading_identity,
)

T0 = 1_763_683_200_000


def reading(dev: str, ts: int, seq: int | None = None, **values: float) -> Reading:
    return Reading(device_id=dev, ts_ms=ts, values=values, received_ms=ts, seq=seq)


def attrs(dev: str, **a: object) -> Attributes:
    return Attributes(device_id=dev, attributes=a, received_ms=T0)


def run(processor: TwinProcessor, state, dev: str, *items, now: int = T0):
    return processor.process(state, dev, DeviceInbox(dev, list(items), len(items)), now)


def test_builtin_profiles_cover_the_required_kinds_and_are_consistent():
    names = {p.name for p in BUILTIN_PROFILES}
    assert {"passenger_car", "truck", "pump", "compressor", "cnc_machine"} <= names
    for p in BUILTIN_PROFILES:
        p.check()


def test_profile_that_contradicts_itself_is_refused():
    with pytest.raises(ProfileError):
        MetricSpec(unit="C", valid_min=0, valid_max=100, warn_high=150).check("t")
    with pytest.raises(ProfileError):
        profile_from_mapping({"name": "x", "kind": "boat", "description": "", "metrics": {}})


def test_latest_never_moves_backwards_with_out_of_order_readings():
    p = TwinProcessor()
    state, _ = run(p, None, "m1", reading("m1", T0 + 2000, temperature_c=50.0))
    state, out = run(p, state, "m1", reading("m1", T0 + 1000, temperature_c=40.0, rpm=10.0))
    assert state.latest == {"temperature_c": 50.0, "rpm": 10.0}
    assert state.latest.time("temperature_c") == T0 + 2000
    assert state.last_seen_ms == T0 + 2000
    assert state.readings == 2 and state.late == 0
    # the late reading is still stored
    assert len(out.readings) == 1
    state, _ = run(p, state, "m1", reading("m1", T0 + 500, temperature_c=1.0, rpm=1.0))
    assert state.late == 1 and state.latest["rpm"] == 10.0


def test_vehicle_usage_ema_and_category():
    p = TwinProcessor()
    state, _ = run(p, None, "car", attrs("car", kind="vehicle", profile="passenger_car"))
    # 30 km every day for 20 days: LOW for a car (medium starts at 40 km/day)
    for day in range(21):
        state, out = run(
            p, state, "car", reading("car", T0 + day * MS_PER_DAY, odometer_km=1000.0 + 30 * day)
        )
    assert state.km_per_day == pytest.approx(30.0)
    assert out.live is not None and out.live["usage_category"] == "LOW"
    # then 150 km a day for four weeks: HIGH
    for day in range(21, 50):
        state, out = run(
            p,
            state,
            "car",
            reading("car", T0 + day * MS_PER_DAY, odometer_km=1600.0 + 150 * (day - 20)),
        )
    assert state.km_per_day == pytest.approx(150.0, rel=0.05)
    assert out.live is not None and out.live["usage_category"] == "HIGH"


def test_odometer_going_backwards_resets_the_baseline_without_negative_usage():
    p = TwinProcessor()
    state, _ = run(p, None, "car", attrs("car", kind="vehicle", profile="passenger_car"))
    state, _ = run(p, state, "car", reading("car", T0, odometer_km=5000.0))
    state, _ = run(p, state, "car", reading("car", T0 + MS_PER_DAY, odometer_km=10.0))
    state, _ = run(p, state, "car", reading("car", T0 + 2 * MS_PER_DAY, odometer_km=70.0))
    assert state.km_per_day == pytest.approx(60.0)


def test_machine_operating_hours_and_load_ema():
    p = TwinProcessor()
    state, _ = run(p, None, "p1", attrs("p1", kind="machine", profile="pump"))
    minute = 60_000
    for i in range(61):  # one hour running at 80 % load, one reading a minute
        state, _ = run(p, state, "p1", reading("p1", T0 + i * minute, load_pct=80.0))
    assert state.operating_hours == pytest.approx(1.0)
    for i in range(61, 121):  # one hour idle
        state, _ = run(p, state, "p1", reading("p1", T0 + i * minute, load_pct=0.0))
    assert state.operating_hours == pytest.approx(1.0)
    assert state.load_ema is not None and 20 < state.load_ema < 60
    # a gap longer than ten minutes is not counted as running
    state, _ = run(p, state, "p1", reading("p1", T0 + 130 * minute, load_pct=90.0))
    state, _ = run(p, state, "p1", reading("p1", T0 + 200 * minute, load_pct=90.0))
    assert state.operating_hours == pytest.approx(1.0)


def test_out_of_range_values_follow_the_devices_profile():
    p = TwinProcessor()
    state, _ = run(p, None, "p1", attrs("p1", kind="machine", profile="pump"))
    # 150 °C is a possible temperature in general, but not for a pump (valid max 200),
    # 250 °C is not: the whole reading goes to dead letters, the good one is kept
    state, out = run(
        p,
        state,
        "p1",
        reading("p1", T0, temperature_c=150.0),
        reading("p1", T0 + 1, temperature_c=250.0, rpm=10.0),
    )
    assert len(out.readings) == 1
    [dl] = out.dead_letters
    assert dl.reason is Reason.OUT_OF_RANGE and "temperature_c=250.0" in dl.detail
    assert state.rejected == 1 and state.readings == 1
    assert "rpm" not in state.latest


def test_first_sight_registers_the_device_and_attributes_update_it():
    p = TwinProcessor()
    state, out = run(p, None, "d", reading("d", T0, rpm=1.0))
    assert out.registry is not None and out.registry.kind == "generic"
    state, out = run(p, state, "d", reading("d", T0 + 1, rpm=2.0))
    assert out.registry is None
    state, out = run(p, state, "d", attrs("d", profile="compressor", model="GA-30"))
    assert out.registry is not None
    assert (out.registry.kind, out.registry.profile) == ("machine", "compressor")
    assert out.registry.attributes["model"] == "GA-30"


def test_events_and_parse_dead_letters_are_counted_and_passed_on():
    p = TwinProcessor()
    ev = DeviceEvent(device_id="d", ts_ms=T0, type="dtc", body={"code": "P0217"}, received_ms=T0)
    dl = DeadLetter(
        received_ms=T0,
        topic="devices/d/telemetry",
        reason=Reason.BAD_JSON,
        detail="x",
        payload=b"{",
        device_id="d",
    )
    state, out = run(p, None, "d", ev, dl)
    assert out.events == [ev] and out.dead_letters == [dl]
    assert (state.events, state.last_event, state.rejected, state.messages) == (1, "dtc", 1, 2)


def test_snapshot_interval_and_warm_start():
    p = TwinProcessor(settings=TwinSettings(snapshot_interval_ms=10_000))
    state, out = run(p, None, "d", reading("d", T0, rpm=1.0), now=T0)
    assert out.snapshot is not None
    state, out = run(p, state, "d", reading("d", T0 + 1, rpm=2.0), now=T0 + 5_000)
    assert out.snapshot is None
    state, out = run(p, state, "d", reading("d", T0 + 2, rpm=3.0), now=T0 + 10_000)
    assert out.snapshot is not None
    warm = {"d": out.snapshot.state}
    restarted = TwinProcessor(warm_states=warm)
    state2, out2 = run(restarted, None, "d", reading("d", T0 + 3, rpm=4.0))
    assert out2.registry is None  # known device, not a first sight
    assert state2.readings == 4 and state2.latest["rpm"] == 4.0 and not warm


def test_live_view_and_position():
    p = TwinProcessor()
    _, out = run(
        p,
        None,
        "car",
        attrs("car", kind="vehicle", profile="truck"),
        reading("car", T0, lat=52.5, lon=13.4, speed_kmh=80.0),
    )
    assert out.lat_lon == (52.5, 13.4)
    assert out.live is not None
    assert out.live["speed_kmh"] == 80.0 and out.live["status"] == "online"
    assert out.live["profile"] == "truck" and out.live["readings"] == 1


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**6), st.floats(-1e6, 1e6)), min_size=1, max_size=40))
def test_latest_is_the_value_with_the_newest_timestamp_in_any_arrival_order(pairs):
    p = TwinProcessor(profiles=ProfileBook())
    state = None
    for ts, value in pairs:
        state, _ = run(p, state, "d", reading("d", T0 + ts, x=value))
    newest = max(ts for ts, _ in pairs)
    assert state is not None
    assert state.latest.time("x") == T0 + newest
    assert state.latest["x"] in [v for ts, v in pairs if ts == newest]
    assert decode_state(encode_state(state)) == state


def test_state_stays_small():
    p = TwinProcessor()
    state, _ = run(
        p, None, "car-000001", attrs("car-000001", kind="vehicle", profile="passenger_car")
    )
    values = {
        "speed_kmh": 50.0,
        "rpm": 2000.0,
        "coolant_temp_c": 90.0,
        "fuel_level_pct": 50.0,
        "odometer_km": 1000.0,
        "battery_v": 12.6,
        "brake_pad_mm": 8.0,
        "oil_pressure_kpa": 300.0,
        "lat": 1.0,
        "lon": 2.0,
        "heading_deg": 90.0,
    }
    for i in range(100):
        state, _ = run(p, state, "car-000001", reading("car-000001", T0 + i * 1000, **values))
    assert len(encode_state(state)) < 2048
    assert state.readings == 100


def test_a_reading_delivered_twice_counts_once_and_late_new_ones_still_count():
    p = TwinProcessor()
    first = reading("m1", T0 + 1000, seq=1, temperature_c=50.0)
    state, _ = run(p, None, "m1", first, reading("m1", T0 + 2000, seq=2, temperature_c=51.0))
    state, out = run(p, state, "m1", first)  # the same (ts, seq) again: a resend
    assert state.readings == 2 and out.readings == [] and out.repeats == 1
    late = reading("m1", T0 + 500, seq=0, temperature_c=49.0)  # older, but never seen
    same_ts_other_seq = reading("m1", T0 + 1000, seq=7, temperature_c=50.5)
    state, out = run(p, state, "m1", late, same_ts_other_seq)
    assert state.readings == 4 and len(out.readings) == 2 and out.repeats == 0
    restored = decode_state(encode_state(state))  # the memory survives a snapshot
    _, again = run(p, restored, "m1", late)
    assert again.repeats == 1


def test_a_twin_remembers_its_last_sixteen_readings_and_older_snapshots_still_count():
    p = TwinProcessor()
    sent = [reading("m1", T0 + k * 1000, seq=k, temperature_c=50.0) for k in range(20)]
    state, _ = run(p, None, "m1", *sent)
    assert len(state.recent) == RECENT_READINGS * 8
    state, out = run(p, state, "m1", *sent[-RECENT_READINGS:], sent[0])
    assert out.repeats == RECENT_READINGS and state.readings == 21  # the oldest is forgotten
    older = encode_state(
        state
    ).replace(  # a snapshot of a release that kept a list of ints
        b'"recent":"' + base64.b64encode(state.recent) + b'"',
        b'"recent":' + json.dumps([reading_identity(r) for r in sent[-RECENT_READINGS:]]).encode(),
    )
    assert older != encode_state(state)
    _, again = run(p, decode_state(older), "m1", sent[-1], sent[-RECENT_READINGS])
    assert again.repeats == 2


def test_an_identity_straddling_two_remembered_ones_is_not_a_repeat():
    recent = IDENTITY.pack(12345) + IDENTITY.pack(-67890)
    straddling = IDENTITY.unpack(recent[4:12])[0]  # the end of one and the start of the next
    assert recent.find(IDENTITY.pack(straddling)) == 4
    assert not holds_identity(recent, straddling)
    assert holds_identity(recent, 12345) and holds_identity(recent, -67890)
    assert holds_identity(recent + IDENTITY.pack(straddling), straddling)
