"""A small fleet written by the twin step and the real writers, for the API tests to read.

Three devices over ten minutes of device time from a fixed start: a car that overheats (an
alert, and with it a timeline), a healthy car in group ``north`` and a pump whose flow fell
behind its power for a minute (a relation anomaly, explained per metric). Their outputs go
through :class:`~storage.pg_writer.PgWriter` and :class:`~storage.live_store.LiveStore`, as the
engine's sinks write them.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

import httpx
import psycopg

from storage import api_keys
from storage.database import psycopg_url
from storage.live_store import LiveStore
from storage.pg_writer import PgWriter
from twin.alerts.book import RuleBook
from twin.alerts.defaults import BUILTIN_RULES
from twin.alerts.lifecycle import AlertEngine
from twin.alerts.records import AlertTransition
from twin.anomaly.records import Anomaly, Explained
from twin.processor import TwinProcessor
from twin.profiles import ProfileBook
from twin.records import Attributes, DeviceInbox, Reading, TwinOutput

PROBLEM = "application/problem+json"
T0 = 1_763_632_800_000  # 2025-11-20T10:00:00Z
MINUTES = 10
HISTORY_S = 120.0
"""One history snapshot per two minutes: five per device."""


@dataclass
class Fleet:
    run: str
    hot: str
    cool: str
    pump: str
    keys: dict[str, str] = field(default_factory=dict)
    """Role → a key of that role."""

    @property
    def devices(self) -> list[str]:
        return [self.hot, self.cool, self.pump]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _inboxes(fleet: Fleet, second: int) -> list[DeviceInbox]:
    ts = T0 + second * 1000
    hot_c = 90.0 + min(30.0, second / 10)  # past 105 °C after 150 s, 120 °C from 300 s
    car = {"speed_kmh": 50.0, "rpm": 2000.0, "fuel_level_pct": 60.0, "battery_v": 13.8,
           "odometer_km": 1000 + second / 100, "lat": 52.5, "lon": 13.4}  # fmt: skip
    items = [
        (fleet.hot, {**car, "coolant_temp_c": hot_c}),
        (fleet.cool, {**car, "coolant_temp_c": 88.0, "lat": 52.6}),
        (fleet.pump, {"temperature_c": 55.0, "vibration_mm_s": 2.0, "load_pct": 70.0}),
    ]
    inboxes = []
    for device, values in items:
        inbound: list = [Reading(device, ts, values, ts, seq=second)]
        if second == 0:
            profile = "pump" if device == fleet.pump else "passenger_car"
            attrs = {"profile": profile, "model": f"model-{device[-3:]}"}
            if device == fleet.cool:
                attrs["group"] = "north"
            inbound.insert(0, Attributes(device, attrs, ts))
        inboxes.append(DeviceInbox(device, inbound, len(inbound)))
    return inboxes


def write_fleet(database_url: str, redis_url: str, redis_prefix: str, run: str) -> Fleet:
    fleet = Fleet(run, f"{run}-hot", f"{run}-cool", f"{run}-pump")
    profiles = ProfileBook()
    processor = TwinProcessor(profiles, alerts=AlertEngine(RuleBook(list(BUILTIN_RULES), profiles)))
    writer = PgWriter(database_url, history_interval_s=HISTORY_S)
    live = LiveStore(redis_url, prefix=redis_prefix, ttl_s=3600)
    states: dict[str, object] = {}
    for second in range(0, MINUTES * 60, 5):
        outputs = []
        for inbox in _inboxes(fleet, second):
            state, out = processor.process(
                states.get(inbox.device_id),
                inbox.device_id,
                inbox,
                T0 + second * 1000,  # type: ignore[arg-type]
            )
            states[inbox.device_id] = state
            outputs.append(out)
        writer.write(outputs)
        live.write(outputs)
    writer.write([TwinOutput(device_id=fleet.pump, readings=[], dead_letters=[], events=[],
                             live=None, anomalies=[pump_relation(fleet.pump)])])  # fmt: skip
    writer.write([processor.final(s, T0 + MINUTES * 60_000) for s in states.values()])  # type: ignore[arg-type]
    live.close()
    with psycopg.connect(psycopg_url(database_url)) as conn:
        for role in api_keys.ROLES:
            _, fleet.keys[role] = api_keys.create(conn, f"{run} {role}", role)
        conn.execute(
            "INSERT INTO part_recommendations (device_id, part, name, category, rank, "
            "base_confidence, final_confidence, wear, cost, critical, stock, reorder, reasoning, "
            "model_version) VALUES (%s, 'BRK-PAD-F', 'Front brake pads', 'brakes', 1, 70, 72, "
            "0.8, 120, true, 'in_stock', false, '[]', 'test')",
            (fleet.hot,),
        )
    return fleet


def pump_relation(pump: str) -> Anomaly:
    """What the relation layer reports for a pump whose flow fell behind its power."""
    why = (Explained("flow_rate_m3h", 118.5, 96.25), Explained("power_kw", 36.5, 44.1))
    return Anomaly(device_id=pump, detector="relation", kind="relation",
                   metric="flow_rate_m3h+power_kw", severity="warning", score=0.71,
                   started_ms=T0 + 400_000, ended_ms=T0 + 460_000, expected=118.5,
                   observed=96.25, explanation=why)  # fmt: skip


def auth(fleet: Fleet, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {fleet.keys[role]}"}


def problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status and body["detail"]
    return body


def change(
    redis_url: str, prefix: str, fleet: Fleet, speed: float, alert: str, later_ms: int = 0
) -> None:
    """What the engine's Redis sink writes for one batch: a new live view, a transition."""
    now = T0 + 3_600_000 + later_ms
    view = {"device_id": fleet.cool, "status": "online", "speed_kmh": speed, "updated_ms": now}
    moved = AlertTransition(
        alert_id=alert, device_id=fleet.cool, rule_id="battery-low", rule_type="threshold",
        transition="opened", severity="warning", peak_severity="warning", occurrences=1,
        first_seen_ms=now, last_seen_ms=now, at_ms=now,
    )  # fmt: skip
    out = TwinOutput(fleet.cool, [], [], [], live=view, alerts=[moved])
    store = LiveStore(redis_url, prefix=prefix, ttl_s=3600)
    store.write([out])
    store.close()
