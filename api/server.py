"""Serving the API with uvicorn: in the foreground (``twin api``), beside the engine in a
process of its own (``twin run``), or on a thread (tests, and tools that serve a little).

Beside the engine the API needs its own interpreter: on a thread of the engine's process it
shares the engine's GIL, and the twin step holds it for milliseconds at a time (measured at
5,000 readings/s: p99 44 ms for ``GET /twins/{id}`` on a thread, 7-8 ms in a process).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from multiprocessing.sharedctypes import Synchronized

import uvicorn

from api.app import create_app
from api.config import ApiConfig

log = logging.getLogger(__name__)


def _server(config: ApiConfig, host: str, port: int) -> uvicorn.Server:
    return uvicorn.Server(
        uvicorn.Config(
            create_app(config),
            host=host,
            port=port,
            log_config=None,  # the process's own logging
            access_log=False,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=2,
            http="httptools",  # HTTP parsing and the event loop in C: half the cost per request
            loop="uvloop",
        )
    )


def _bound_port(server: uvicorn.Server) -> int:
    """The port the server listens on (the one taken, when asked for port 0)."""
    return int(server.servers[0].sockets[0].getsockname()[1])


def _await_start(
    ready: Callable[[], bool], alive: Callable[[], bool], timeout_s: float, host: str, port: int
) -> bool:
    """Wait until the server listens, gives up or the time is out; say which."""
    deadline = time.monotonic() + timeout_s
    while not ready() and alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    if ready():
        return True
    log.error("API did not start on %s:%d", host, port)
    return False


def _listening(host: str, port: int) -> None:
    log.info("API listening on http://%s:%d/api/v1 (console at /)", host, port)


def serve(config: ApiConfig, host: str, port: int) -> None:
    """Until SIGINT or SIGTERM."""
    _server(config, host, port).run()


class ApiThread:
    """The API on a daemon thread; :meth:`stop` ends it."""

    def __init__(self, config: ApiConfig, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._server = _server(config, host, port)
        self._thread = threading.Thread(target=self._server.run, name="api", daemon=True)

    def start(self, timeout_s: float = 10.0) -> ApiThread:
        self._thread.start()
        if _await_start(self._is_started, self._thread.is_alive, timeout_s, self.host, self.port):
            self.port = _bound_port(self._server)
            _listening(self.host, self.port)
        return self

    def _is_started(self) -> bool:
        return bool(self._server.started)

    @property
    def started(self) -> bool:
        return self._is_started()

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)


def _orphan_watch(parent: int) -> None:
    """End this process when the engine that started it is gone (even killed with SIGKILL):
    an orphan would keep the port, and the restarted engine could not serve."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


def _child(
    config: ApiConfig,
    host: str,
    port: int,
    parent: int,
    bound: Synchronized[int],
    setup: Callable[[], None] | None,
) -> None:
    if setup is not None:
        setup()
    threading.Thread(target=_orphan_watch, args=(parent,), daemon=True).start()
    server = _server(config, host, port)

    def report() -> None:
        while not server.started:
            time.sleep(0.02)
        bound.value = _bound_port(server)

    threading.Thread(target=report, daemon=True).start()
    server.run()


class ApiProcess:
    """The API in a child process; :meth:`stop` ends it. ``setup`` runs first in the child
    (its logging, say)."""

    def __init__(
        self, config: ApiConfig, host: str, port: int, setup: Callable[[], None] | None = None
    ) -> None:
        self.host, self.port = host, port
        spawn = multiprocessing.get_context("spawn")  # nothing of the engine's state copied
        self._bound = spawn.Value("i", 0)
        self._proc = spawn.Process(
            target=_child,
            args=(config, host, port, os.getpid(), self._bound, setup),
            name="twin-api",
            daemon=True,
        )

    def start(self, timeout_s: float = 30.0) -> ApiProcess:
        self._proc.start()
        if _await_start(self._has_port, self._proc.is_alive, timeout_s, self.host, self.port):
            self.port = self._bound.value
            _listening(self.host, self.port)
        return self

    def _has_port(self) -> bool:
        return bool(self._bound.value)

    @property
    def started(self) -> bool:
        return self._has_port() and self._proc.is_alive()

    def stop(self) -> None:
        if self._proc.is_alive():
            self._proc.terminate()  # SIGTERM: uvicorn finishes what it is answering
            self._proc.join(timeout=5)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(timeout=5)
