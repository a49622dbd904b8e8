"""Live push: twin updates and alert transitions as Server-Sent Events, resumable."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from types import SimpleNamespace

import httpx

from api.config import ApiConfig
from api.routes import stream
from api.stores import Stores
from tests.integration.api_fleet import Fleet, auth, change, problem


def events(response: httpx.Response) -> Iterator[dict]:
    """The events of an SSE response as they arrive (comments and retry lines skipped)."""
    event: dict = {}
    for line in response.iter_lines():
        if not line:
            if "event" in event:
                yield event
            event = {}
        elif line.startswith(("id: ", "event: ")):
            name, _, value = line.partition(": ")
            event[name] = value
        elif line.startswith("data: "):
            event["data"] = json.loads(line[6:])


def next_of(stream: Iterator[dict], kind: str, **match: object) -> dict:
    for event in stream:
        if event["event"] == kind and all(event["data"].get(k) == v for k, v in match.items()):
            return event
    raise AssertionError(f"the stream ended before a {kind} event")


def test_twin_updates_and_alerts_arrive_and_resume(
    client: httpx.Client, fleet: Fleet, redis_url: str, fleet_prefix: str
):
    viewer = auth(fleet, "viewer")
    url = f"/api/v1/stream?devices={fleet.cool},{fleet.hot}&rate=10"
    with client.stream("GET", url, headers=viewer) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = events(response)
        first = {next_of(stream, "twin")["data"]["device_id"] for _ in range(2)}
        assert first == {fleet.cool, fleet.hot}  # each device's state as it is, first
        change(redis_url, fleet_prefix, fleet, 77.5, f"{fleet.run}-a1")
        written = time.monotonic()
        alert = next_of(stream, "alert", alert_id=f"{fleet.run}-a1")
        twin = next_of(stream, "twin", device_id=fleet.cool)
        took = time.monotonic() - written
    assert twin["data"]["speed_kmh"] == 77.5 and alert["data"]["transition"] == "opened"
    assert took < 5, f"the change took {took:.1f} s to arrive"
    seen = alert["id"]
    change(redis_url, fleet_prefix, fleet, 78.0, f"{fleet.run}-a2")
    resumed = {**viewer, "Last-Event-ID": seen}
    with client.stream("GET", url, headers=resumed) as response:
        again = next_of(events(response), "alert")
    assert again["data"]["alert_id"] == f"{fleet.run}-a2"
    assert [int(p) for p in again["id"].split("-")] > [int(p) for p in seen.split("-")]


def test_fleet_stream_sends_summaries(client: httpx.Client, fleet: Fleet):
    with client.stream("GET", "/api/v1/stream?devices=fleet", headers=auth(fleet, "viewer")) as r:
        summary = next_of(events(r), "summary")
    assert summary["data"]["by_status"].get("online", 0) >= 2


def test_stream_inputs_are_checked(client: httpx.Client, fleet: Fleet):
    viewer = auth(fleet, "viewer")
    problem(client.get("/api/v1/stream?devices=bad%20id", headers=viewer), 400)
    problem(client.get("/api/v1/stream?devices=" + ",".join(["d"] * 101), headers=viewer), 400)
    problem(client.get(f"/api/v1/stream?devices={fleet.cool}&rate=0", headers=viewer), 422)
    problem(client.get("/api/v1/stream", headers=viewer), 422)
    bad_resume = {**viewer, "Last-Event-ID": "yesterday"}
    problem(client.get(f"/api/v1/stream?devices={fleet.cool}", headers=bad_resume), 400)
    problem(client.get(f"/api/v1/stream?devices={fleet.cool}"), 401)


class _Connected:
    """What the event generator asks of its request: the app's stores, and whether the
    client went away (never, here: the client is only slow)."""

    def __init__(self, stores: Stores) -> None:
        self.app = SimpleNamespace(state=SimpleNamespace(stores=stores))

    async def is_disconnected(self) -> bool:
        return False


def test_a_client_that_stops_taking_events_is_dropped(
    fleet: Fleet, redis_url: str, fleet_prefix: str, database_url: str, monkeypatch
):
    monkeypatch.setattr(stream, "SLOW_CLIENT_S", 0.2)
    stores = Stores(ApiConfig(database_url, redis_url, fleet_prefix))
    watch = stream.Watch(stores, [fleet.cool], 10.0, "0-0")  # every stored alert: plenty
    request = _Connected(stores)

    async def consume() -> tuple[int, bool]:
        taken = 0
        async for _ in stream._events(request, watch):  # type: ignore[arg-type]
            taken += 1
            await asyncio.sleep(0.3)  # the client's socket is full: each send waits
        return taken, stores.streams == 0

    taken, closed = asyncio.run(asyncio.wait_for(consume(), timeout=20))
    assert taken == 2 and closed  # the retry line, one event, then it was cut off
    stores.close()


def test_twin_updates_are_coalesced_to_the_rate(
    fleet: Fleet, redis_url: str, fleet_prefix: str, database_url: str, monkeypatch
):
    clock = [1_000.0]
    monkeypatch.setattr(stream.time, "monotonic", lambda: clock[0])
    stores = Stores(ApiConfig(database_url, redis_url, fleet_prefix))
    watch = stream.Watch(stores, [fleet.cool], 1.0, "0-0")  # one update per second at most

    def write(speed: float, later_ms: int) -> None:
        change(redis_url, fleet_prefix, fleet, speed, f"{fleet.run}-c{later_ms}", later_ms)

    async def speeds() -> list[float]:
        return [json.loads(e.split(b"data: ")[1])["speed_kmh"] for e in await watch.twins()]

    async def run() -> list[list[float]]:
        seen = []
        write(60.0, 10_000)
        seen.append(await speeds())
        write(61.0, 10_100)
        write(62.0, 10_200)
        clock[0] += 0.5
        seen.append(await speeds())  # held back: the device was sent half a second ago
        clock[0] += 0.5
        seen.append(await speeds())  # the newest state only
        seen.append(await speeds())  # nothing new
        await watch.close()
        return seen

    assert asyncio.run(run()) == [[60.0], [], [62.0], []]
    stores.close()
