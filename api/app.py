"""The API application: every route under ``/api/v1``, its OpenAPI document beside them, the
console at ``/``.

FastAPI (on Starlette) was chosen for the OpenAPI document it derives from the routes' own
signatures, and the input checks that come with it: the document the fuzz tests read is the one
the code enforces. Routes that touch PostgreSQL are plain functions run on the server's thread
pool over a small connection pool; live reads are single Redis round trips.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles

from api import models, problems
from api.config import ApiConfig
from api.routes import admin, alerts, devices, fleet, maintenance, stream, twins
from api.stores import Stores

PREFIX = "/api/v1"
CONSOLE = Path(__file__).resolve().parent / "console"


def create_app(config: ApiConfig) -> FastAPI:
    stores = Stores(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stores.open()
        try:
            yield
        finally:
            await stores.close_feed()
            stores.close()

    app = FastAPI(
        title="twinstream",
        version="1",
        summary="Digital twins of vehicles and machines: live state, telemetry, alerts, "
        "anomalies and maintenance recommendations.",
        openapi_url=f"{PREFIX}/openapi.json",
        docs_url=f"{PREFIX}/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.stores = stores
    problems.install(app)
    for module in (devices, twins, alerts, maintenance, fleet, stream, admin):
        app.include_router(module.router, prefix=PREFIX, responses=models.ERRORS)

    @app.get("/healthz", tags=["health"], summary="the API answers (no key needed)")
    def healthz() -> dict[str, Any]:
        return {"status": "ok"}

    def openapi() -> dict[str, Any]:
        """FastAPI's document, with the problem document's schema the errors refer to."""
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, summary=app.summary,
                                   routes=app.routes)  # fmt: skip
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            schemas["Problem"] = models.Problem.model_json_schema()
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    if (CONSOLE / "index.html").exists():
        app.mount("/", StaticFiles(directory=CONSOLE, html=True), name="console")
    return app
