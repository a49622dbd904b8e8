"""The API while the engine ingests (prints figures).

One engine with everything on ingests 5,000 single-reading messages/s from 5,000 devices
(each at 1 Hz, stamped with its planned time) through a private Mosquitto. Meanwhile a client
asks ``GET /api/v1/twins/{id}`` of random devices at 200 requests/s, each sent at its planned
time (open loop: a slow answer does not delay the next request), and a live-push stream
watches 20 devices. Figures:

* the answer time of each request, from send to the whole body received;
* stream delay: when a twin event arrived, minus ``ingested_at`` of the reading it shows (the
  transaction's start, a little before its commit: an upper bound on commit → client).

Served two ways: by ``twin run`` (its API process, the default), and by ``twin api`` started
apart beside an engine with ``TWIN_API=off``. Client, publisher, broker, PostgreSQL and
engine share the machine's two cores.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import time

import httpx
import psycopg
import pytest

from storage import api_keys
from storage.database import connect, psycopg_url
from storage.embedded import free_port
from tests.bench.test_throughput import bench_env, rss_mib, wait_for_rows
from tests.conftest import ROOT, EngineProcess, fresh_database

pytestmark = pytest.mark.bench

DEVICES = 5_000
RATE = 5_000
SECONDS = 45
REQUESTS_S = 200
LOAD_S = 25
WATCHED = 20


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] if ordered else float("nan")


def ms(values: list[float]) -> str:
    return " / ".join(f"{pct(values, p) * 1000:.1f}" for p in (0.5, 0.95, 0.99, 1.0))


class _Connections:
    """Keep-alive HTTP/1.1 connections with requests written and answers parsed by hand: an
    HTTP client library costs about 2.5 ms of CPU per request here, which at 200 requests/s
    is a quarter of the machine taken from the server being measured."""

    def __init__(self, port: int, key: str) -> None:
        self.port, self.key = port, key
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def get(self, path: str) -> tuple[int, bytes]:
        """As clients do: a kept-alive connection the server has closed meanwhile (after its
        keep-alive timeout) is replaced and the request sent again."""
        while self.idle:
            try:
                return await self._exchange(*self.idle.pop(), path)
            except (OSError, asyncio.IncompleteReadError):
                continue
        return await self._exchange(*await asyncio.open_connection("127.0.0.1", self.port), path)

    async def _exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str
    ) -> tuple[int, bytes]:
        auth = f"Authorization: Bearer {self.key}"
        writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n{auth}\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        body = await reader.readexactly(length)
        self.idle.append((reader, writer))
        return status, body

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()


async def _ask(http: _Connections, at: float, answers: list[float], errors: list[str]):
    await asyncio.sleep(max(0.0, at - time.monotonic()))
    device = f"bench-{random.randrange(DEVICES):05d}"
    sent = time.monotonic()
    try:
        status, _ = await http.get(f"/api/v1/twins/{device}")
    except (OSError, asyncio.IncompleteReadError) as exc:
        errors.append(type(exc).__name__)
        return
    answers.append(time.monotonic() - sent)
    if status != 200:
        errors.append(str(status))


async def _watch(http: httpx.AsyncClient, until: float, seen: list[tuple[str, int, float]]):
    devices = ",".join(f"bench-{k:05d}" for k in range(0, DEVICES, DEVICES // WATCHED))
    first: set[str] = set()
    async with http.stream("GET", f"/api/v1/stream?devices={devices}&rate=10") as response:
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                body = json.loads(line[6:])
                if "last_seen_ms" in body:
                    device = body["device_id"]
                    if device in first:  # the first event is the state as it was
                        seen.append((device, int(body["last_seen_ms"]), time.time()))
                    first.add(device)
            if time.monotonic() > until:
                return


async def _load(base: str, key: str) -> tuple[list[float], list[str], list[tuple]]:
    answers: list[float] = []
    errors: list[str] = []
    seen: list[tuple[str, int, float]] = []
    http = _Connections(int(base.rsplit(":", 1)[1]), key)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=10) as stream:
        start = time.monotonic() + 0.5
        watch = asyncio.create_task(_watch(stream, start + LOAD_S, seen))
        asks = [
            _ask(http, start + i / REQUESTS_S, answers, errors) for i in range(LOAD_S * REQUESTS_S)
        ]
        await asyncio.gather(*asks)
        await watch
    http.close()
    return answers, errors, seen


def _stream_delays(db: str, seen: list[tuple[str, int, float]]) -> list[float]:
    with psycopg.connect(psycopg_url(db), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT device_id, round(extract(epoch FROM ts) * 1000)::bigint, "
            "extract(epoch FROM ingested_at)::float8 FROM telemetry WHERE device_id = ANY(%s)",
            (sorted({s[0] for s in seen}),),
        ).fetchall()
    ingested = {(d, ts): at for d, ts, at in rows}
    return [got - ingested[(d, ts)] for d, ts, got in seen if (d, ts) in ingested]


def rows(db: str) -> int:
    with psycopg.connect(psycopg_url(db), autocommit=True) as conn:
        return int(conn.execute("SELECT count(*) FROM telemetry").fetchone()[0])


def _wait_for_twins(base: str, key: str) -> None:
    deadline = time.monotonic() + 60
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as http:
        while time.monotonic() < deadline:
            try:
                if http.get(f"/api/v1/twins/bench-{DEVICES - 1:05d}").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
    raise AssertionError("the twins never appeared")


@pytest.mark.parametrize("where", ["twin-run", "twin-api"])
def test_twin_reads_and_live_push_while_ingesting(deep_broker, pg_admin_url, engine_env, where):
    port, prefix, api_port = deep_broker, engine_env["TWIN_TOPIC_PREFIX"], free_port()
    with fresh_database(pg_admin_url) as db:
        env = bench_env(
            engine_env, db, port, TWIN_API="on" if where == "twin-run" else "off",
            TWIN_API_HOST="127.0.0.1", TWIN_API_PORT=str(api_port),
        )  # fmt: skip
        engine = EngineProcess(env).start()
        api = None
        if where == "twin-api":
            api = subprocess.Popen([sys.executable, "-m", "flows.cli", "api"], env=env, cwd=ROOT)
        with connect(db) as conn:
            _, key = api_keys.create(conn, "bench", "viewer")
        args = [str(port), prefix, str(DEVICES), str(RATE * SECONDS), "1", str(RATE)]
        publisher = subprocess.Popen(
            [sys.executable, "-m", "tests.bench.blast", *args],
            cwd=ROOT, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        base = f"http://127.0.0.1:{api_port}"
        _wait_for_twins(base, key)
        time.sleep(3)  # past the first seconds, when every twin is new
        committed = rows(db)
        began = time.monotonic()
        answers, errors, seen = asyncio.run(_load(base, key))
        ingest = (rows(db) - committed) / (time.monotonic() - began)
        published = json.loads(publisher.communicate(timeout=120)[0])
        count, _ = wait_for_rows(db, RATE * SECONDS)
        rss = rss_mib(engine)
        if api is not None:
            api.terminate()
            api.wait(30)
        code = engine.stop()
        delays = _stream_delays(db, seen)
    print(
        f"\n[bench api {where}] GET /api/v1/twins/{{id}} at {REQUESTS_S} requests/s for "
        f"{LOAD_S} s while the engine committed {ingest:.0f} readings/s ({RATE}/s offered to "
        f"{DEVICES} devices; publisher at most {published['most_behind_plan_s'] * 1000:.0f} ms "
        f"behind plan): {len(answers)} answers, {len(errors)} errors {sorted(set(errors))}; "
        f"answer p50 / p95 / p99 / max {ms(answers)} ms; stream: {len(delays)} twin updates "
        f"of {WATCHED} devices, commit → client p50 / p95 / p99 / max {ms(delays)} ms; engine "
        f"RSS {rss:.0f} MiB; {count} rows; exit {code}"
    )
    assert not errors and count == RATE * SECONDS
