"""``GET /stats``: the pipeline's figures from the ledger export and the sync history."""

from __future__ import annotations

from fastapi import APIRouter

from searchflow.api import queries
from searchflow.api.deps import MartsDep, PgDep
from searchflow.api.models import Stats
from searchflow.errors import ServiceUnavailable

router = APIRouter(tags=["stats"])


@router.get("/stats", response_model=Stats, summary="Pipeline figures")
def stats(marts: MartsDep, pg: PgDep) -> Stats:
    """Events landed, published and held; landing rate; batches by state; gate pass rates;
    dead letters by reason; sync latency and error rate; freshness per source; the served mart
    version. When Postgres does not answer, the sync figures are empty and ``warnings`` says why."""
    now = queries.utcnow()
    con = marts.ledger()
    try:
        body = {
            "generated_at": now,
            "events": queries.event_totals(con),
            "landed_rate": queries.landed_rate(con, now),
            "batches_by_state": queries.batches_by_state(con),
            "gates": queries.gate_outcomes(con),
            "dead_letters_by_reason": queries.dead_letters_by_reason(con),
            "freshness": queries.freshness(con, now),
            "published": queries.publication(con),
        }
    finally:
        con.close()
    warnings: list[str] = []
    try:
        with pg.cursor() as cur:
            syncs = queries.sync_summary(cur)
    except ServiceUnavailable as exc:
        syncs, warnings = {}, [f"sync figures left out: {exc}"]
    return Stats(
        **body,
        syncs=syncs,
        sync_error_rate=queries.sync_error_rate(syncs),
        warnings=warnings,
    )
