"""Orchestration faults on a real Prefect server, while ``transform`` runs: the worker stopped by
SIGTERM, the worker's process group killed with SIGKILL, and the server killed with SIGKILL and
restarted on the same port and database. Each ends with the chain complete, the destinations
written, no run left Running and the warehouse slot free.

Each takes minutes (a whole served chain, a fault, the recovery), so they carry the ``faults``
marker, which the default run deselects: ``make test-faults`` (``pytest -m faults``) runs them.
"""

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
# How long a test waits for the chain to recover from its fault: generous, because the machine
# running the tests may be shared; the measured time is printed (``-s``).
RECOVERY_BOUND_SECONDS = 900


async def _run_of(deployment: str, root_id: str, deployment_ids: dict[str, str]):
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        runs, _ = await snapshot(client, root_id, deployment_ids)
    return {r.deployment: r for r in runs}[deployment]


def _wait_until_running(api_url: str, root_id: str, deployment_ids: dict[str, str]) -> str:
    """The id of the chain's ``transform`` run, once it is Running."""
    deadline = time.monotonic() + 600
    with api(api_url):
        while time.monotonic() < deadline:
            run = asyncio.run(_run_of(STAGE, root_id, deployment_ids))
            if run.state_type == "RUNNING":
                return run.run_id
            time.sleep(0.5)
    raise AssertionError(f"{STAGE} never ran")


async def _slot_and_runs(root_id: str, deployment_ids: dict[str, str]) -> tuple[int, list]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        limit = await client.read_global_concurrency_limit_by_name(WAREHOUSE_LIMIT)
        runs, _ = await snapshot(client, root_id, deployment_ids)
    return limit.active_slots, runs


@pytest.fixture
def own_server(tmp_path: Path):
    """A server of this test's own: a fault, or a run one test leaves behind (handed back, never
    finished), never reaches another test."""
    from deployments.server import start_server

    server = start_server(tmp_path / "prefect-home", ui=False, timeout=300)
    try:
        yield server
    finally:
        server.stop()


def _run_faulted_chain(
    server,
    monkeypatch: pytest.MonkeyPatch,
    settings: Settings,
    logs: Path,
    fault: Callable[[Worker, str], None],
    seed: int,
) -> None:
    from deployments.prepare import prepare
    from searchflow.services import pin_services

    api_url = server.api_url
    monkeypatch.setenv("PREFECT_API_URL", api_url)
    deployment_ids = prepare(api_url, sweeper=False).deployments
    pinned = pin_services(settings)
    pin_postgres_block(api_url, pinned)
    first = start_worker(api_url, pinned.as_env(), logs)
    second = None
    try:
        root_id = start_chain(api_url, EVENTS, seed)
        fault(first, _wait_until_running(api_url, root_id, deployment_ids))
        faulted = time.monotonic()
        second = start_worker(api_url, pinned.as_env(), logs)
        chain = follow(api_url, root_id, deployment_ids, timeout=RECOVERY_BOUND_SECONDS)
        assert chain.ok, chain.to_dict()
        with api(api_url):
            deadline = time.monotonic() + 180  # a killed holder's lease lapses within a minute
            active, runs = asyncio.run(_slot_and_runs(root_id, deployment_ids))
            while active and time.monotonic() < deadline:
                time.sleep(2)
                active, runs = asyncio.run(_slot_and_runs(root_id, deployment_ids))
        _report_recovery(faulted)
        assert active == 0
        assert all(r.state_type == "COMPLETED" for r in runs), [r.to_dict() for r in runs]
    finally:
        for worker in (first, second):
            if worker is not None:
                worker.stop(timeout=10)
    _segments_equal_the_mart(pinned)


def _report_recovery(faulted: float) -> None:
    """Print how long the recovery took: the issue's bar is five minutes, measured on an idle
    machine; the tests themselves wait up to ``RECOVERY_BOUND_SECONDS`` (a shared machine can
    be many times slower), and docs/orchestration.md records the measured figures."""
    print(f"recovered {time.monotonic() - faulted:.0f} s after the fault")


def test_sigterm_hands_the_running_stage_back(
    own_server, monkeypatch, service_settings, logs_dir
) -> None:
    def sigterm(worker: Worker, transform_run: str) -> None:
        started = time.monotonic()
        os.kill(worker.process.pid, signal.SIGTERM)
        worker.process.wait(timeout=30)
        assert time.monotonic() - started < 20  # stops within seconds
        log = worker.log_path.read_text()
        # the transform, and any upstream run still confirming its stage event
        handed = [line for line in log.splitlines() if line.startswith("handed back ")]
        assert handed and transform_run in handed[-1], log[-2000:]

    _run_faulted_chain(own_server, monkeypatch, service_settings, logs_dir, sigterm, seed=21)


def test_worker_killed_mid_transform(own_server, monkeypatch, service_settings, logs_dir) -> None:
    def kill9(worker: Worker, transform_run: str) -> None:
        # the flow-run process lives on (a session of its own, not writing to the dead worker's
        # pipes) and reports its end itself
        os.killpg(worker.process.pid, signal.SIGKILL)
        worker.process.wait(timeout=30)

    _run_faulted_chain(own_server, monkeypatch, service_settings, logs_dir, kill9, seed=22)


SERVER_AWAY_SECONDS = 20


async def _all_runs_and_slot() -> tuple[int, list]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        limit = await client.read_global_concurrency_limit_by_name(WAREHOUSE_LIMIT)
        runs = await client.read_flow_runs()
    return limit.active_slots, runs


def _chain_published(home: Path) -> str | None:
    """The served mart version when every published ingestion batch is built into a published
    version and every sync has published the served one; None while something is still waiting."""
    from flows.sweep import read_ledger
    from searchflow.contract import SYNC_NAMES

    rows = read_ledger(home)
    published = [r for r in rows if r["state"] == "published"]
    builds = [r for r in published if r["stage"] == "transformation"]
    if not builds:
        return None
    built = {p for r in builds for p in r["parents"] or []}
    if any(r["stage"] == "ingestion" and r["batch_id"] not in built for r in published):
        return None
    version = max(builds, key=lambda r: r["published_at"])["batch_id"]
    synced = {
        r["source"] for r in published if r["stage"] == "sync" and version in (r["parents"] or [])
    }
    return version if synced >= set(SYNC_NAMES) else None


def _wait_recovered(api_url: str, home: Path, faulted: float) -> None:
    """Poll until every published batch went down the chain to the syncs, no run is running or
    pending and the warehouse slot is free (bounded); fail naming the ledger and the runs."""
    from flows.sweep import read_ledger

    deadline = faulted + RECOVERY_BOUND_SECONDS
    version = None
    with api(api_url):
        while time.monotonic() < deadline:
            version = _chain_published(home)
            if version is not None:
                active, runs = asyncio.run(_all_runs_and_slot())
                running = [r for r in runs if r.state_type.value in ("RUNNING", "PENDING")]
                if not active and not running:
                    break
            time.sleep(5)
        active, runs = asyncio.run(_all_runs_and_slot())
    _report_recovery(faulted)
    assert version is not None, (
        f"the chain did not complete within {RECOVERY_BOUND_SECONDS} s of the fault",
        [(r["stage"], r["state"], r["source"], r["batch_id"]) for r in read_ledger(home)],
        [(r.name, r.state_name) for r in runs],
    )
    running = [(r.name, r.state_name) for r in runs if r.state_type.value == "RUNNING"]
    assert running == []
    assert active == 0


def _segments_equal_the_mart(settings: Settings) -> None:
    from searchflow.pii import pii_key, pseudonym
    from searchflow.published import read_mart

    mart = read_mart(settings.home_path, "marketing.mart_user_segments").to_pylist()
    # The mart keys users by pseudonym; the CRM keeps the application's id (docs/governance.md).
    expected = {(r["user_id"], r["segment"], r["total_searches"]) for r in mart}
    con = psycopg2.connect(settings.postgres_url)
    try:
        with con.cursor() as cur:
            cur.execute("SELECT user_id, segment, total_searches FROM crm.user_segments")
            key = pii_key(settings)
            actual = {(pseudonym(key, u), s, n) for u, s, n in cur.fetchall()}
    finally:
        con.close()
    assert expected and actual == expected


def test_server_killed_and_restarted_mid_transform(
    own_server, service_settings, logs_dir, monkeypatch
) -> None:
    """Killed with SIGKILL while transform runs, back 20 s later on the same port and database:
    the running stage rides the outage out on the client's retries (its warehouse lease is in a
    file, so it survives the restart), or fails and the sweeper starts it again; either way the
    chain completes."""
    from deployments.prepare import prepare
    from deployments.server import start_server
    from searchflow.services import pin_services

    api_url, home = own_server.api_url, own_server.home
    port = int(api_url.rsplit(":", 1)[1].split("/")[0])
    monkeypatch.setenv("PREFECT_API_URL", api_url)
    prepared = prepare(api_url, sweeper=True)  # the sweeper backs up a lost event here
    pinned = pin_services(service_settings)
    pin_postgres_block(api_url, pinned)
    worker = start_worker(api_url, pinned.as_env(), logs_dir)
    restarted = None
    try:
        root_id = start_chain(api_url, EVENTS, seed=23)
        _wait_until_running(api_url, root_id, prepared.deployments)
        os.killpg(own_server.process.pid, signal.SIGKILL)
        own_server.process.wait(timeout=30)
        own_server.process = None
        faulted = time.monotonic()
        time.sleep(SERVER_AWAY_SECONDS)
        restarted = start_server(home, port=port, ui=False, timeout=300)
        _wait_recovered(api_url, pinned.home_path, faulted)
    finally:
        worker.stop(timeout=10)
        if restarted is not None:
            restarted.stop()
    _segments_equal_the_mart(pinned)


# The crash detector: heartbeats every 30 s, Crashed after 90 s without one; the bound leaves room
# for a loaded machine and the server's automation loop.
CRASH_SECONDS = 300


async def _run_and_slot(run_id: str) -> tuple[object, int]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        run = await client.read_flow_run(run_id)
        limit = await client.read_global_concurrency_limit_by_name(WAREHOUSE_LIMIT)
    return run, limit.active_slots


def _flow_run_pids(run_id: str) -> list[int]:
    """Every process of ``run_id``: the ones started with its id in their environment, and the
    one writing its log file (a run forked from a fork server keeps the server's environment)."""
    from deployments.worker import flow_run_ids

    pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    found = {p for p, r in flow_run_ids(pids).items() if r == run_id}
    for pid in pids:
        try:
            targets = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:
            continue
        if any(t.endswith(f"/flow-runs/{run_id}.log") for t in targets):
            found.add(pid)
    return sorted(found)


def test_a_killed_flow_run_is_marked_crashed_and_the_sweeper_runs_it_again(
    own_server, service_settings, logs_dir, monkeypatch
) -> None:
    """The worker's group killed first (so no worker sees its child die and reports it), then
    the transform's own process, holding the warehouse slot: only the crash detector that
    ``searchflow deploy`` creates can mark the run, and the slot's lease must lapse. Then a new
    worker: the sweeper finds the ingestion batch with no build and starts the transform again,
    and the chain completes."""
    from deployments.prepare import prepare
    from deployments.resilience import CRASH_AFTER_SECONDS, CRASH_MESSAGE
    from searchflow.services import pin_services

    api_url = own_server.api_url
    monkeypatch.setenv("PREFECT_API_URL", api_url)
    prepared = prepare(api_url, sweeper=True)
    pinned = pin_services(service_settings)
    pin_postgres_block(api_url, pinned)
    worker = start_worker(api_url, pinned.as_env(), logs_dir)
    second = None
    try:
        root_id = start_chain(api_url, EVENTS, seed=24)
        run_id = _wait_until_running(api_url, root_id, prepared.deployments)
        with api(api_url):
            deadline = time.monotonic() + 300
            while asyncio.run(_run_and_slot(run_id))[1] == 0:  # wait until it holds the slot
                assert time.monotonic() < deadline, "transform never took the warehouse slot"
                time.sleep(0.5)
            os.killpg(worker.process.pid, signal.SIGKILL)
            worker.process.wait(timeout=30)
            pids = _flow_run_pids(run_id)
            assert pids, f"no process runs {run_id}"
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            killed = time.monotonic()
            crashed_after = freed_after = None
            while time.monotonic() - killed < CRASH_SECONDS:
                run, active = asyncio.run(_run_and_slot(run_id))
                elapsed = time.monotonic() - killed
                if crashed_after is None and run.state_type.value == "CRASHED":
                    crashed_after = elapsed
                if freed_after is None and active == 0:
                    freed_after = elapsed
                if crashed_after is not None and freed_after is not None:
                    break
                time.sleep(2)
        print(f"killed -> Crashed {crashed_after} s, slot free {freed_after} s")
        assert crashed_after is not None, (run.state_name, run.state.message)
        assert run.state.message == CRASH_MESSAGE.format(seconds=CRASH_AFTER_SECONDS)
        assert freed_after is not None
        second = start_worker(api_url, pinned.as_env(), logs_dir)
        _wait_recovered(api_url, pinned.home_path, killed)
    finally:
        for each in (worker, second):
            if each is not None:
                each.stop(timeout=10)
    _segments_equal_the_mart(pinned)
