"""``POST /runs``: start the served chain on the Prefect server (token required)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, status
from fastapi.responses import JSONResponse

from searchflow.api import orchestrator
from searchflow.api.deps import StateDep, require_token
from searchflow.api.models import Problem, RunRequest, RunStarted

router = APIRouter(prefix="/runs", tags=["runs"])


@router.post(
    "",
    response_model=RunStarted,
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[Depends(require_token)],
    responses={
        401: {"model": Problem, "description": "No or a wrong bearer token."},
        409: {"model": Problem, "description": "No Prefect API, or no deployment, to run it."},
        503: {"model": Problem, "description": "The Prefect API does not answer."},
    },
    summary="Start the served chain with a generated batch",
)
def start_run(
    body: RunRequest,
    state: StateDep,
    idempotency_key: Annotated[
        str | None,
        Header(max_length=200, description="Retries with the same key start one run."),
    ] = None,
) -> JSONResponse:
    """Creates a run of the ``generate-events`` deployment (the head of the chain; each gate that
    passes triggers the next stage) and returns at once with the run's id and UI address."""
    api_url = state.prefect_api_url
    if not api_url:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail="no Prefect API is configured (PREFECT_API_URL); the served chain runs only "
            "on a Prefect server: start one and run searchflow deploy, or use searchflow run",
        )
    key = idempotency_key or uuid.uuid4().hex
    parameters = {"events": body.events, "seed": body.seed}
    try:
        run_id = orchestrator.start_chain(api_url, parameters, key)
    except orchestrator.NoDeployment:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail=f"deployment {orchestrator.DEPLOYMENT} is not on {api_url}; "
            "run searchflow deploy first",
        ) from None
    except Exception as exc:  # the Prefect client's errors: the server did not answer or refused
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=f"the Prefect API at {api_url} could not start the run: {first}",
        ) from None
    started = RunStarted(
        flow_run_id=run_id,
        deployment=orchestrator.DEPLOYMENT,
        ui_url=orchestrator.ui_url(api_url, run_id),
        idempotency_key=key,
        parameters=parameters,
    )
    return JSONResponse(started.model_dump(mode="json"), status_code=status.HTTP_202_ACCEPTED)
