"""The demo's own parts, without a Prefect server: a new batch per run over a window that ends
yesterday, its own Postgres database, and what it leaves running stopped by recorded process
group only (real processes, a real PostgreSQL)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg2
import pytest

from deployments import background
from deployments.demo import (
    DEMO_DAYS,
    SPILL_DAYS,
    choose_generation,
    demo_database,
    demo_window,
    with_database,
)
from searchflow.errors import UsageError


def test_each_run_takes_the_next_seed_over_a_window_ending_yesterday(home: Path) -> None:
    today = date(2026, 3, 1)
    first = choose_generation(home, events=500, users=50, today=today)
    second = choose_generation(home, events=500, users=50, today=today)
    assert (first["seed"], second["seed"]) == (1, 2)
    start = date.fromisoformat(first["start"])
    # the searches stop early enough that the bookings they lead to end by yesterday
    assert start + timedelta(days=first["days"] + SPILL_DAYS) == today
    assert first["days"] == DEMO_DAYS
    chosen = choose_generation(home, seed=7, today=today)
    assert chosen["seed"] == 7
    assert choose_generation(home, today=today)["seed"] == 8  # after the highest seed recorded
    recorded = json.loads((home / "demo.json").read_text())
    assert [r["seed"] for r in recorded["runs"]] == [1, 2, 7, 8]
    assert recorded["last"]["seed"] == 8


def test_bookings_of_the_last_searched_day_stay_in_the_past() -> None:
    """A booking 72 hours (the generator's longest delay) after a click late on the last searched
    day still falls before today."""
    today = date(2026, 3, 1)
    start, days = demo_window(today)
    last_click = datetime.combine(start + timedelta(days=days), datetime.min.time(), UTC)
    latest_booking = last_click + timedelta(hours=72, minutes=30)
    assert latest_booking < datetime.combine(today, datetime.min.time(), UTC)


def test_the_demo_batch_is_reproducible_and_never_in_the_future(home: Path) -> None:
    from generator import build, config_from_options

    chosen = choose_generation(home, events=400, users=40)
    batches = [build(config_from_options(**chosen)) for _ in range(2)]
    assert batches[0].batch_id == batches[1].batch_id
    assert batches[0].to_arrow("search").equals(batches[1].to_arrow("search"))
    latest = max(
        max(batch.to_arrow(kind).column("timestamp").to_pylist())
        for batch in batches[:1]
        for kind in ("search", "click", "conversion")
    )
    assert latest.date() < datetime.now(UTC).date()  # by yesterday (UTC), never in the future
    another = build(config_from_options(**choose_generation(home, events=400, users=40)))
    assert another.batch_id != batches[0].batch_id  # the next run is a new batch


@pytest.fixture
def admin_url(postgres_admin_url: str) -> str:
    return postgres_admin_url


def test_the_demo_database_is_created_once(admin_url: str) -> None:
    name = f"sf_demo_{uuid.uuid4().hex[:8]}"
    try:
        url, created = demo_database(admin_url, name)
        assert created and url == with_database(admin_url, name)
        psycopg2.connect(url).close()
        assert demo_database(admin_url, name) == (url, False)
    finally:
        con = psycopg2.connect(admin_url)
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        con.close()


def test_a_role_that_may_not_create_databases_is_told_what_to_run(admin_url: str) -> None:
    role = f"sf_nocreate_{uuid.uuid4().hex[:8]}"
    con = psycopg2.connect(admin_url)
    con.autocommit = True
    try:
        with con.cursor() as cur:
            cur.execute(f'CREATE ROLE "{role}" LOGIN NOCREATEDB')
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(admin_url)
        netloc = f"{role}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        url = urlunsplit(parts._replace(netloc=netloc))
        name = f"sf_demo_{uuid.uuid4().hex[:8]}"
        with pytest.raises(UsageError) as exc:
            demo_database(url, name)
        message = str(exc.value)
        assert f"CREATE DATABASE {name} OWNER {role}" in message
        assert "SEARCHFLOW_POSTGRES_URL" in message
    finally:
        with con.cursor() as cur:
            cur.execute(f'DROP ROLE IF EXISTS "{role}"')
        con.close()


def _spawn(script: str) -> subprocess.Popen:
    """A process group of its own: a shell that started a child, like the server or the worker."""
    return subprocess.Popen(
        ["bash", "-c", script],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )


def _gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not background.pid_alive(pid):
            return True
        time.sleep(0.1)
    return False


def _children(pid: int) -> list[int]:
    from deployments.worker import descendants

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = descendants(pid)
        if found:
            return found
        time.sleep(0.1)
    return []


def test_stop_ends_the_recorded_groups_and_nothing_else(home: Path) -> None:
    recorded = _spawn("sleep 300 & wait")
    stubborn = _spawn("trap '' TERM; sleep 300 & wait; sleep 300")
    stranger = _spawn("sleep 300 & wait")  # not recorded: someone else's
    try:
        children = _children(recorded.pid) + _children(stubborn.pid)
        background.record(home, "server", recorded.pid, url="http://127.0.0.1:1")
        background.record(home, "worker", stubborn.pid)
        assert set(background.load(home)) == {"server", "worker"}
        report = background.stop_all(home, grace=2)
        assert report["server"]["outcome"] == "stopped"
        assert report["worker"]["outcome"] == "killed"  # ignored SIGTERM
        recorded.wait(10)
        stubborn.wait(10)
        assert all(_gone(pid) for pid in children)
        assert background.load(home) == {}
        assert stranger.poll() is None
        # a second stop has nothing left to do
        assert background.stop_all(home) == {}
    finally:
        for process in (recorded, stubborn, stranger):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def test_a_dead_recorded_pid_is_not_reused_nor_signalled(home: Path) -> None:
    process = _spawn("exit 0")
    process.wait()
    background.record(home, "dashboard", process.pid, url="http://127.0.0.1:1")
    assert background.reusable(home, "dashboard", lambda _e: True) is None
    assert background.stop_all(home)["dashboard"]["outcome"] == "not running"


def test_reusable_needs_a_live_process_that_answers(home: Path) -> None:
    process = _spawn("sleep 300")
    try:
        background.record(home, "server", process.pid, api_url="http://127.0.0.1:1/api")
        assert background.reusable(home, "server", lambda _e: False) is None
        assert background.reusable(home, "server", lambda _e: True)["pid"] == process.pid
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_searchflow_stop_through_the_cli(home: Path) -> None:
    process = _spawn("sleep 300")
    background.record(home, "dashboard", process.pid, url="http://localhost:1")
    env = {**os.environ, "SEARCHFLOW_HOME": str(home)}
    result = subprocess.run(
        [sys.executable, "-m", "searchflow.cli", "stop", "--json", "--grace", "5"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["stopped"]["dashboard"]["outcome"] == "stopped"
    process.wait(10)
    again = subprocess.run(
        [sys.executable, "-m", "searchflow.cli", "stop"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert again.returncode == 0 and "nothing to stop" in again.stdout
