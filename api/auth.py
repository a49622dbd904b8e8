"""``Authorization: Bearer KEY`` on every route but ``/healthz``, and what each role may do.

A key that checks out is trusted for a few seconds (:class:`~api.key_cache.KeyCache`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.problems import Problem
from api.stores import Stores
from storage import api_keys
from storage.api_keys import ApiKey

_bearer = HTTPBearer(auto_error=False, description="an API key from `twin apikey create`")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _look_up(stores: Stores, secret: str) -> ApiKey | None:
    with stores.connection() as conn:
        return api_keys.holder(conn, secret)


async def caller(request: Request, credentials: HTTPAuthorizationCredentials | None) -> ApiKey:
    """On the event loop: a key in the cache costs no thread hop; only a miss asks PostgreSQL
    (on a worker thread)."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Problem(401, "this route needs an API key: Authorization: Bearer KEY")
    stores: Stores = request.app.state.stores
    digest = api_keys.digest(credentials.credentials)
    key = stores.keys.get(digest)
    if key is None:
        key = await asyncio.to_thread(_look_up, stores, credentials.credentials)
        if key is None:
            raise Problem(401, "unknown or revoked API key")
        stores.keys.put(digest, key)
    return key


def role(needed: str) -> Callable[..., Awaitable[ApiKey]]:
    """A dependency: the calling key, which must have ``needed`` or a higher role."""

    async def check(request: Request, credentials: Credentials) -> ApiKey:
        key = await caller(request, credentials)
        if not api_keys.may(key.role, needed):
            raise Problem(403, f"a {key.role} key may not do this: it needs {needed} or above")
        return key

    return check


VIEWER = Depends(role("viewer"))
OPERATOR = Depends(role("operator"))
ADMIN = Depends(role("admin"))


def acting(key: ApiKey) -> str:
    """How a key is named in an alert's timeline and a recommendation's feedback."""
    return f"key {key.id} ({key.name})"
