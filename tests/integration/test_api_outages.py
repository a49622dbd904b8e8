"""A store that does not answer: the API says 503 with Retry-After, as a problem document, and
never hangs or fails with a 500."""

from __future__ import annotations

import time

import httpx

from api.config import ApiConfig
from api.server import ApiThread
from tests.integration.api_fleet import Fleet, auth, free_port, problem


def serve(config: ApiConfig) -> tuple[ApiThread, httpx.Client]:
    server = ApiThread(config, "127.0.0.1", 0).start()
    assert server.started
    return server, httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=20)


def test_redis_gone_makes_live_reads_503(database_url: str, fleet: Fleet, fleet_prefix: str):
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    server, http = serve(ApiConfig(database_url, dead, fleet_prefix))
    try:
        viewer = auth(fleet, "viewer")
        body = problem(http.get(f"/api/v1/twins/{fleet.cool}", headers=viewer), 503)
        assert "try again" in body["detail"]
        assert http.get(f"/api/v1/twins/{fleet.cool}", headers=viewer).headers["retry-after"]
        problem(http.get("/api/v1/fleet/summary", headers=viewer), 503)
        at = "2025-11-20T10:03:10Z"  # the past comes from PostgreSQL alone
        assert http.get(f"/api/v1/twins/{fleet.cool}?at={at}", headers=viewer).status_code == 200
    finally:
        http.close()
        server.stop()


def test_postgresql_gone_makes_every_keyed_route_503_within_the_pool_timeout(
    redis_url: str, fleet: Fleet, fleet_prefix: str
):
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/test"
    server, http = serve(ApiConfig(dead, redis_url, fleet_prefix))
    try:
        assert http.get("/healthz").status_code == 200
        started = time.monotonic()
        problem(http.get("/api/v1/devices", headers=auth(fleet, "viewer")), 503)
        assert time.monotonic() - started < 15
    finally:
        http.close()
        server.stop()
