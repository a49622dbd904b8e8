"""Each row builder of the PostgreSQL sink, alone: what rows a batch's outputs become."""

from __future__ import annotations

import json

from storage.writers.alerts import AlertRows
from storage.writers.anomalies import AnomalyRows
from storage.writers.dead_letters import DeadLetterRows
from storage.writers.marks import RecheckQueue, RollupMarks
from storage.writers.registry import EventRows, RegistryRows, SnapshotRows
from storage.writers.telemetry import TelemetryRows
from twin.alerts.records import AlertTransition
from twin.anomaly.records import Anomaly
from twin.clock import MS_PER_DAY, MS_PER_HOUR, ms_to_datetime
from twin.records import (
    DeadLetter,
    DeviceEvent,
    DeviceRecord,
    Reading,
    Reason,
    Snapshot,
    TwinOutput,
)

T0 = 1_763_683_200_000  # 2025-11-21T00:00:00Z: a fixed clock, never the wall's


def output(device: str = "d1", **fields: object) -> TwinOutput:
    base: dict[str, object] = {"readings": [], "dead_letters": [], "events": [], "live": None}
    return TwinOutput(device_id=device, **{**base, **fields})  # type: ignore[arg-type]


def test_telemetry_lines_escape_backslashes_and_mark_a_missing_seq() -> None:
    rows = TelemetryRows(known_days=set())
    r1 = Reading("d1", T0, {"x": 1.5}, T0 + 5, seq=7)
    r2 = Reading("d1", T0 + MS_PER_DAY, {"note\\": 2.0}, T0 + 6)
    rows.add(output(readings=[r1, r2]), last=True)
    assert rows.lines[0] == b'd1\t%d\t7\t{"x":1.5}\t%d\n' % (T0, T0 + 5)
    assert rows.lines[1] == b'd1\t%d\t-1\t{"note\\\\\\\\":2.0}\t%d\n' % (T0 + MS_PER_DAY, T0 + 6)
    assert rows.days == {T0 // MS_PER_DAY, T0 // MS_PER_DAY + 1}


def test_known_partition_days_are_shared_only_once_committed() -> None:
    known: set[int] = set()
    rows = TelemetryRows(known)
    rows.add(output(readings=[Reading("d1", T0, {"x": 1.0}, T0)]), last=True)
    assert known == set()
    rows.committed()
    assert known == {T0 // MS_PER_DAY}


def test_dead_letters_keep_payload_bytes_and_replace_nul_in_text() -> None:
    extra = DeadLetter(T0, "devices/x\x00/telemetry", Reason.BAD_TOPIC, "nul", b"\x00\xff")
    rows = DeadLetterRows([extra])
    inner = DeadLetter(T0, "devices/d1/telemetry", Reason.OUT_OF_RANGE, "rpm", b"{}", "d1")
    rows.add(output(dead_letters=[inner]), last=True)
    assert rows.rows[0] == (ms_to_datetime(T0), "devices/x\ufffd/telemetry", None, "bad_topic",
                            "nul", b"\x00\xff")  # fmt: skip
    assert rows.rows[1][2:4] == ("d1", "out_of_range")


def test_a_service_event_is_also_a_service_record() -> None:
    rows = EventRows()
    service = DeviceEvent("d1", T0, "service", {"parts_replaced": ["BRK-PAD-F"]}, T0)
    dtc = DeviceEvent("d1", T0, "dtc", {"code": "P0217"}, T0)
    rows.add(output(events=[service, dtc]), last=True)
    assert [r[2] for r in rows.rows] == ["service", "dtc"]
    assert len(rows.services) == 1 and "BRK-PAD-F" in json.dumps(rows.services[0], default=str)


def test_registry_rows_carry_attributes_as_json() -> None:
    rows = RegistryRows()
    reg = DeviceRecord("d1", "vehicle", "passenger_car", {"vin": "X"}, T0, T0 + 1)
    rows.add(output(registry=reg), last=True)
    assert rows.rows == [("d1", "vehicle", "passenger_car", '{"vin":"X"}', ms_to_datetime(T0),
                          ms_to_datetime(T0 + 1))]  # fmt: skip


def test_a_snapshot_is_written_only_with_its_twins_last_output() -> None:
    rows = SnapshotRows()
    snap = Snapshot("d1", T0 + 10, T0 + 5, b"{}")
    rows.add(output(snapshot=snap), last=False)
    assert rows.rows == []
    rows.add(output(snapshot=snap), last=True)
    assert rows.rows == [("d1", ms_to_datetime(T0 + 10), ms_to_datetime(T0 + 5), 1, "{}")]
    assert rows.touches == [(ms_to_datetime(T0 + 5), "d1")]


def test_an_open_episode_has_no_end() -> None:
    rows = AnomalyRows()
    a = Anomaly(device_id="d1", detector="level", kind="spike", metric="rpm",
                severity="major", score=9.0, started_ms=T0)  # fmt: skip
    rows.add(output(anomalies=[a]), last=True)
    assert rows.rows[0]["ended_at"] is None and rows.rows[0]["started_at"] == ms_to_datetime(T0)


def _transition(kind: str) -> AlertTransition:
    return AlertTransition(
        alert_id="a1",
        device_id="d1",
        rule_id="r1",
        rule_type="threshold",
        transition=kind,
        severity="major",
        peak_severity="critical",
        occurrences=2,
        first_seen_ms=T0,
        last_seen_ms=T0 + 9,
        at_ms=T0 + 9,
    )


def test_alerts_owe_notifications_only_for_the_transitions_people_hear_of() -> None:
    rows = AlertRows()
    rows.add(output(alerts=[_transition("opened"), _transition("retriggered")]), last=True)
    rows.add(output(alerts=[_transition("resolved")]), last=True)
    assert [a["status"] for a in rows.alerts] == ["new", "new", "resolved"]
    assert rows.alerts[2]["resolved_by"] == "engine"
    assert [n["transition"] for n in rows.outbox] == ["opened", "resolved"]
    assert json.loads(rows.outbox[0]["payload"])["peak_severity"] == "critical"
    assert [t[2] for t in rows.timeline] == ["opened", "retriggered", "resolved"]


def test_late_readings_mark_their_hour_by_the_clock_given() -> None:
    now = T0 + 3 * MS_PER_HOUR + 30 * 60_000  # 03:30
    marks = RollupMarks(now)
    on_time = Reading("d1", T0 + 3 * MS_PER_HOUR + 60_000, {"x": 1.0}, now)
    late = Reading("d1", T0 + MS_PER_HOUR + 5, {"x": 1.0}, now)
    marks.add(output(readings=[on_time, late]), last=True)
    assert marks.hours == {("d1", T0 + MS_PER_HOUR)}


def test_rechecks_are_queued_per_twin_that_asks() -> None:
    queue = RecheckQueue()
    queue.add(output("d1", recheck=True), last=True)
    queue.add(output("d2"), last=True)
    assert queue.devices == ["d1"]
