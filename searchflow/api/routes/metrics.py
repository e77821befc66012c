"""``GET /metrics``: Prometheus text format from the app's own registry."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}},
    summary="Prometheus metrics (searchflow_*)",
)
def metrics(request: Request) -> Response:
    """Counters of events landed and dead-lettered, gate outcomes, sync rows; histograms of stage
    and sync durations; freshness per source. Read from the ledger export and crm.sync_runs at
    scrape time, so they count every process's work."""
    return Response(generate_latest(request.app.state.registry), media_type=CONTENT_TYPE_LATEST)
