"""What the stores' client libraries raise when a server refuses or drops us.

The CLI turns these into one line instead of a traceback; the writers turn them into
:class:`~twin.errors.StoreUnavailable` or :class:`~twin.errors.StoreRejected`."""

from __future__ import annotations

import psycopg
import redis
import sqlalchemy.exc

SERVER_ERRORS: tuple[type[Exception], ...] = (
    psycopg.Error,
    sqlalchemy.exc.SQLAlchemyError,
    redis.RedisError,
)
