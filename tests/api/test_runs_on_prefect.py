"""POST /runs on a real Prefect server with the deployments applied: 202 with the flow run's id
and UI address, one run per idempotency key, 409 naming `searchflow deploy` when the deployment
is missing. The run itself is not awaited (no worker): the API only starts it."""

from __future__ import annotations

import asyncio

import pytest
from fastapi.testclient import TestClient

from searchflow.api import create_app
from searchflow.config import Settings
from tests.api.conftest import TOKEN, auth
from tests.orchestration.conftest import prefect_server, prepared  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.prefect_server, pytest.mark.slow, pytest.mark.timeout(900)]


async def _run(api_url: str, run_id: str):
    from prefect.client.orchestration import get_client

    from deployments.prepare import api

    with api(api_url):
        async with get_client() as client:
            return await client.read_flow_run(run_id)


def test_post_runs_starts_generate_events(prefect_server, prepared, home) -> None:  # noqa: F811
    settings = Settings(home=home, api_token=TOKEN)
    app = create_app(settings, prefect_api_url=prefect_server.api_url)
    with TestClient(app) as client:
        body = {"events": 500, "seed": 3}
        headers = {**auth(), "Idempotency-Key": "test-key-1"}
        first = client.post("/runs", json=body, headers=headers)
        again = client.post("/runs", json=body, headers=headers)
    assert first.status_code == 202, first.text
    started = first.json()
    assert again.json()["flow_run_id"] == started["flow_run_id"]  # one run per key
    assert started["deployment"] == "generate-events/generate-events"
    assert started["ui_url"].endswith(f"/runs/flow-run/{started['flow_run_id']}")
    run = asyncio.run(_run(prefect_server.api_url, started["flow_run_id"]))
    # the deployment's own defaults (the sink) stay; the request sets events and seed
    assert {k: run.parameters[k] for k in ("events", "seed")} == {"events": 500, "seed": 3}
    assert run.idempotency_key == "test-key-1"


def test_post_runs_without_the_deployment_is_409(prefect_server, home, monkeypatch) -> None:  # noqa: F811
    from searchflow.api import orchestrator

    monkeypatch.setattr(orchestrator, "DEPLOYMENT", "no-such-flow/no-such-deployment")
    settings = Settings(home=home, api_token=TOKEN)
    with TestClient(create_app(settings, prefect_api_url=prefect_server.api_url)) as client:
        response = client.post("/runs", json={"events": 10}, headers=auth())
    assert response.status_code == 409
    assert "searchflow deploy" in response.json()["detail"]
