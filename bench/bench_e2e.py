"""End to end at volume: every stage as its own process, gated, with its wall time and peak RSS.

The chain is what a user runs by hand: ``searchflow generate`` (one batch of every event, built
and written in parts of ``generator.config.PART_EVENTS``), ``searchflow ingest --source jsonl``,
``searchflow transform`` and ``searchflow sync all``, every one of them gated (flows/gated.py).
Each process runs under ``/usr/bin/time -v`` and its "Maximum resident set size" is the row's
peak RSS: the whole process, Python, Arrow and DuckDB together; its user + system time is the
row's CPU seconds (the machine may be shared: CPU seconds compare across loads, wall time does
not). Without that program the child's ``ru_maxrss`` and CPU times from ``os.wait4`` are the same
figures.

Sizes: 10M events (``--scale`` scales it). 50M events only when ``SEARCHFLOW_BENCH_E2E_50M=1``;
that run needs about 40 GB of free disk where the bench writes (``SEARCHFLOW_BENCH_DIR``, else the
system's temp folder) and is skipped, with a row saying so, when there is less.

Everything lives in a scratch home, a scratch PostgreSQL database and a Redis logical database
(``SEARCHFLOW_BENCH_E2E_REDIS_DB``), removed afterwards.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from bench import Row, drop_scratch_database, scratch_database, scratch_redis

AREA = "e2e"
EVENTS = 10_000_000
LARGE_EVENTS = 50_000_000
LARGE_FLAG = "SEARCHFLOW_BENCH_E2E_50M"
LARGE_DISK_BYTES = 40 * 10**9
DAYS = 90
RSS_GOAL = "peak RSS <= 2 GB"
TIME = "/usr/bin/time"
START = date(2025, 1, 1)


class StageFailed(Exception):
    """A stage exited non-zero: the rows measured before it, and its error's last line."""

    def __init__(self, rows: list[Row], exc: Exception) -> None:
        super().__init__(str(exc))
        self.rows = rows
        self.reason = str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else "failed"


def peak_rss_from_time(report: str) -> int | None:
    """Bytes of ``/usr/bin/time -v``'s "Maximum resident set size (kbytes)" line, if present."""
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", report)
    return int(match.group(1)) * 1024 if match else None


def cpu_from_time(report: str) -> float:
    """User plus system seconds of a ``/usr/bin/time -v`` report."""
    return sum(
        float(m.group(1))
        for m in re.finditer(r"(?:User|System) time \(seconds\): ([\d.]+)", report)
    )


Measured = tuple[float, int, float]  # wall seconds, peak RSS bytes, CPU seconds


def measure(argv: list[str], env: dict[str, str]) -> Measured:
    """Run one stage process under ``/usr/bin/time -v``: (wall seconds, peak RSS, CPU seconds)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        started = time.perf_counter()
        proc = subprocess.run(
            [TIME, "-v", "-o", report.name, *argv], env=env, capture_output=True, text=True
        )
        wall = time.perf_counter() - started
        text = Path(report.name).read_text()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[1:3])} exited {proc.returncode}: {proc.stderr[-500:]}")
    return wall, peak_rss_from_time(text) or 0, cpu_from_time(text)


def _measure_without_time(argv: list[str], env: dict[str, str]) -> Measured:
    """The ``os.wait4`` way, for a machine without ``/usr/bin/time``."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[1:3])} exited {proc.returncode}")
    cpu = usage.ru_utime + usage.ru_stime
    return time.perf_counter() - started, usage.ru_maxrss * 1024, cpu


def _run(argv: list[str], env: dict[str, str]) -> Measured:
    if Path(TIME).exists():
        return measure(argv, env)
    return _measure_without_time(argv, env)


def _batches(events: int) -> list[tuple[int, date, int]]:
    """(events, start, days) per generated batch: one batch of every event over :data:`DAYS`
    (below the generator's cap; above it, batches of at most the cap, each its own stretch of
    time)."""
    from generator.config import MAX_EVENTS

    count = -(-events // MAX_EVENTS)
    days = max(DAYS // count, 1)
    sizes = [events // count + (1 if i < events % count else 0) for i in range(count)]
    return [(n, START + timedelta(days=i * days), days) for i, n in enumerate(sizes)]


def chain(events: int, root: Path, label: str) -> list[Row]:
    """Generate, ingest, transform and sync ``events`` events in a scratch home under ``root``."""
    admin, database, pg_url = scratch_database("sf_bench_e2e")
    redis_url, client = scratch_redis("SEARCHFLOW_BENCH_E2E_REDIS_DB", 11)
    home = Path(tempfile.mkdtemp(prefix="sf-bench-e2e-", dir=root))
    env = {
        **os.environ,
        "SEARCHFLOW_HOME": str(home),
        "SEARCHFLOW_WAREHOUSE": str(home / "warehouse.duckdb"),
        "SEARCHFLOW_POSTGRES_URL": pg_url,
        "SEARCHFLOW_REDIS_URL": redis_url,
    }
    cli = [str(Path(sys.executable).with_name("searchflow"))]
    users = max(events // 10, 1000)
    try:
        rows = _stages(cli, env, events, users, label)
    except StageFailed as failed:  # the rows measured so far, and why the chain stopped
        rows = [*failed.rows, Row(AREA, f"{label}: FAILED", events, 0.0, note=failed.reason)]
    finally:
        shutil.rmtree(home, ignore_errors=True)
        client.flushdb()
        client.close()
        drop_scratch_database(admin, database)
    return rows


def _stages(cli: list[str], env: dict[str, str], events: int, users: int, label: str) -> list[Row]:
    """One row per stage process, then the whole chain's wall time."""
    rows: list[Row] = []
    total = cpu_total = 0.0
    peak = 0
    try:
        for i, (n, start, days) in enumerate(_batches(events)):
            argv = [*cli, "generate", "--events", str(n), "--users", str(users)]
            argv += ["--seed", str(i + 1), "--start", start.isoformat(), "--days", str(days)]
            wall, rss, cpu = _run([*argv, "--json"], env)
            total, cpu_total, peak = total + wall, cpu_total + cpu, max(peak, rss)
            rows.append(_row(f"{label}: generate batch {i + 1}", n, wall, rss, cpu))
        for what, argv in (
            ("ingest jsonl", [*cli, "ingest", "--source", "jsonl", "--json"]),
            ("transform", [*cli, "transform", "--json"]),
            ("sync all", [*cli, "sync", "all", "--json"]),
        ):
            wall, rss, cpu = _run(argv, env)
            total, cpu_total, peak = total + wall, cpu_total + cpu, max(peak, rss)
            rows.append(_row(f"{label}: {what}", events, wall, rss, cpu))
        rows.append(
            Row(
                AREA,
                f"{label}: whole chain",
                events,
                total,
                goal="<= 120 s at 10M, every gate",
                note=f"CPU {cpu_total:.0f} s, highest peak RSS {peak / 2**30:.2f} GB",
            )
        )
    except RuntimeError as exc:
        raise StageFailed(rows, exc) from None
    return rows


def _row(what: str, items: int, wall: float, rss: int, cpu: float) -> Row:
    note = f"peak RSS {rss / 2**30:.2f} GB, CPU {cpu:.1f} s"
    return Row(AREA, what, items, wall, goal=RSS_GOAL, note=note)


def run(scale: float) -> list[Row]:
    root = Path(os.environ.get("SEARCHFLOW_BENCH_DIR") or tempfile.gettempdir())
    rows = chain(max(int(EVENTS * scale), 10_000), root, f"{EVENTS * scale / 1e6:g}M")
    if os.environ.get(LARGE_FLAG) == "1":
        free = shutil.disk_usage(root).free
        if free < LARGE_DISK_BYTES:
            rows.append(
                Row(
                    AREA,
                    "50M: skipped",
                    0,
                    0.0,
                    goal="<= 600 s",
                    note=f"{free / 1e9:.0f} GB free under {root}, needs about 40 GB",
                )
            )
        else:
            rows.extend(chain(int(LARGE_EVENTS * scale), root, f"{LARGE_EVENTS * scale / 1e6:g}M"))
    return rows
