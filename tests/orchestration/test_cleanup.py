"""Stopping a worker also stops the flow-run processes it started in sessions of their own."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from deployments.background import pid_alive as _alive
from deployments.worker import Worker, descendants

# a "worker" that starts a "flow run" in its own session (as Prefect does), then waits
SCRIPT = (
    "import subprocess, sys, time\n"
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'], start_new_session=True)\n"
    "time.sleep(300)\n"
)


def test_stop_reaches_runs_in_their_own_session(tmp_path: Path) -> None:
    process = subprocess.Popen([sys.executable, "-c", SCRIPT], start_new_session=True)
    worker = Worker(name="w", pool="p", process=process, log_path=tmp_path / "w.log")
    try:
        deadline = time.monotonic() + 30
        while not descendants(process.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        (child,) = descendants(process.pid)
    finally:
        worker.stop(timeout=5)
    assert process.poll() is not None
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child)
