"""The FastAPI application: routers, the clients opened once per process, CORS, error answers.

``create_app(settings)`` builds a fresh app (tests build one per fixture); ``searchflow serve``
runs it on uvicorn. The app reads only published data (the Parquet snapshot, the ledger export),
Postgres, Redis and the Prefect API, never the warehouse file.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from searchflow.api import orchestrator
from searchflow.api.clients import Postgres, Redis
from searchflow.api.deps import AppState, checked_token
from searchflow.api.metrics import registry_for
from searchflow.api.published import PublishedData
from searchflow.api.routes import batches, dead_letters, health, metrics, runs, stats, users
from searchflow.config import Settings, get_settings
from searchflow.errors import ServiceUnavailable

ROUTERS = (health, stats, batches, users, dead_letters, runs, metrics)
_UNSET = object()


def _warm(state: AppState) -> None:
    """Load the served version's user index and connect to Redis before the first request, so
    the first caller does not pay for them; a dependency that is down is reported by /health."""
    with contextlib.suppress(Exception):
        state.published.user("")
    with contextlib.suppress(Exception):
        state.redis.ping()


def create_app(
    settings: Settings | None = None, *, prefect_api_url: str | None | object = _UNSET
) -> FastAPI:
    """The app over ``settings`` (default: the environment's). ``prefect_api_url``: the Prefect
    API to start runs on and to check in ``/health`` (default: ``PREFECT_API_URL`` or the active
    Prefect profile; None: no Prefect)."""
    settings = settings or get_settings()
    if prefect_api_url is _UNSET:
        prefect_api_url = orchestrator.configured_api_url()
    state = AppState(
        settings=settings,
        token=checked_token(settings),
        published=PublishedData(settings.home_path),
        postgres=Postgres(settings),
        redis=Redis(settings),
        prefect_api_url=prefect_api_url,  # type: ignore[arg-type]
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(_warm, state)
        with contextlib.suppress(Exception):
            await state.redis.acall(lambda client: client.ping())
        try:
            yield
        finally:
            state.postgres.close()
            state.redis.close()
            await state.redis.aclose()

    app = FastAPI(
        title="SearchFlow API",
        version="0.1.0",
        summary="The pipeline's published data, ledger, health and metrics; start a served run.",
        lifespan=lifespan,
    )
    app.state.searchflow = state
    app.state.registry = registry_for(state.published, state.postgres)
    for module in ROUTERS:
        app.include_router(module.router)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
        )

    @app.exception_handler(ServiceUnavailable)
    async def unavailable(request: Request, exc: ServiceUnavailable) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    return app
