"""What the demo leaves running, and how ``searchflow stop`` ends exactly that.

``searchflow demo`` starts the Prefect server, the worker and the dashboards in sessions of their
own and records each one's process id (the leader of its process group), address and log in
``$SEARCHFLOW_HOME/demo/processes.json``. A second demo reuses a recorded process that is still
alive and still answers; ``searchflow stop`` signals only the recorded groups (SIGTERM, then
SIGKILL after a grace period), never a process found by its name, so a server or worker someone
started by hand is left alone.
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

# Order in which ``stop`` ends them: the worker first (it hands unfinished runs back to the
# server, which must still answer), then the readers, the server last.
STOP_ORDER: tuple[str, ...] = ("worker", "dashboard", "server")
GRACE_SECONDS = 20.0


def state_path(home: Path) -> Path:
    """The record of what the demo left running."""
    return home / "demo" / "processes.json"


def load(home: Path) -> dict[str, dict[str, Any]]:
    """The recorded processes by role (empty when nothing was recorded or the file is unreadable)."""
    try:
        data = json.loads(state_path(home).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(home: Path, data: dict[str, dict[str, Any]]) -> None:
    path = state_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def record(home: Path, role: str, pid: int, **info: Any) -> None:
    """Remember that the demo left ``pid`` (a process-group leader) running as ``role``."""
    data = load(home)
    data[role] = {"pid": int(pid), "started_at": time.time(), **info}
    _write(home, data)


def forget(home: Path, role: str) -> None:
    data = load(home)
    if data.pop(role, None) is not None:
        _write(home, data)


def pid_alive(pid: int) -> bool:
    """True when ``pid`` runs (a zombie does not count)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process reuses the number: not ours
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def url_answers(url: str, timeout: float = 3.0) -> bool:
    """True when ``url`` answers an HTTP GET with a status below 500."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status < 500
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except (urllib.error.URLError, OSError, ValueError):
        return False


def reusable(home: Path, role: str, probe: Callable[[dict[str, Any]], bool]) -> dict | None:
    """The recorded ``role`` when its process is alive and ``probe`` accepts it; else None."""
    entry = load(home).get(role)
    if not entry or not pid_alive(int(entry.get("pid", 0))):
        return None
    return entry if probe(entry) else None


def _group_alive(pgid: int) -> bool:
    """True while a process of group ``pgid`` runs (zombies, e.g. a leader whose parent has not
    reaped it yet, do not count)."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def stop_group(pid: int, grace: float = GRACE_SECONDS) -> str:
    """SIGTERM the process group ``pid`` leads, SIGKILL what is left after ``grace`` seconds.

    Returns what happened: ``not running``, ``stopped`` or ``killed``. Only a group whose leader
    still is ``pid`` is signalled (a recycled number in someone else's group is left alone); the
    worker's flow-run processes, which Prefect starts in sessions of their own, are stopped by the
    worker's supervisor on SIGTERM and, should it be killed, found as its descendants.
    """
    from deployments.worker import descendants, stop_pids

    if not pid_alive(pid):
        return "not running"
    try:
        leads_group = os.getpgid(pid) == pid
    except ProcessLookupError:
        return "not running"
    children = descendants(pid)
    with suppress(ProcessLookupError, PermissionError):
        if leads_group:
            # the worker's supervisor alone first: it hands unfinished runs back, then stops its
            # group itself; everyone else gets the group signal at once
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    outcome = "stopped"
    if leads_group and _group_alive(pid):
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
        # the rest of the group gets a grace of its own once the leader is gone
        deadline = max(deadline, time.monotonic() + min(grace, 5.0))
        while _group_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _group_alive(pid):
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            outcome = "killed"
    elif pid_alive(pid):
        with suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
        outcome = "killed"
    stop_pids([c for c in children if pid_alive(c)], timeout=max(1.0, deadline - time.monotonic()))
    return outcome


def stop_all(home: Path, grace: float = GRACE_SECONDS) -> dict[str, dict[str, Any]]:
    """Stop everything the demo recorded under ``home``; returns role -> {pid, outcome, url}."""
    data = load(home)
    report: dict[str, dict[str, Any]] = {}
    roles = [r for r in STOP_ORDER if r in data] + [r for r in data if r not in STOP_ORDER]
    for role in roles:
        entry = data[role]
        pid = int(entry.get("pid", 0))
        report[role] = {"pid": pid, "url": entry.get("url"), "outcome": stop_group(pid, grace)}
        forget(home, role)
    return report
