"""``/stream``: live push as Server-Sent Events.

* ``twin`` events: the live fields of each watched device when they change, coalesced (at most
  ``rate`` per second per device: a device that changed five times within that time is sent
  once, as it is now); Redis is looked at every :data:`POLL_S`, so a change goes out within
  that time of its write unless the device's rate holds it back;
* ``alert`` events: every alert transition from the Redis stream the engine writes, each with
  the stream entry's id as its SSE id, so a client that reconnects with ``Last-Event-ID``
  carries on after the last transition it saw;
* ``summary`` events (``fleet``): devices by live status, every few seconds.

A client that does not take what it is sent is dropped: each event is produced only once the
previous one went out, and a client that keeps the stream waiting longer than
:data:`SLOW_CLIENT_S` is disconnected, so no client can make the server hold more than one
event for it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from api.auth import VIEWER
from api.problems import Problem
from api.stores import Stores
from storage.live_feed import LiveFeed
from twin.topics import DEVICE_ID_RE

router = APIRouter(tags=["stream"], dependencies=[VIEWER])

POLL_S = 0.05
SLOW_CLIENT_S = 10.0
PING_S = 15.0
SUMMARY_S = 5.0
MAX_DEVICES = 100
MAX_STREAMS = 200


def sse(event: str, data: Any, event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _devices(text: str) -> list[str] | None:
    """``fleet`` → None (everything); else the listed device ids."""
    if text == "fleet":
        return None
    names = [d for d in (p.strip() for p in text.split(",")) if d]
    bad = [d for d in names if DEVICE_ID_RE.fullmatch(d) is None]
    if bad or not names:
        raise Problem(400, f"devices: {(bad or [text])[0][:70]!r} is not a device id (or fleet)")
    if len(names) > MAX_DEVICES:
        raise Problem(400, f"devices: at most {MAX_DEVICES} per stream (or fleet)")
    return names


class Watch:
    """One client's stream: what it asked for and what it was last sent."""

    def __init__(self, stores: Stores, devices: list[str] | None, rate: float, after: str):
        assert stores.config.redis_url is not None
        self.feed = LiveFeed(stores.config.redis_url, stores.config.redis_prefix)
        self.stores, self.devices, self.gap = stores, devices, 1.0 / rate
        self.after = after
        self.sent: dict[str, int] = {}
        self.due: dict[str, float] = {}
        """When each device may be sent again (its rate)."""

    async def start_id(self) -> str:
        """Where the alert stream is now: a client that did not say starts from here."""
        return await self.feed.newest_alert_id()

    async def alerts(self) -> list[bytes]:
        out = []
        for entry_id, body in await self.feed.alerts_after(self.after):
            self.after = entry_id
            if self.devices is None or body.get("device_id") in self.devices:
                out.append(sse("alert", body, entry_id))
        return out

    async def twins(self) -> list[bytes]:
        if not self.devices:
            return []
        now = time.monotonic()
        wanted = [d for d in self.devices if self.due.get(d, 0.0) <= now]
        if not wanted:
            return []
        out = []
        for device, body in zip(wanted, await self.feed.twins(wanted), strict=True):
            if body is None:
                continue
            stamp = int(body.get("updated_ms", 0)) or int(body.get("last_seen_ms", 0))
            if self.sent.get(device) != stamp:
                self.sent[device] = stamp
                self.due[device] = now + self.gap
                out.append(sse("twin", {"device_id": device, **body}))
        return out

    async def close(self) -> None:
        await self.feed.close()


async def _events(request: Request, watch: Watch) -> AsyncIterator[bytes]:
    stores: Stores = request.app.state.stores
    stores.streams += 1
    try:
        if not watch.after:
            watch.after = await watch.start_id()
        yield b"retry: 2000\n\n"
        next_ping = next_summary = time.monotonic()
        while not await request.is_disconnected():
            batch = await watch.alerts() + await watch.twins()
            now = time.monotonic()
            if watch.devices is None and now >= next_summary and stores.counts is not None:
                counts = await asyncio.to_thread(stores.counts.get)
                batch.append(sse("summary", {"by_status": counts}))
                next_summary = now + SUMMARY_S
            if not batch and now >= next_ping:
                batch.append(b": ping\n\n")
            for chunk in batch:
                started = time.monotonic()
                yield chunk
                if time.monotonic() - started > SLOW_CLIENT_S:
                    return  # the client does not keep up: dropped
                next_ping = time.monotonic() + PING_S
            await asyncio.sleep(POLL_S)
    finally:
        stores.streams -= 1
        await watch.close()


@router.get(
    "/stream",
    summary="live twin updates and alert transitions (Server-Sent Events)",
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream(
    request: Request,
    devices: Annotated[str, Query(max_length=7000, description="device ids, or fleet")],
    rate: Annotated[float, Query(gt=0, le=10, description="twin updates/s per device")] = 5.0,
    last_event_id: Annotated[str | None, Header(max_length=40)] = None,
) -> StreamingResponse:
    stores: Stores = request.app.state.stores
    wanted = _devices(devices)
    if stores.live is None:
        raise Problem(503, "live push needs Redis (TWIN_REDIS_URL)")
    if stores.streams >= MAX_STREAMS:
        raise Problem(503, f"{MAX_STREAMS} streams are open: try again later")
    after = last_event_id or ""
    if after and not all(p.isdigit() for p in after.split("-", 1)):
        raise Problem(400, "Last-Event-ID: not an id this stream gave")
    watch = Watch(stores, wanted, rate, after)
    return StreamingResponse(
        _events(request, watch),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
