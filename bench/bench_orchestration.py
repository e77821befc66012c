"""Orchestration: the trigger hop (event emitted -> next flow running) and the whole served chain.

Ours: a real Prefect server started for the bench (own PREFECT_HOME, free port), the deployments of
prefect.yaml, the worker ``searchflow demo`` starts (deployments/worker.py: quick polling, flow runs
forked from a pre-imported fork server), one chain of ``generate-events`` on 100,000 events (times
scale) followed to the last sync, then small chains (1,000 events) until at least ``MIN_HOPS`` hops
were measured or ``HOP_BUDGET_SECONDS`` passed. Every hop is measured from the upstream gate's event
to the downstream run's start, as the server recorded them, and split where the time goes: the
server's automation (event -> run created) and the worker (created -> running: poll, process start,
pull step, loading the flow). The rows give each hop of the first chain and the p50/p95 of all.

The server's database is the one ``searchflow demo`` gives its server: a PostgreSQL database of
its own beside the bench's scratch database (dropped afterwards); ``SEARCHFLOW_BENCH_PREFECT_DATABASE
=sqlite`` measures Prefect's SQLite file instead, and ``SEARCHFLOW_PREFECT_DATABASE_URL`` wins over
both, as it does for the demo. ``SEARCHFLOW_FORKSERVER=0`` measures the same with every run started
in a cold interpreter; ``SEARCHFLOW_BENCH_PREFECT_PORT`` fixes the server's port (default: a free
one).

Seed-style: the seed documents chain the stages by schedule (ingestion every 5 minutes,
transformation hourly, syncs every 6 hours), so a batch waits on average half an interval at each
hop. That wait is modelled here (half the interval), not run: running it would take hours.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import Row, drop_scratch_database, scratch_database, scratch_redis

EVENTS = 100_000
HOP_EVENTS = 1_000
HOP_USERS = 200
MIN_HOPS = 10
# The most the extra chains may take together; the table says how many hops were measured. Room
# for MIN_HOPS on a loaded machine too, where a small chain's transform takes minutes.
HOP_BUDGET_SECONDS = 1800.0
# mean wait of a schedule-driven hop in the seed design: half of the downstream stage's interval
SEED_HOP_SECONDS = {
    "ingest-events": 300 / 2,
    "transform": 3600 / 2,
    "sync-user-segments": 6 * 3600 / 2,
    "sync-email-triggers": 6 * 3600 / 2,
    "sync-recommendations": 6 * 3600 / 2,
}
SEED_HOP_MEAN = statistics.mean(SEED_HOP_SECONDS.values())


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (``share`` in 0..1) of ``values``."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(share * len(ordered) + 0.5)))
    return ordered[rank - 1]


def hop_rows(hops: list[dict[str, Any]], chains: int, database: str = "") -> list[Row]:
    """p50 and p95 of the hops, with the median split (automation, worker) in the note."""
    seconds = [h["seconds"] for h in hops]
    trigger = [h["trigger_seconds"] for h in hops if "trigger_seconds" in h]
    start = [h["start_seconds"] for h in hops if "start_seconds" in h]
    split = (
        f"median split: automation {statistics.median(trigger):.2f} s + worker/process "
        f"{statistics.median(start):.2f} s"
        if trigger and start
        else ""
    )
    where = f"{len(hops)} hops over {chains} chain(s)" + (
        f", server on {database}" if database else ""
    )
    return [
        Row(
            "orchestration",
            f"hop p50 ({where})",
            len(hops),
            statistics.median(seconds),
            SEED_HOP_MEAN,
            "<= 3 s",
            split,
        ),
        Row(
            "orchestration",
            f"hop p95 ({where})",
            len(hops),
            percentile(seconds, 0.95),
            SEED_HOP_MEAN,
            "<= 5 s",
            f"max {max(seconds):.2f} s; seed: mean of half the schedule intervals",
        ),
    ]


def run(scale: float) -> list[Row]:
    from deployments.demo import (
        PREFECT_DATABASE_SUFFIX,
        choose_generation,
        pin_postgres_block,
        prefect_database,
        start_chain,
    )
    from deployments.follow import follow
    from deployments.prepare import prepare
    from deployments.server import SQLITE, start_server
    from deployments.worker import start_worker
    from searchflow.config import Settings

    events = max(1000, int(EVENTS * scale))
    admin, db, pg_url = scratch_database("sf_bench_orch")
    r_url, client = scratch_redis("SEARCHFLOW_BENCH_ORCHESTRATION_REDIS_DB", 12)
    previous_api = os.environ.pop("PREFECT_API_URL", None)
    rows: list[Row] = []
    try:
        with tempfile.TemporaryDirectory(prefix="sf-bench-orch-") as tmp:
            home = Path(tmp)
            settings = Settings(home=home / "home", postgres_url=pg_url, redis_url=r_url)
            settings.ensure_home()
            started = time.perf_counter()
            port = int(os.environ.get("SEARCHFLOW_BENCH_PREFECT_PORT", "0")) or None
            database_url: str | None = SQLITE
            if os.environ.get("SEARCHFLOW_BENCH_PREFECT_DATABASE", "postgresql") != SQLITE:
                database_url, _why = prefect_database(pg_url, "configured")
            server = start_server(home / "prefect", port=port, ui=False, database_url=database_url)
            kind = (server.database or "?").split(" ")[0]
            rows.append(
                Row(
                    "orchestration",
                    f"start a Prefect server (until healthy; {kind})",
                    1,
                    time.perf_counter() - started,
                    note=server.database or "",
                )
            )
            worker = None
            try:
                os.environ["PREFECT_API_URL"] = server.api_url
                started = time.perf_counter()
                prepared = prepare(server.api_url, sweeper=False)
                pin_postgres_block(server.api_url, settings)
                worker = start_worker(
                    server.api_url, settings.as_env(), home / "logs", prepared.pool
                )
                rows.append(
                    Row(
                        "orchestration",
                        "deploy + start the worker (until it polls)",
                        1,
                        time.perf_counter() - started,
                    )
                )
                chains, hops = [], []
                deadline = time.monotonic() + HOP_BUDGET_SECONDS
                seed = 5
                while not chains or (len(hops) < MIN_HOPS and time.monotonic() < deadline):
                    size, users = (events, 1000) if not chains else (HOP_EVENTS, HOP_USERS)
                    chosen = choose_generation(settings.home_path, size, users, seed)
                    seed += 1
                    extra = {k: v for k, v in chosen.items() if k not in ("events", "seed")}
                    root = start_chain(server.api_url, chosen["events"], chosen["seed"], extra)
                    timeout = 3600 if not chains else max(60.0, deadline - time.monotonic())
                    chain = follow(server.api_url, root, prepared.deployments, timeout=timeout)
                    chains.append(chain)
                    hops.extend(chain.hops())
                    if not chain.ok:
                        break
            finally:
                os.environ.pop("PREFECT_API_URL", None)
                if worker is not None:
                    worker.stop()
                server.stop()
            first = chains[0]
            for hop in first.hops():
                rows.append(
                    Row(
                        "orchestration",
                        f"hop {hop['from']} -> {hop['to']}",
                        1,
                        hop["seconds"],
                        SEED_HOP_SECONDS[hop["to"]],
                        "<= 5 s",
                        f"automation {hop.get('trigger_seconds', '?')} s + worker/process "
                        f"{hop.get('start_seconds', '?')} s; seed: half the schedule interval",
                    )
                )
            if hops:
                rows.extend(hop_rows(hops, len(chains), kind))
            seed_chain = (
                SEED_HOP_SECONDS["ingest-events"]
                + SEED_HOP_SECONDS["transform"]
                + SEED_HOP_SECONDS["sync-user-segments"]
            )
            rows.append(
                Row(
                    "orchestration",
                    f"chain generate -> last sync ({first.outcome})",
                    events,
                    first.seconds,
                    seed_chain + first.seconds,
                    "",
                    "ours: from generate-events created to every sync completed",
                )
            )
            failed = [c for c in chains if not c.ok]
            if failed:
                rows.append(
                    Row(
                        "orchestration",
                        f"chain stopped: {failed[0].outcome} at {failed[0].stopped_at}",
                        0,
                        failed[0].seconds,
                        note=(failed[0].reason or "")[:120],
                    )
                )
    finally:
        if previous_api is not None:
            os.environ["PREFECT_API_URL"] = previous_api
        client.flushdb()
        client.close()
        admin.cursor().execute(
            f'DROP DATABASE IF EXISTS "{db}{PREFECT_DATABASE_SUFFIX}" WITH (FORCE)'
        )
        drop_scratch_database(admin, db)
    return rows
