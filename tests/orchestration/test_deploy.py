"""searchflow deploy against a real Prefect server: pool, limit, deployments, triggers; idempotent."""

from __future__ import annotations

import asyncio
import json

import pytest
from click.testing import CliRunner

from deployments import DEFAULT_POOL
from deployments.prepare import api, prepare
from deployments.resilience import CRASH_AFTER_SECONDS, CRASH_AUTOMATION
from searchflow.cli import cli
from searchflow.contract import WAREHOUSE_LIMIT


async def _server_state() -> dict:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        limit = await client.read_global_concurrency_limit_by_name(WAREHOUSE_LIMIT)
        pool = await client.read_work_pool(DEFAULT_POOL)
        deployments = await client.read_deployments()
        automations = await client.read_automations()
    return {
        "limit": (limit.limit, limit.active),
        "pool": pool.type,
        "deployments": {f"{d.name}": d for d in deployments},
        "automations": sorted(a.name for a in automations),
        "crash": [a for a in automations if a.name == CRASH_AUTOMATION],
    }


@pytest.mark.prefect_server
def test_deploy_is_idempotent(prefect_server, prepared) -> None:
    again = prepare(prefect_server.api_url, sweeper=False)
    assert again.deployments == prepared.deployments  # upserted, same ids
    assert not again.pool_created and not again.limit_created
    for name, automations in again.automations.items():
        # the root, the sweeper and the reconcile
        untriggered = name.startswith(("generate-events/", "sweep/", "reconcile/"))
        assert len(automations) == (0 if untriggered else 1), name

    with api(prefect_server.api_url):
        state = asyncio.run(_server_state())
    assert state["limit"] == (1, True)
    assert state["pool"] == "process"
    assert len(state["deployments"]) == 8  # six stages, the sweeper and the reconcile
    assert len(state["automations"]) == 6  # recreated, never duplicated
    (crash,) = state["crash"]  # one crash detector, updated in place
    assert str(crash.id) == again.crash_automation == prepared.crash_automation
    assert crash.trigger.within.total_seconds() == CRASH_AFTER_SECONDS
    assert crash.actions[0].state.value == "CRASHED"
    for deployment in state["deployments"].values():
        assert deployment.work_pool_name == DEFAULT_POOL
        assert deployment.global_concurrency_limit.limit == 1
        # the events drive the chain; only the sweeper's and the reconcile's schedules are on
        assert [s.active for s in deployment.schedules if s.active] == (
            [True] if deployment.name in ("sweep", "reconcile") else []
        )
        assert deployment.pull_steps == [{"deployments.steps.set_project_directory": {}}]
        assert deployment.job_variables["stream_output"] is False


@pytest.mark.prefect_server
def test_deploy_command_reports_json(prefect_env, prepared) -> None:
    result = CliRunner().invoke(cli, ["deploy", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["pool"] == DEFAULT_POOL
    assert summary["concurrency_limit"] == WAREHOUSE_LIMIT
    assert sorted(summary["deployments"]) == sorted(prepared.deployments)


def test_deploy_without_a_server_is_one_line(monkeypatch) -> None:
    from deployments.server import free_port
    from searchflow.errors import ServiceUnavailable

    monkeypatch.setenv("PREFECT_API_URL", f"http://127.0.0.1:{free_port()}/api")
    result = CliRunner().invoke(cli, ["deploy"])
    assert isinstance(result.exception, ServiceUnavailable)
    assert "does not answer" in str(result.exception)
    assert "\n" not in str(result.exception)


@pytest.mark.prefect_server
def test_deploy_points_every_deployment_at_another_pool(prefect_server, prepared) -> None:
    """`--pool` reaches every deployment (plain `prefect deploy --all` ignores it); deploying to
    the default pool again puts them back."""
    other = "searchflow-other"
    moved = prepare(prefect_server.api_url, other, sweeper=False)
    try:
        assert moved.pool_created and moved.deployments == prepared.deployments
        with api(prefect_server.api_url):
            state = asyncio.run(_server_state())
        assert {d.work_pool_name for d in state["deployments"].values()} == {other}
    finally:
        back = prepare(prefect_server.api_url, sweeper=False)
    assert back.deployments == prepared.deployments
