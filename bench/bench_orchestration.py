"""Orchestration: the trigger hop (event emitted -> next flow running) and the whole served chain.

Ours: a real Prefect server started for the bench (own PREFECT_HOME, free port), the deployments of
prefect.yaml, a process worker polling every second, and ``generate-events`` on 100,000 events (times
scale), followed to the last sync. Every hop is measured from the upstream gate's event to the
downstream run's start, as the server recorded them.

Seed-style: the seed documents chain the stages by schedule (ingestion every 5 minutes,
transformation hourly, syncs every 6 hours), so a batch waits on average half an interval at each
hop. That wait is modelled here (half the interval), not run: running it would take hours.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from bench import Row, drop_scratch_database, scratch_database, scratch_redis

EVENTS = 100_000
# mean wait of a schedule-driven hop in the seed design: half of the downstream stage's interval
SEED_HOP_SECONDS = {
    "ingest-events": 300 / 2,
    "transform": 3600 / 2,
    "sync-user-segments": 6 * 3600 / 2,
    "sync-email-triggers": 6 * 3600 / 2,
    "sync-recommendations": 6 * 3600 / 2,
}


def run(scale: float) -> list[Row]:

    from deployments.demo import run_demo
    from deployments.server import start_server
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
            started = time.perf_counter()
            server = start_server(home / "prefect", ui=False)
            server_seconds = time.perf_counter() - started
            try:
                os.environ["PREFECT_API_URL"] = server.api_url
                started = time.perf_counter()
                result = run_demo(settings, events=events, seed=5, timeout=3600)
                demo_seconds = time.perf_counter() - started
            finally:
                os.environ.pop("PREFECT_API_URL", None)
                server.stop()
            chain = result.chain
            rows.append(
                Row("orchestration", "start a Prefect server (until healthy)", 1, server_seconds)
            )
            for hop in chain.hops():
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
            seed_chain = (
                SEED_HOP_SECONDS["ingest-events"]
                + SEED_HOP_SECONDS["transform"]
                + SEED_HOP_SECONDS["sync-user-segments"]
            )
            rows.append(
                Row(
                    "orchestration",
                    f"demo chain generate -> last sync ({chain.outcome})",
                    events,
                    chain.seconds,
                    seed_chain + chain.seconds,
                    "",
                    "ours: from generate-events created to every sync completed",
                )
            )
            rows.append(
                Row(
                    "orchestration",
                    "searchflow demo total (deploy, worker, chain)",
                    events,
                    demo_seconds,
                )
            )
    finally:
        if previous_api is not None:
            os.environ["PREFECT_API_URL"] = previous_api
        client.flushdb()
        client.close()
        drop_scratch_database(admin, db)
    return rows
