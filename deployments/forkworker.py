"""A process worker whose flow runs start from a fork server instead of a cold interpreter.

Built on Prefect's public worker API: :class:`ForkServerWorker` is Prefect's ``ProcessWorker`` (the
pool stays a ``process`` pool; polling, heartbeats, submission, concurrency, cancellation and crash
reporting are all Prefect's) with one change, the command each flow run's process runs. Where a
run's job configuration names no command of its own, the command is :mod:`deployments.forkclient`
(a standard-library script that starts in milliseconds) instead of ``python -m prefect.engine``; the
client has the fork server (:mod:`deployments.forkserver`) fork a pre-imported interpreter into the
engine, and stands in for that process towards the worker (pid, signals, exit code).

``python -m deployments.forkworker --pool P --name N`` starts the fork server first (a process of
its own, started before any thread of this one), then the worker, as ``prefect worker start --type
process`` would. Once the project's code changed on disk, the fork server retires (it frees its
socket and ends when its runs have) and the worker starts a fresh one, which imports the new code.
Without a fork server (it failed to start, or is being replaced) each run starts cold, as with
Prefect's own worker. ``SEARCHFLOW_FORKSERVER=0`` skips the fork server altogether.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

from deployments import PROJECT_DIR
from deployments.forkclient import SOCKET_ENV
from deployments.forkserver import READY_LINE

CLIENT = Path(__file__).with_name("forkclient.py")
# A loaded machine imports Prefect and the flows in many seconds: leave room before giving up.
FORKSERVER_START_SECONDS = 120.0
ENABLED_ENV = "SEARCHFLOW_FORKSERVER"
# How often the worker checks that a fork server listens (one retires when the code changed).
KEEPER_SECONDS = 1.0
RETRY_SECONDS = 60.0


def client_command() -> str:
    """The flow-run command: this interpreter running the client script without ``site``."""
    from prefect.utilities.processutils import command_to_string

    return command_to_string([sys.executable, "-S", str(CLIENT)])


def worker_class() -> type:
    """``ForkServerWorker`` (built on first use: defining it imports Prefect's worker)."""
    from prefect.workers.process import ProcessJobConfiguration, ProcessWorker

    class ForkServerJobConfiguration(ProcessJobConfiguration):
        """Prefect's process job configuration; a run without a command of its own gets the fork
        client's."""

        def prepare_for_flow_run(self, flow_run: Any, *args: Any, **kwargs: Any) -> None:
            if self.command is None and os.environ.get(SOCKET_ENV):
                self.command = client_command()
            super().prepare_for_flow_run(flow_run, *args, **kwargs)

    with warnings.catch_warnings():
        # same ``process`` type as Prefect's worker: it serves process pools, and replaces
        # Prefect's class in this process's worker registry (a warning says so)
        warnings.simplefilter("ignore")

        class ForkServerWorker(ProcessWorker):
            """Prefect's process worker, starting runs through the fork server."""

            type = "process"
            job_configuration = ForkServerJobConfiguration

    return ForkServerWorker


def start_forkserver(socket_path: Path) -> subprocess.Popen | None:
    """Start the fork server and wait for its ready line; None (runs start cold) if it fails.
    Its errors go to this worker's stderr (the worker's log)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "deployments.forkserver", "--socket", str(socket_path)],
        cwd=PROJECT_DIR,
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + FORKSERVER_START_SECONDS
    assert process.stdout is not None
    line = b""
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line or line.decode().startswith(READY_LINE):
            break
    if not line.decode().startswith(READY_LINE):
        print(
            "the fork server did not start (its error is above); flow runs start cold",
            file=sys.stderr,
            flush=True,
        )
        process.kill()
        process.wait()
        return None
    print(line.decode().strip(), flush=True)
    process.stdout.close()
    return process


async def run_worker(pool: str, name: str) -> None:
    """Run the worker as ``prefect worker start`` does (same settings, same signal handling)."""
    from prefect.settings import (
        PREFECT_WORKER_HEARTBEAT_SECONDS,
        PREFECT_WORKER_PREFETCH_SECONDS,
    )
    from prefect.utilities.processutils import setup_signal_handlers_worker

    setup_signal_handlers_worker(os.getpid(), "the fork-server process worker", print)
    worker = worker_class()(
        name=name,
        work_pool_name=pool,
        prefetch_seconds=PREFECT_WORKER_PREFETCH_SECONDS.value(),
        heartbeat_interval_seconds=int(PREFECT_WORKER_HEARTBEAT_SECONDS.value()),
    )
    try:
        await worker.start(run_once=False, with_healthcheck=False, printer=print)
    except asyncio.CancelledError:
        print(f"Worker {name!r} stopped!", flush=True)


class ForkServers:
    """The fork server on one socket path, started again whenever that path is free: a server
    whose preloaded code went stale leaves it (and ends once its own runs have), so the next one
    imports the current code. Started servers are stopped by :meth:`stop`."""

    def __init__(self, socket_path: Path, check_seconds: float = KEEPER_SECONDS) -> None:
        self.socket_path = socket_path
        self.check_seconds = check_seconds
        self.started: list[subprocess.Popen] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._keep, name="forkserver-keeper", daemon=True)

    def start(self) -> bool:
        """Start the first server (True when it is ready) and keep one up from then on."""
        server = start_forkserver(self.socket_path)
        if server is None:
            return False
        self.started.append(server)
        self.thread.start()
        return True

    def _keep(self) -> None:
        while not self.stopping.wait(self.check_seconds):
            self.started = [p for p in self.started if p.poll() is None]
            if not self.socket_path.exists():
                server = start_forkserver(self.socket_path)
                if server is None:  # runs start cold meanwhile; try again later
                    self.stopping.wait(RETRY_SECONDS)
                else:
                    self.started.append(server)

    def stop(self) -> None:
        self.stopping.set()
        for server in self.started:
            server.terminate()
        for server in self.started:
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def main(argv: list[str] | None = None) -> int:
    """``python -m deployments.forkworker --pool P --name N``: fork server, then the worker."""
    parser = argparse.ArgumentParser(
        prog="python -m deployments.forkworker", description=main.__doc__
    )
    parser.add_argument("--pool", required=True)
    parser.add_argument("--name", required=True)
    args = parser.parse_args(argv)
    servers = None
    with tempfile.TemporaryDirectory(prefix="searchflow-forkserver-") as tmp:
        if os.environ.get(ENABLED_ENV, "1") != "0":
            servers = ForkServers(Path(tmp) / "fork.sock")
            if servers.start():
                os.environ[SOCKET_ENV] = str(servers.socket_path)
        try:
            asyncio.run(run_worker(args.pool, args.name))
        except KeyboardInterrupt:
            pass
        finally:
            if servers is not None:
                servers.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
