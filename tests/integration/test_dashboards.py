"""The shipped Grafana dashboards: every PromQL expression names metrics the engine or the
simulators export and parses; every SQL query runs against the migrated schema and finds the
rows it is meant to show."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import psycopg
import pytest
import yaml
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

from storage.database import migrate, psycopg_url
from storage.pg_writer import PgWriter
from tests.conftest import ROOT, fresh_database
from twin.records import Reading, TwinOutput

GRAFANA = ROOT / "monitoring" / "grafana"
DASHBOARDS = {"twin-engine", "twin-fleet", "twin-device", "twin-maintenance"}
DEVICE = "dash-veh-1"
METRICS = ("engine_temp", "speed")


def dashboards() -> dict[str, dict[str, Any]]:
    found = {}
    for path in sorted((GRAFANA / "dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        found[board["uid"]] = board
    return found


def queries(board: dict[str, Any], kind: str) -> Iterator[tuple[str, str, str]]:
    """(where, query, format) of every query of a data source type in a dashboard: panel
    targets, template variables and annotations."""
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            if target["datasource"]["uid"] == kind:
                text = target.get("expr") if kind == "prometheus" else target.get("rawSql")
                yield panel["title"], text, target.get("format", "")
    for var in board["templating"]["list"]:
        if var.get("datasource", {}).get("uid") == kind:
            query = var["query"]
            yield f"${var['name']}", query["query"] if isinstance(query, dict) else query, "table"
    for note in board["annotations"]["list"]:
        if note.get("datasource", {}).get("uid") == kind:
            yield f"annotation {note['name']}", note["target"]["rawSql"], "table"


def exported_names() -> set[str]:
    """Every series name the engine and the simulators can export, sampled yet or not."""
    import flows.runtime.metrics  # noqa: F401  (registers the engine's metrics)
    from simulators.metrics import PublishMetrics

    text = generate_latest(REGISTRY).decode()
    text += generate_latest(PublishMetrics(CollectorRegistry()).registry).decode()
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"),
                "gauge": ("",)}  # fmt: skip
    names = {"up"}  # Prometheus's own, per target
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split()
            names |= {family} | {family + suffix for suffix in suffixes.get(kind, ())}
    return names


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\b((?:twin|process)_[a-z0-9_]+|up(?=\{))", expr))


def overlapping(panels: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Pairs of panels sharing a cell of Grafana's 24-column grid, or past its right edge."""
    owner: dict[tuple[int, int], str] = {}
    clashes = []
    for panel in panels:
        g = panel["gridPos"]
        if g["x"] + g["w"] > 24:
            clashes.append((panel["title"], "the right edge"))
        for cell in itertools.product(
            range(g["x"], g["x"] + g["w"]), range(g["y"], g["y"] + g["h"])
        ):
            if cell in owner:
                clashes.append((panel["title"], owner[cell]))
                break
            owner[cell] = panel["title"]
    return clashes


def test_four_dashboards_provisioned_from_the_mounted_folder():
    boards = dashboards()
    assert set(boards) == DASHBOARDS
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/dashboards.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    compose = (ROOT / "docker-compose.yml").read_text()
    assert f"./monitoring/grafana/dashboards:{path}:ro" in compose
    sources = yaml.safe_load((GRAFANA / "provisioning/datasources/datasources.yml").read_text())
    uids = {s["uid"]: s["type"] for s in sources["datasources"]}
    for uid, board in boards.items():
        panels = [p for p in board["panels"] if p["type"] != "row"]
        assert len(panels) >= 8, uid
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), uid
        for panel in panels:
            assert uids[panel["datasource"]["uid"]] == panel["datasource"]["type"], panel["title"]
            assert panel["targets"], panel["title"]
        assert not overlapping(board["panels"]), uid
    links = json.dumps(boards["twin-fleet"]) + json.dumps(boards["twin-maintenance"])
    assert "/d/twin-device/" in links  # worst devices and urgent parts open the Device board


def test_every_promql_expression_names_exported_metrics():
    exported = exported_names()
    rules = yaml.safe_load((ROOT / "monitoring" / "alerts.yml").read_text())
    expressions = [(f"rule {r['alert']}", r["expr"]) for g in rules["groups"] for r in g["rules"]]
    for board in dashboards().values():
        expressions += [(where, expr) for where, expr, _ in queries(board, "prometheus")]
    assert len(expressions) > 40
    for where, expr in expressions:
        names = metric_names(expr)
        assert names, f"{where}: {expr}"
        assert names <= exported, f"{where}: {sorted(names - exported)} not exported"


def promql_for_promtool(expr: str) -> str:
    return (
        expr.replace("$__rate_interval", "1m")
        .replace("$__interval", "1m")
        .replace("$instance", ".*")
    )


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_every_dashboard_expression_parses(tmp_path: Path):
    rules = []
    for board in dashboards().values():
        for i, (where, expr, _) in enumerate(queries(board, "prometheus")):
            if expr.startswith("label_values("):
                continue  # a Grafana function, not PromQL
            assert "$" not in promql_for_promtool(expr), f"{where}: unknown variable in {expr}"
            rules.append({"record": f"dashboard:{board['uid'].replace('-', '_')}_{i}",
                          "expr": promql_for_promtool(expr)})  # fmt: skip
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    done = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules)} rules found" in done.stdout


def expand(sql: str, now: datetime) -> str:
    """Grafana's PostgreSQL macros and this board's variables, as Grafana expands them, for a
    dashboard time range of the six hours before ``now``."""
    stamp = "'{}'".format
    start, end = now - timedelta(hours=6), now + timedelta(minutes=1)
    sql = re.sub(
        r"\$__timeGroupAlias\(([^,]+),\s*\$__interval\)",
        r'floor(extract(epoch from \1)/60)*60 AS "time"',
        sql,
    )
    sql = re.sub(
        r"\$__timeFilter\(([^)]+)\)",
        lambda m: f"{m[1]} BETWEEN {stamp(start.isoformat())} AND {stamp(end.isoformat())}",
        sql,
    )
    sql = sql.replace("$__timeFrom()", stamp(start.isoformat()))
    sql = sql.replace("$__timeTo()", stamp(end.isoformat()))
    sql = sql.replace("$device", DEVICE).replace("$metric", ",".join(map(stamp, METRICS)))
    assert "$" not in sql, f"a macro or variable this test does not know: {sql}"
    return sql


class Seeded(NamedTuple):
    url: str
    now: datetime
    """The database's clock when the rows were seeded: the queries' ``now()`` and the dashboard
    time range both count from it, so the test does not depend on when it runs."""


@pytest.fixture(scope="module")
def seeded(pg_admin_url: str) -> Iterator[Seeded]:
    """A migrated database holding one of everything the dashboards show, for one device."""
    with fresh_database(pg_admin_url) as url:
        migrate(url)
        with psycopg.connect(psycopg_url(url)) as conn:
            now = conn.execute("SELECT date_trunc('second', now())").fetchone()[0]
        arrival = int(now.timestamp() * 1000)
        readings = [
            Reading(DEVICE, arrival - (60 - i) * 60_000,
                    {"engine_temp": 85.0 + i % 7, "speed": 40.0 + i}, arrival, seq=i)
            for i in range(60)
        ]  # fmt: skip
        PgWriter(url).write(
            [TwinOutput(device_id=DEVICE, readings=readings, dead_letters=[], events=[], live=None)]
        )
        hour, recent = now - timedelta(hours=2), now - timedelta(minutes=30)
        with psycopg.connect(psycopg_url(url)) as conn:
            statements = [
                ("INSERT INTO devices (device_id, kind, profile, first_seen, last_seen) "
                 "VALUES (%s, 'vehicle', 'passenger_car', %s, %s)",
                 (DEVICE, hour, now - timedelta(minutes=10))),
                ("INSERT INTO device_events (device_id, ts, type, body, received_at) "
                 "VALUES (%s, %s, 'service', '{\"parts\": [\"BRK-PAD-F\"]}', %s)",
                 (DEVICE, recent, recent)),
                ("INSERT INTO anomalies (device_id, detector, metric, started_at, ended_at, kind, "
                 "severity, score, expected, observed, model_version) VALUES "
                 "(%s, 'hst', 'engine_temp', %s, %s, 'spike', 'critical', 7.5, 88, 120, 'fleet-x')",
                 (DEVICE, recent, recent + timedelta(minutes=2))),
                ("INSERT INTO anomalies (device_id, detector, metric, started_at, kind, severity, "
                 "score, expected, observed, model_version, explanation) VALUES (%s, 'relation', "
                 "'flow+power', %s, 'relation', 'warning', 0.7, 118.5, 96.25, 'fleet-x', "
                 "'[{\"metric\": \"flow\", \"expected\": 118.5, \"observed\": 96.25}, "
                 "{\"metric\": \"power\", \"expected\": 36.5, \"observed\": 44.1}]')",
                 (DEVICE, recent)),
                ("INSERT INTO alerts (id, device_id, rule_id, rule_type, status, severity, "
                 "peak_severity, first_seen, last_seen, detail) VALUES "
                 "('a1', %s, 'engine-overheat', 'threshold', 'new', 'major', 'major', %s, %s, "
                 "'engine_temp 120 > 110')", (DEVICE, recent, recent)),
                ("INSERT INTO telemetry_hourly (device_id, bucket, metric, n, mean, min, max, sum) "
                 "VALUES (%s, %s, 'engine_temp', 60, 88, 85, 91, 5280)", (DEVICE, hour)),
                ("INSERT INTO performance_metrics (device_id, window_start, window_end, "
                 "readings, uptime_pct, anomaly_count, efficiency_rating) "
                 "VALUES (%s, %s, %s, 15, 100, 1, 92)",
                 (DEVICE, hour, hour + timedelta(minutes=15))),
                ("INSERT INTO service_history (device_id, at, parts_replaced) "
                 "VALUES (%s, %s, '{BRK-PAD-F}')", (DEVICE, recent)),
            ]  # fmt: skip
            for sql, args in statements:
                conn.execute(sql, args)
            today = now.date()
            recommended = [("BRK-PAD-F", "open", today - timedelta(days=2)),
                           ("OIL-ENG", "accepted", today + timedelta(days=9))]  # fmt: skip
            for part, status, due in recommended:
                rec = conn.execute(
                    "INSERT INTO part_recommendations (device_id, part, name, category, rank, "
                    "base_confidence, final_confidence, wear, due, due_in_days, cost, critical, "
                    "stock, reorder, reasoning, model_version, status) VALUES (%s, %s, %s, "
                    "'brakes', 1, 80, 90, 1.1, %s, -2, 45, true, 'out', true, '[]', 'rec-1', %s) "
                    "RETURNING id",
                    (DEVICE, part, part.lower(), due, status),
                ).fetchone()
                assert rec is not None
                if status == "accepted":
                    conn.execute(
                        "INSERT INTO recommendation_feedback (recommendation_id, device_id, part, "
                        "feedback, by, actual_cost, at) VALUES (%s, %s, %s, 'accepted', 'ops', "
                        "50, %s)",
                        (rec[0], DEVICE, part, recent),
                    )
            conn.commit()
        yield Seeded(url, now)


def test_every_sql_query_runs_and_finds_its_rows(seeded: Seeded):
    checked = 0
    with psycopg.connect(psycopg_url(seeded.url)) as conn:
        conn.execute("SET statement_timeout = '10s'")
        for uid, board in dashboards().items():
            for where, sql, fmt in queries(board, "postgres"):
                with conn.transaction(force_rollback=True):
                    conn.execute("SET TRANSACTION READ ONLY")
                    try:
                        cursor = conn.execute(expand(sql, seeded.now))  # type: ignore[call-overload]
                    except psycopg.Error as exc:
                        pytest.fail(f"{uid} / {where}: {exc}\n{sql}")
                    columns = [c.name for c in cursor.description or []]
                    rows = cursor.fetchall()
                assert rows, f"{uid} / {where}: no rows from the seeded data\n{sql}"
                if fmt == "time_series":
                    assert columns[0] == "time", f"{uid} / {where}: first column {columns[0]}"
                    assert all(r[0] is not None for r in rows), f"{uid} / {where}"
                checked += 1
    assert checked >= 40


def test_the_device_anomaly_table_explains_a_relation(seeded: Seeded):
    board = dashboards()["twin-device"]
    sql = next(q for _, q, _ in queries(board, "postgres") if "AS explanation" in q)
    sql = sql.replace("$device", DEVICE)
    with psycopg.connect(psycopg_url(seeded.url)) as conn:
        cursor = conn.execute(expand(sql, seeded.now))  # type: ignore[call-overload]
        columns = [c.name for c in cursor.description or []]
        rows = [dict(zip(columns, r, strict=True)) for r in cursor.fetchall()]
    by = {r["detector"]: r["explanation"] for r in rows}
    assert by == {"relation": "flow 118.5 → 96.25; power 36.5 → 44.1", "hst": None}


def test_metric_variable_offers_the_devices_metrics(seeded: Seeded):
    board = dashboards()["twin-device"]
    (query,) = [q for w, q, _ in queries(board, "postgres") if w == "$metric"]
    with psycopg.connect(psycopg_url(seeded.url)) as conn:
        found = [r[0] for r in conn.execute(expand(query, seeded.now)).fetchall()]  # type: ignore[call-overload]
    assert found == sorted(METRICS)
