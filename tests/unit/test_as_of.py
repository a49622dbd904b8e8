"""Replaying stored readings onto a past state gives the state the twin had then."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from twin.as_of import replay
from twin.profiles import ProfileBook
from twin.records import Reading
from twin.state import TwinState, decode_state, encode_state

PROFILE = ProfileBook().get("passenger_car")


def readings(n: int) -> list[Reading]:
    return [
        Reading("car", 1_000 * k, {"odometer_km": 100 + k / 10, "speed_kmh": float(k)}, 1_000 * k)
        for k in range(1, n + 1)
    ]


def live(upto: int, stream: list[Reading]) -> TwinState:
    state = TwinState(device_id="car", kind="vehicle", profile="passenger_car")
    for r in stream[:upto]:
        state.apply(r, PROFILE)
    return state


@given(st.integers(1, 60), st.integers(0, 60), st.integers(0, 70))
def test_a_snapshot_and_the_readings_after_it_make_the_twin_at_that_time(
    base: int, extra: int, at_s: int
):
    stream = readings(base + extra)
    snapshot = decode_state(encode_state(live(base, stream)))
    until = max(base, min(at_s, base + extra))
    applied = replay(snapshot, PROFILE, stream, until * 1_000)  # the stored rows, all of them
    want = live(until, stream)
    assert applied == until - base
    assert snapshot.latest.as_dict() == want.latest.as_dict()
    assert snapshot.latest.times() == want.latest.times()
    assert (snapshot.readings, snapshot.last_seen_ms) == (want.readings, want.last_seen_ms)
    assert snapshot.km_per_day == want.km_per_day
