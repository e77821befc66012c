"""A process worker for the SearchFlow pool, tuned for quick pick-up, started and stopped from Python.

A process worker polls every 10 s by default; with ``PREFECT_WORKER_QUERY_SECONDS=1`` a trigger hop
(event emitted -> next flow running) costs about the time a fresh Python process needs to import
Prefect and the flow. Flow runs inherit the worker's environment, so the SearchFlow settings given
here (resolved Postgres/Redis URLs, SEARCHFLOW_HOME) reach every stage of the chain.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from deployments import DEFAULT_POOL, PROJECT_DIR
from deployments.server import prefect_command, stop_process_group
from searchflow.errors import ServiceUnavailable

QUICK_PICKUP = {
    "PREFECT_WORKER_QUERY_SECONDS": "1",
    "PREFECT_WORKER_PREFETCH_SECONDS": "5",
    "PREFECT_WORKER_HEARTBEAT_SECONDS": "5",
}


def worker_env(
    api_url: str, settings_env: Mapping[str, str], base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The worker's environment: the API, quick polling, the project folder and SearchFlow settings."""
    env = {k: v for k, v in (os.environ if base is None else base).items()}
    env.update(QUICK_PICKUP)
    env.update(
        {
            "PREFECT_API_URL": api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "SEARCHFLOW_PROJECT_DIR": str(PROJECT_DIR),
        }
    )
    env.update(settings_env)
    return env


@dataclass
class Worker:
    """A running ``prefect worker start`` process (its own process group)."""

    name: str
    pool: str
    process: subprocess.Popen
    log_path: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the worker and the flow-run processes it started.

        Prefect starts each flow-run process in a session of its own, so stopping the worker's
        group is not enough when a run is still going (a failed or timed-out chain): the flow-run
        processes are found first, as the worker's descendants, and stopped after it.
        """
        children = descendants(self.process.pid)
        stop_process_group(self.process, timeout)
        stop_pids(children, timeout)

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, grandchildren...), found through /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else []:
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def stop_pids(pids: list[int], timeout: float = 20.0) -> None:
    """SIGTERM each process (and its group when it leads one) still alive, then SIGKILL."""
    import signal

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        try:  # a zombie whose parent is gone is not worth waiting for
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    def send(pid: int, sig: int) -> None:
        with suppress(ProcessLookupError, PermissionError):  # gone already, or not ours
            if os.getpgid(pid) == pid:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)

    remaining = [p for p in pids if alive(p)]
    for pid in remaining:
        send(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while remaining and time.monotonic() < deadline:
        time.sleep(0.2)
        remaining = [p for p in remaining if alive(p)]
    for pid in remaining:
        send(pid, signal.SIGKILL)


def start_worker(
    api_url: str,
    settings_env: Mapping[str, str],
    log_dir: Path,
    pool: str = DEFAULT_POOL,
    name: str | None = None,
    ready_timeout: float = 120.0,
) -> Worker:
    """Start a process worker on ``pool`` and wait until the server has seen its heartbeat."""
    name = name or f"searchflow-{os.getpid()}-{int(time.time())}"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"worker-{name}.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            prefect_command("worker", "start", "--pool", pool, "--name", name, "--type", "process"),
            env=worker_env(api_url, settings_env),
            cwd=PROJECT_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    worker = Worker(name=name, pool=pool, process=process, log_path=log_path)
    try:
        wait_worker_ready(api_url, worker, ready_timeout)
    except BaseException:
        worker.stop()
        raise
    return worker


def wait_worker_ready(api_url: str, worker: Worker, timeout: float) -> None:
    """Poll the API until the worker appears in its pool (first heartbeat)."""
    import asyncio

    from deployments.prepare import api

    async def seen() -> bool:
        from prefect.client.orchestration import get_client

        async with get_client() as client:
            workers = await client.read_workers_for_work_pool(worker.pool)
        return any(w.name == worker.name for w in workers)

    deadline = time.monotonic() + timeout
    with api(api_url):
        while time.monotonic() < deadline:
            if not worker.alive():
                raise ServiceUnavailable(
                    f"the Prefect worker exited with code {worker.process.returncode}; "
                    f"see {worker.log_path}"
                )
            if asyncio.run(seen()):
                return
            time.sleep(0.5)
    raise ServiceUnavailable(
        f"the Prefect worker did not check in within {timeout:.0f} s; see {worker.log_path}"
    )
