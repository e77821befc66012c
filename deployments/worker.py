"""A process worker for the SearchFlow pool, tuned for quick pick-up, started and stopped from Python.

A process worker polls every 10 s by default; this one polls twice a second, and starts each flow
run from a pre-imported fork server instead of a cold interpreter (:mod:`deployments.forkworker`;
``SEARCHFLOW_FORKSERVER=0`` runs Prefect's own ``prefect worker start`` instead). Flow runs inherit
the worker's environment, so the SearchFlow settings given here (resolved Postgres/Redis URLs,
SEARCHFLOW_HOME) reach every stage of the chain.

Stopping. Prefect's process worker stops within seconds of a SIGTERM, but the flow runs it started
are killed without a word: their runs stay Running in the UI (until the crash-detection automation
marks them Crashed) and nothing runs them again. So the worker runs under a small supervisor
(``python -m deployments.worker``, :func:`main`): on SIGTERM it notes the flow runs in progress (each
flow-run process carries its run id in its environment), stops the worker and those processes, and
hands each unfinished run back: ``AwaitingRetry``, which the next worker picks up. The stages are
idempotent, so a run that starts again loses and doubles nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from deployments import DEFAULT_POOL, PROJECT_DIR
from deployments.background import pid_alive
from deployments.forkworker import ENABLED_ENV as FORKSERVER_ENV
from deployments.logs import write_logging_config
from deployments.resilience import FLOW_RUN_ENV
from deployments.server import prefect_command, stop_process_group
from searchflow.errors import ServiceUnavailable

# The worker's own heartbeat stays at Prefect's default: each one is a write to the server's
# database, and on SQLite frequent ones collide with the event writes ("database is locked" in the
# server log). Polling does not write, so it can be quick.
QUICK_PICKUP = {
    "PREFECT_WORKER_QUERY_SECONDS": "0.5",
    "PREFECT_WORKER_PREFETCH_SECONDS": "5",
}


def worker_env(
    api_url: str, settings_env: Mapping[str, str], base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The worker's environment: the API, quick polling, the project folder and SearchFlow settings."""
    env = {k: v for k, v in (os.environ if base is None else base).items()}
    env.update(QUICK_PICKUP)
    env.update(
        {
            **FLOW_RUN_ENV,
            "PREFECT_API_URL": api_url,
            "SEARCHFLOW_PROJECT_DIR": str(PROJECT_DIR),
        }
    )
    env.update(settings_env)
    keep_bytecode(env)
    return env


def keep_bytecode(env: dict[str, str]) -> None:
    """Let the worker, the fork server and cold-started runs cache compiled bytecode.

    With ``PYTHONDONTWRITEBYTECODE`` set (and an install that compiled nothing) every new interpreter
    compiles Prefect, pydantic, dbt and GX from source again, seconds each time. The cache goes
    to ``$SEARCHFLOW_HOME/cache/pycache`` (``PYTHONPYCACHEPREFIX``), never beside the sources, which
    is what that variable is usually set to avoid; a prefix the user chose is left alone.
    """
    home = env.get("SEARCHFLOW_HOME")
    if not env.get("PYTHONDONTWRITEBYTECODE") or env.get("PYTHONPYCACHEPREFIX") or not home:
        return
    env.pop("PYTHONDONTWRITEBYTECODE")
    env["PYTHONPYCACHEPREFIX"] = str(Path(home) / "cache" / "pycache")


HAND_BACK_MESSAGE = "handed back: its worker stopped before the run ended; the next worker runs it"
# How long the supervisor gives the worker (and then the flow runs) to stop before killing them.
STOP_SECONDS = 10.0


@dataclass
class Worker:
    """A running worker: the supervisor (:func:`main`) and its ``prefect worker start`` child, in
    a process group of their own."""

    name: str
    pool: str
    process: subprocess.Popen
    log_path: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the worker and the flow-run processes it started.

        SIGTERM to the supervisor alone first: it hands the unfinished runs back. Prefect starts
        each flow-run process in a session of its own, so whatever is still alive afterwards is
        found as the worker's descendants and stopped too.
        """
        children = descendants(self.process.pid)
        if self.process.poll() is None:
            with suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
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

    def send(pid: int, sig: int) -> None:
        with suppress(ProcessLookupError, PermissionError):  # gone already, or not ours
            if os.getpgid(pid) == pid:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)

    remaining = [p for p in pids if pid_alive(p)]
    for pid in remaining:
        send(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while remaining and time.monotonic() < deadline:
        time.sleep(0.2)
        remaining = [p for p in remaining if pid_alive(p)]
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
    env = worker_env(api_url, settings_env)
    # every flow run's logs also go to a file under the data folder (deployments.logs)
    env["PREFECT_LOGGING_SETTINGS_PATH"] = str(write_logging_config(log_dir))
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "deployments.worker", "--pool", pool, "--name", name],
            env=env,
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
    from deployments.prepare import api

    async def seen() -> bool:
        from prefect.client.orchestration import get_client
        from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

        async with get_client() as client:
            try:
                workers = await client.read_workers_for_work_pool(worker.pool)
            except (ObjectNotFound, PrefectHTTPStatusError) as exc:
                # a worker creates a missing pool when it starts: not there yet
                if getattr(getattr(exc, "response", None), "status_code", 404) != 404:
                    raise
                return False
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


def flow_run_ids(pids: list[int]) -> dict[int, str]:
    """The flow run each process runs, from ``PREFECT__FLOW_RUN_ID`` in its environment."""
    out: dict[int, str] = {}
    for pid in pids:
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for item in environ:
            if item.startswith(b"PREFECT__FLOW_RUN_ID="):
                out[pid] = item.partition(b"=")[2].decode()
    return out


async def hand_back(flow_run_ids: list[str], message: str = HAND_BACK_MESSAGE) -> list[str]:
    """Put every run that has not ended by itself back in line (``AwaitingRetry``, which a worker
    picks up again); a run that completed, failed or was cancelled meanwhile is left alone.
    Returns the ids handed back."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import StateType
    from prefect.states import AwaitingRetry

    unfinished = {StateType.RUNNING, StateType.PENDING, StateType.CRASHED, StateType.CANCELLING}
    handed: list[str] = []
    async with get_client() as client:
        for run_id in dict.fromkeys(flow_run_ids):
            run = await client.read_flow_run(run_id)
            if run.state is None or run.state.type not in unfinished:
                continue
            await client.set_flow_run_state(run_id, AwaitingRetry(message=message), force=True)
            handed.append(run_id)
    return handed


def supervise(command: list[str], stop_seconds: float = STOP_SECONDS) -> int:
    """Run the worker ``command``; on SIGTERM or SIGINT stop it and hand its runs back."""
    stopping: list[int] = []
    child = subprocess.Popen(command, stdin=subprocess.DEVNULL)

    def on_signal(signum: int, _frame: object) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while child.poll() is None and not stopping:
        time.sleep(0.2)
    if not stopping:
        return child.returncode
    runs = descendants(child.pid)
    ids = flow_run_ids(runs)
    with suppress(ProcessLookupError):
        child.send_signal(signal.SIGTERM)
    try:
        child.wait(stop_seconds)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
    stop_pids(runs, stop_seconds)
    if ids:
        try:
            handed = asyncio.run(hand_back(list(ids.values())))
        except Exception as exc:  # the API is away: the crash detector marks them instead
            print(f"could not hand back {len(ids)} run(s): {exc}", file=sys.stderr, flush=True)
        else:
            print(f"handed back {len(handed)} run(s): {', '.join(handed)}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m deployments.worker --pool P --name N``: a process worker under supervision."""
    parser = argparse.ArgumentParser(prog="python -m deployments.worker", description=main.__doc__)
    parser.add_argument("--pool", default=DEFAULT_POOL)
    parser.add_argument("--name", required=True)
    args = parser.parse_args(argv)
    if os.environ.get(FORKSERVER_ENV, "1") == "0":
        command = prefect_command(
            "worker", "start", "--pool", args.pool, "--name", args.name, "--type", "process"
        )
    else:
        command = [
            sys.executable,
            "-m",
            "deployments.forkworker",
            "--pool",
            args.pool,
            "--name",
            args.name,
        ]
    return supervise(command)


if __name__ == "__main__":
    sys.exit(main())
