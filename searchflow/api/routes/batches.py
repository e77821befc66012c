"""``GET /batches`` and ``GET /batches/{batch_id}``: the ledger and one batch's story."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query

from searchflow import ledger
from searchflow.api.deps import MartsDep
from searchflow.api.models import Batch, BatchList, BatchStory, Problem
from searchflow.contract import STAGES

router = APIRouter(prefix="/batches", tags=["batches"])

# Derived from the ledger and the contract, so the OpenAPI enums follow them.
State = Literal[ledger.STATES]  # type: ignore[valid-type]
Stage = Literal[STAGES]  # type: ignore[valid-type]
BatchId = Annotated[str, Path(min_length=1, max_length=200, description="A ledger batch id.")]


@router.get("", response_model=BatchList, summary="The batch ledger, newest first")
def list_batches(
    marts: MartsDep,
    state: Annotated[State | None, Query(description="Only batches in this state.")] = None,
    stage: Annotated[Stage | None, Query(description="Only batches of this stage.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> BatchList:
    con = marts.ledger()
    try:
        rows = ledger.list_batches(con, state=state, stage=stage, limit=limit)
    finally:
        con.close()
    return BatchList(data=[Batch(**row) for row in rows], count=len(rows))


@router.get(
    "/{batch_id}",
    response_model=BatchStory,
    responses={404: {"model": Problem, "description": "No such batch in the ledger."}},
    summary="One batch and its lineage",
)
def show_batch(batch_id: BatchId, marts: MartsDep) -> BatchStory:
    """The batch, and its ancestors and descendants in stage order: generated, landed, published
    in which mart version, synced to which destination."""
    con = marts.ledger()
    try:
        row = ledger.get(con, batch_id)
        story = ledger.lineage(con, batch_id) if row is not None else []
    finally:
        con.close()
    if row is None:
        raise HTTPException(404, detail=f"no batch {batch_id!r} in the ledger")
    return BatchStory(batch=Batch(**row), lineage=[Batch(**r) for r in story])
