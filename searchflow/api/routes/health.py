"""``GET /health``: liveness, and the readiness of everything the API reads."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from searchflow import published as snapshot
from searchflow.api.clients import timed
from searchflow.api.deps import StateDep
from searchflow.api.models import Check, Health
from searchflow.api.orchestrator import check_api

router = APIRouter(tags=["health"])


def _published(state: StateDep) -> str:
    version = state.published.version()
    if version is None:
        raise RuntimeError(
            f"nothing published under {snapshot.published_root(state.settings.home_path)}; "
            "run searchflow run or searchflow transform"
        )
    if not state.published.ops_file("batches").exists():
        raise RuntimeError("the ledger export published/ops/batches.parquet is missing")
    return f"mart version {version}"


@router.get(
    "/health",
    response_model=Health,
    responses={503: {"model": Health, "description": "Some dependency is not ready (named)."}},
    summary="Liveness and readiness",
)
def health(state: StateDep) -> JSONResponse:
    """200 when the published data, Postgres, Redis and (when configured) the Prefect API are all
    ready; 503 naming the ones that are not. Each check reports its latency."""
    checks = {
        "published": timed(lambda: _published(state)),
        "postgres": timed(state.postgres.ping),
        "redis": timed(state.redis.ping),
    }
    if state.prefect_api_url:
        url = state.prefect_api_url
        checks["prefect"] = timed(lambda: check_api(url))
    body = Health(
        status="ok" if all(ok for ok, _, _ in checks.values()) else "unavailable",
        not_ready=[name for name, (ok, _, _) in checks.items() if not ok],
        checks={
            name: Check(ready=ok, latency_ms=ms, detail=detail)
            for name, (ok, ms, detail) in checks.items()
        },
    )
    return JSONResponse(
        body.model_dump(mode="json"), status_code=200 if body.not_ready == [] else 503
    )
