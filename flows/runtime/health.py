"""``/metrics``, ``/healthz`` and ``/readyz`` on the metrics port.

* ``/healthz``: 200 while the process serves requests (liveness: restart it when this fails).
* ``/readyz``: 200 when the engine is connected to the broker, PostgreSQL and Redis answer, and
  the dataflow is reading (a worker asked the MQTT source for messages in the last 30 s: a sink
  stuck retrying an unreachable store stops that); 503 otherwise. The body says which part is
  not ready. The stores are probed with a one-second timeout, at most once a second.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app

from storage.probes import Probe

log = logging.getLogger(__name__)


class Readiness:
    def __init__(
        self,
        probes: dict[str, Probe],
        mqtt_state: Callable[[], str],
        last_poll: Callable[[], float],
        stale_s: float = 30.0,
        cache_s: float = 1.0,
    ) -> None:
        self._probes = probes
        self._mqtt_state = mqtt_state
        self._last_poll = last_poll
        self._stale = stale_s
        self._cache_s = cache_s
        self._cached: tuple[float, dict[str, bool]] | None = None
        self._lock = threading.Lock()

    def check(self) -> tuple[bool, dict[str, bool]]:
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] > self._cache_s:
                self._cached = (now, {name: probe() for name, probe in self._probes.items()})
            parts = dict(self._cached[1])
        parts["mqtt"] = self._mqtt_state() == "connected"
        parts["ingesting"] = time.monotonic() - self._last_poll() < self._stale
        return all(parts.values()), parts


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def app(readiness: Readiness) -> Callable[..., Iterable[bytes]]:
    metrics = make_wsgi_app()

    def handle(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            start_response("200 OK", [("Content-Type", "application/json")])
            return [b'{"status": "alive"}']
        if path == "/readyz":
            ready, parts = readiness.check()
            body = json.dumps({"ready": ready, **parts}).encode()
            status = "200 OK" if ready else "503 Service Unavailable"
            start_response(status, [("Content-Type", "application/json")])
            return [body]
        return metrics(environ, start_response)

    return handle


def serve(port: int, readiness: Readiness) -> _Server:
    server = make_server("", port, app(readiness), _Server, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
