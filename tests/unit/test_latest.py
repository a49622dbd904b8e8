"""The latest values of a twin: event-time order per metric, integers kept as sent, the
snapshot's two maps in and out, and metric names shared between twins."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from twin.latest import Latest
from twin.state import TwinState, decode_state, encode_state

METRICS = ["a", "b", "c", "d"]
reading = st.tuples(
    st.integers(min_value=0, max_value=2**41),
    st.dictionaries(
        st.sampled_from(METRICS),
        st.one_of(
            st.integers(min_value=-(2**53), max_value=2**53),
            st.floats(allow_nan=False, allow_infinity=False),
        ),
        min_size=1,
    ),
)


def reference(readings: list[tuple[int, dict]]) -> tuple[dict, dict, list[bool]]:
    """Two dicts, as the twin kept them before: a value is taken unless an older time."""
    values: dict = {}
    times: dict = {}
    moved = []
    for ts, vals in readings:
        any_moved = False
        for name, value in vals.items():
            if ts >= times.get(name, 0):
                values[name], times[name], any_moved = value, ts, True
        moved.append(any_moved)
    return values, times, moved


@given(st.lists(reading, max_size=30))
def test_latest_matches_two_dicts_in_any_order(readings):
    latest = Latest()
    moved = [latest.update(vals, ts) for ts, vals in readings]
    values, times, expected_moved = reference(readings)
    assert moved == expected_moved
    assert latest.as_dict() == values and dict(latest) == values
    assert {m: type(v) for m, v in latest.as_dict().items()} == {
        m: type(v) for m, v in values.items()
    }
    assert latest.times() == times
    assert all(latest.time(m) == times.get(m) for m in METRICS)
    restored = Latest.of(values)
    restored.set_times(times)
    assert restored.as_dict() == values and restored.times() == times


@given(st.lists(reading, min_size=1, max_size=10))
def test_latest_round_trips_through_a_snapshot(readings):
    state = TwinState(device_id="dev")
    for ts, vals in readings:
        state.latest.update(vals, ts)
    back = decode_state(encode_state(state))
    assert back.latest.as_dict() == state.latest.as_dict()
    assert back.latest.times() == state.latest.times()
    assert back.latest_ts is None  # the times live in ``latest`` once decoded


def test_a_snapshot_holds_two_plain_maps_and_a_metric_without_a_time_takes_zero():
    state = TwinState(device_id="dev")
    state.latest.update({"rpm": 2000, "temp_c": 90.5}, 1_000)
    raw = encode_state(state)
    assert b'"latest":{"rpm":2000,"temp_c":90.5}' in raw
    assert b'"latest_ts":{"rpm":1000,"temp_c":1000}' in raw
    older = raw.replace(b'"latest_ts":{"rpm":1000,"temp_c":1000}', b'"latest_ts":{"rpm":1000}')
    back = decode_state(older)
    assert back.latest.time("rpm") == 1_000 and back.latest.time("temp_c") == 0
    assert back.latest.update({"temp_c": 80.0}, 1) and back.latest["temp_c"] == 80.0


def test_twins_with_the_same_metrics_share_one_set_of_names():
    one, two = Latest(), Latest()
    one.update({"x": 1.0, "y": 2.0}, 10)
    two.update({"x": 3.0}, 10)
    two.update({"y": 4.0}, 11)
    assert one._names is two._names  # grown one name at a time, to the same shared set
    assert two.as_dict() == {"x": 3.0, "y": 4.0} and two.time("y") == 11
    snapshot = decode_state(encode_state(TwinState(device_id="z", latest=one)))
    assert snapshot.latest._names is one._names


def test_an_integer_replaced_by_a_float_reads_back_as_the_float():
    latest = Latest()
    latest.update({"n": 5}, 1)
    assert latest["n"] == 5 and type(latest["n"]) is int
    latest.update({"n": 5.5}, 2)
    assert latest["n"] == 5.5 and type(latest.as_dict()["n"]) is float
    assert not latest.update({"n": 7}, 1) and latest["n"] == 5.5
    assert latest.get("missing") is None and "missing" not in latest and len(latest) == 1
