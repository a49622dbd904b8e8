"""Serving the API with uvicorn: in the foreground (``twin api``) or beside the engine on a
thread of its own (``twin run``)."""

from __future__ import annotations

import logging
import threading
import time

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
        )
    )


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
        deadline = time.monotonic() + timeout_s
        while not self._server.started and self._thread.is_alive():
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        if self._server.started:
            self.port = self._server.servers[0].sockets[0].getsockname()[1]  # port 0: the one taken
            log.info("API listening on http://%s:%d/api/v1 (console at /)", self.host, self.port)
        else:
            log.error("API did not start on %s:%d", self.host, self.port)
        return self

    @property
    def started(self) -> bool:
        return bool(self._server.started)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)
