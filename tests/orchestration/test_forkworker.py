"""The fork-server worker on a real Prefect server: a run forked from the fork server reports
Running and its logs reach the API, and cancelling it in the UI's way (state Cancelling) ends its
process and leaves it Cancelled, as with Prefect's own process worker."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path
from uuid import UUID

import pytest

from deployments import PROJECT_DIR
from deployments.prepare import api
from deployments.worker import start_worker

pytestmark = [pytest.mark.prefect_server, pytest.mark.slow]

POOL = "searchflow-forkworker-test"
ENTRYPOINT = "tests/orchestration/sleepy_flow.py:sleepy"


async def _deploy_and_run() -> UUID:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists
    from prefect.workers.process import ProcessWorker

    async with get_client() as client:
        with contextlib.suppress(ObjectAlreadyExists):
            await client.create_work_pool(
                WorkPoolCreate(
                    name=POOL,
                    type="process",
                    base_job_template=ProcessWorker.get_default_base_job_template(),
                )
            )
        flow_id = await client.create_flow_from_name("sleepy")
        deployment_id = await client.create_deployment(
            flow_id=flow_id,
            name="sleepy",
            entrypoint=ENTRYPOINT,
            work_pool_name=POOL,
            pull_steps=[
                {"prefect.deployments.steps.set_working_directory": {"directory": str(PROJECT_DIR)}}
            ],
        )
        run = await client.create_flow_run_from_deployment(
            deployment_id, parameters={"seconds": 600}
        )
        return run.id


async def _state(run_id: UUID) -> tuple[str, str | None]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        run = await client.read_flow_run(run_id)
        return run.state.type.value, run.infrastructure_pid


async def _log_messages(run_id: UUID) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    async with get_client() as client:
        logs = await client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id]))
        )
        return [log.message for log in logs]


async def _cancel(run_id: UUID) -> None:
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelling

    async with get_client() as client:
        await client.set_flow_run_state(run_id, Cancelling())


def _wait_state(run_id: UUID, wanted: set[str], seconds: float) -> tuple[str, str | None]:
    deadline = time.monotonic() + seconds
    state = asyncio.run(_state(run_id))
    while state[0] not in wanted and time.monotonic() < deadline:
        time.sleep(1)
        state = asyncio.run(_state(run_id))
    return state


def _forked_runs(worker_pid: int, run_id: UUID) -> list[int]:
    """Processes below the worker that hold the run's log file open (the forked engine)."""
    from deployments.worker import descendants

    found = []
    for pid in descendants(worker_pid):
        try:
            targets = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:
            continue
        if any(t.endswith(f"/flow-runs/{run_id}.log") for t in targets):
            found.append(pid)
    return found


def test_a_forked_run_runs_logs_and_cancels(prefect_server, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PREFECT_API_URL", prefect_server.api_url)
    settings_env = {"SEARCHFLOW_HOME": str(tmp_path / "home")}
    with api(prefect_server.api_url):
        run_id = asyncio.run(_deploy_and_run())
        worker = start_worker(prefect_server.api_url, settings_env, tmp_path / "logs", POOL)
        try:
            state, _pid = _wait_state(run_id, {"RUNNING", "FAILED", "CRASHED"}, 300)
            assert state == "RUNNING"
            worker_log = worker.log_path.read_text()
            assert "forkserver ready" in worker_log  # the run was forked, not started cold
            deadline = time.monotonic() + 60
            while not any("sleeping" in m for m in asyncio.run(_log_messages(run_id))):
                assert time.monotonic() < deadline, "the run's log never reached the API"
                time.sleep(1)
            forked = _forked_runs(worker.process.pid, run_id)
            assert forked, "no forked process holds the run's log file"
            asyncio.run(_cancel(run_id))
            state, _pid = _wait_state(run_id, {"CANCELLED", "FAILED", "CRASHED"}, 180)
            assert state == "CANCELLED"
            deadline = time.monotonic() + 60
            while any(Path(f"/proc/{pid}").exists() for pid in forked):
                assert time.monotonic() < deadline, "the cancelled run's process still runs"
                time.sleep(0.5)
        finally:
            worker.stop()
