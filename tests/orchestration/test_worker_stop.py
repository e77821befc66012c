"""The worker's supervisor: on SIGTERM it stops the worker and the flow runs it started within
seconds, and hands the unfinished runs back (no Prefect server: the API is away here, which the
supervisor reports in one line instead of hanging)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from deployments.background import pid_alive as _alive
from deployments.server import free_port
from deployments.worker import descendants, flow_run_ids
from tests.orchestration.waiting import wait_for as _wait_for

RUN_ID = "00000000-0000-4000-8000-000000000001"
# a "worker" that starts a "flow run" in a session of its own (as Prefect does), then waits
WORKER = (
    "import os, subprocess, sys, time\n"
    f"env = dict(os.environ, PREFECT__FLOW_RUN_ID='{RUN_ID}')\n"
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'], env=env,"
    " start_new_session=True)\n"
    "time.sleep(300)\n"
)
SUPERVISOR = (
    "import sys\n"
    "from deployments.worker import supervise\n"
    f"sys.exit(supervise([sys.executable, '-c', {WORKER!r}], stop_seconds=5))\n"
)


def test_flow_run_ids_come_from_the_run_environment() -> None:
    env = dict(os.environ, PREFECT__FLOW_RUN_ID=RUN_ID)
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env)
    try:
        # right after the fork the child still has our environment; after its exec, its own
        assert _wait_for(lambda: flow_run_ids([process.pid]) == {process.pid: RUN_ID}, 30)
        assert flow_run_ids([os.getpid()]) == {}
    finally:
        process.kill()
        process.wait()


def test_sigterm_stops_worker_and_runs_within_seconds() -> None:
    env = dict(os.environ, PREFECT_API_URL=f"http://127.0.0.1:{free_port()}/api")
    supervisor = subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert _wait_for(lambda: len(descendants(supervisor.pid)) >= 2, 60)
        runs = flow_run_ids(descendants(supervisor.pid))
        assert list(runs.values()) == [RUN_ID]
        started = time.monotonic()
        supervisor.send_signal(signal.SIGTERM)
        out, err = supervisor.communicate(timeout=60)
        assert time.monotonic() - started < 20
    finally:
        if supervisor.poll() is None:
            os.killpg(supervisor.pid, signal.SIGKILL)
    assert supervisor.returncode == 0
    (run_pid,) = runs
    assert _wait_for(lambda: not _alive(run_pid), 10)  # the run was not orphaned
    assert "could not hand back 1 run(s)" in err  # the API is away: said in one line


def test_bytecode_is_cached_under_the_data_folder_when_the_environment_forbids_writing_it() -> None:
    from deployments.worker import worker_env

    home = "/tmp/searchflow-home"
    env = worker_env("http://x/api", {"SEARCHFLOW_HOME": home}, {"PYTHONDONTWRITEBYTECODE": "1"})
    assert "PYTHONDONTWRITEBYTECODE" not in env
    assert env["PYTHONPYCACHEPREFIX"] == f"{home}/cache/pycache"
    chosen = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": "/mine"}
    env = worker_env("http://x/api", {"SEARCHFLOW_HOME": home}, chosen)
    assert env["PYTHONPYCACHEPREFIX"] == "/mine"  # the user's own prefix wins
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert "PYTHONPYCACHEPREFIX" not in worker_env("http://x/api", {"SEARCHFLOW_HOME": home}, {})
