"""Orchestration faults on a real Prefect server, while ``transform`` runs: the worker stopped by
SIGTERM, and the worker's process group killed with SIGKILL. Each ends with the chain complete, the
destinations written, no run left Running and the warehouse slot free."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import psycopg2
import pytest

from deployments.demo import pin_postgres_block, start_chain
from deployments.follow import follow, snapshot
from deployments.prepare import api
from deployments.worker import Worker, start_worker
from searchflow.config import Settings
from searchflow.contract import WAREHOUSE_LIMIT

pytestmark = [
    pytest.mark.faults,
    pytest.mark.prefect_server,
    pytest.mark.slow,
    pytest.mark.timeout(1500),
]

EVENTS = 3000
STAGE = "transform"


async def _state_of(deployment: str, root_id: str, deployment_ids: dict[str, str]) -> str:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        runs, _ = await snapshot(client, root_id, deployment_ids)
    return {r.deployment: r for r in runs}[deployment].state_type


def _wait_until_running(api_url: str, root_id: str, deployment_ids: dict[str, str]) -> None:
    deadline = time.monotonic() + 600
    with api(api_url):
        while time.monotonic() < deadline:
            if asyncio.run(_state_of(STAGE, root_id, deployment_ids)) == "RUNNING":
                return
            time.sleep(0.5)
    raise AssertionError(f"{STAGE} never ran")


async def _slot_and_runs(root_id: str, deployment_ids: dict[str, str]) -> tuple[int, list]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        limit = await client.read_global_concurrency_limit_by_name(WAREHOUSE_LIMIT)
        runs, _ = await snapshot(client, root_id, deployment_ids)
    return limit.active_slots, runs


def _run_faulted_chain(
    api_url: str,
    deployment_ids: dict[str, str],
    settings: Settings,
    logs: Path,
    fault: Callable[[Worker], None],
    seed: int,
) -> None:
    from searchflow.services import pin_services

    pinned = pin_services(settings)
    pin_postgres_block(api_url, pinned)
    first = start_worker(api_url, pinned.as_env(), logs)
    second = None
    try:
        root_id = start_chain(api_url, EVENTS, seed)
        _wait_until_running(api_url, root_id, deployment_ids)
        fault(first)
        second = start_worker(api_url, pinned.as_env(), logs)
        chain = follow(api_url, root_id, deployment_ids, timeout=900)
        assert chain.ok, chain.to_dict()
        with api(api_url):
            deadline = time.monotonic() + 90  # a killed holder's lease lapses within a minute
            active, runs = asyncio.run(_slot_and_runs(root_id, deployment_ids))
            while active and time.monotonic() < deadline:
                time.sleep(2)
                active, runs = asyncio.run(_slot_and_runs(root_id, deployment_ids))
        assert active == 0
        assert all(r.state_type == "COMPLETED" for r in runs), [r.to_dict() for r in runs]
    finally:
        for worker in (first, second):
            if worker is not None:
                worker.stop(timeout=10)
    con = psycopg2.connect(pinned.postgres_url)
    try:
        with con.cursor() as cur:
            cur.execute("SELECT count(*) FROM crm.user_segments")
            assert cur.fetchone()[0] > 0
    finally:
        con.close()


def test_sigterm_hands_the_running_stage_back(
    prefect_env, prepared, service_settings, logs_dir
) -> None:
    def sigterm(worker: Worker) -> None:
        started = time.monotonic()
        os.kill(worker.process.pid, signal.SIGTERM)
        worker.process.wait(timeout=30)
        assert time.monotonic() - started < 20  # stops within seconds
        log = worker.log_path.read_text()
        assert "handed back 1 run(s)" in log, log[-2000:]

    _run_faulted_chain(
        prefect_env, prepared.deployments, service_settings, logs_dir, sigterm, seed=21
    )


def test_worker_killed_mid_transform(prefect_env, prepared, service_settings, logs_dir) -> None:
    def kill9(worker: Worker) -> None:
        # the flow-run process lives on (a session of its own, not writing to the dead worker's
        # pipes) and reports its end itself
        os.killpg(worker.process.pid, signal.SIGKILL)
        worker.process.wait(timeout=30)

    _run_faulted_chain(
        prefect_env, prepared.deployments, service_settings, logs_dir, kill9, seed=22
    )
