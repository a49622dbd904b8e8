"""Errors as RFC 9457 problem documents (``application/problem+json``).

Every error the API gives is one of these: a bad id, time or range (400), no or an unknown key
(401), a role that may not (403), nothing of that id (404), a change the item's status does not
allow (409), a request that does not fit the schema (422), a store that did not answer
(503). A 500 would be a bug.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from storage.errors import SERVER_ERRORS
from twin.errors import AlertActionError, ConfigurationError, UnknownItem

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"


class Problem(Exception):
    """An error answer: its status, and a sentence saying what was wrong."""

    def __init__(self, status: int, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.detail, self.extra = status, detail, extra


def problem_response(
    status: int,
    detail: str,
    instance: str = "",
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        **({"instance": instance} if instance else {}),
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def install(app: FastAPI) -> None:
    """Answer every error of ``app`` with a problem document."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return problem_response(exc.status, exc.detail, request.url.path, headers, **exc.extra)

    @app.exception_handler(UnknownItem)
    async def _unknown(request: Request, exc: UnknownItem) -> JSONResponse:
        return problem_response(404, str(exc), request.url.path)

    @app.exception_handler(AlertActionError)
    async def _conflict(request: Request, exc: AlertActionError) -> JSONResponse:
        return problem_response(409, str(exc), request.url.path)

    @app.exception_handler(ConfigurationError)
    async def _bad(request: Request, exc: ConfigurationError) -> JSONResponse:
        return problem_response(400, str(exc), request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"where": ".".join(str(p) for p in e.get("loc", ())), "message": e.get("msg", "")}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{e['where']}: {e['message']}" for e in errors) or "invalid request"
        return problem_response(422, detail, request.url.path, errors=errors)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        return problem_response(exc.status_code, detail, request.url.path)

    for kind in SERVER_ERRORS:

        @app.exception_handler(kind)
        async def _store(request: Request, exc: Exception) -> JSONResponse:
            log.warning("API request %s: a store failed: %s", request.url.path, exc)
            return problem_response(
                503,
                "a store did not answer; try again shortly",
                request.url.path,
                {"Retry-After": "2"},
            )

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("API request %s %s failed", request.method, request.url.path)
        return problem_response(500, "the server failed on this request", request.url.path)
