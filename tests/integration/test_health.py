"""Liveness and readiness on the metrics port, against a private PostgreSQL that goes away."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

from storage.embedded import EmbeddedPostgres, free_port
from tests.conftest import EngineProcess, fresh_database
from tests.integration.helpers import wait_until


def get(port: int, path: str) -> tuple[int, dict | str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            body = response.read().decode()
            status = response.status
    except urllib.error.HTTPError as exc:
        body, status = exc.read().decode(), exc.code
    return status, json.loads(body) if path != "/metrics" else body


def test_readyz_follows_postgres_and_healthz_stays_alive(
    tmp_path: Path, engine_env: dict[str, str]
):
    server = EmbeddedPostgres(tmp_path / "pg")
    admin = server.start()
    port = free_port()
    try:
        with fresh_database(admin) as db:
            env = dict(engine_env, TWIN_DATABASE_URL=db, TWIN_METRICS_PORT=str(port))
            engine = EngineProcess(env).start()
            ready = wait_until(lambda: get(port, "/readyz")[0] == 200, 20)
            assert ready, (get(port, "/readyz"), engine.log)
            assert get(port, "/readyz")[1] == {
                "ready": True, "postgres": True, "redis": True, "mqtt": True, "ingesting": True,
            }  # fmt: skip
            assert "twin_messages_received_total" in str(get(port, "/metrics")[1])

            server.stop()
            down = wait_until(lambda: get(port, "/readyz")[0] == 503, 20)
            assert down, engine.log
            status, body = get(port, "/readyz")
            assert status == 503 and isinstance(body, dict)
            assert body["postgres"] is False and body["ready"] is False
            assert get(port, "/healthz") == (200, {"status": "alive"})  # alive, not ready

            server.start()
            assert wait_until(lambda: get(port, "/readyz")[0] == 200, 30), engine.log
            assert engine.stop() == 0
    finally:
        server.stop()


def test_json_logs_are_one_object_per_line(engine_env: dict[str, str]):
    engine = EngineProcess(dict(engine_env, TWIN_LOG_FORMAT="json")).start()
    assert engine.stop() == 0
    ours = [json.loads(line) for line in engine.lines if line.startswith("{")]
    assert ours and all(set(e) >= {"ts", "level", "logger", "message"} for e in ours)
    messages = [e["message"] for e in ours]
    assert any(m.startswith("engine running") for m in messages), engine.log
    assert any(m == "engine stopped" for m in messages), engine.log
    assert all(e["ts"].endswith("+00:00") for e in ours)
