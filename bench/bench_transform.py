"""Transformation: the full dbt build on 1M events, and the incremental run after 5% more arrive.

Ours: ``searchflow.transform.run_transform``: one in-process ``dbt build`` of a candidate (models
and tests, manifest parsed once per process, partial parse on disk), then its publication (views
repointed, the segment snapshot, the Parquet export). Staging models are incremental tables (each event's JSON parsed
once, appended by batch); ``int_search_sessions``, ``int_conversions`` and ``int_user_journeys``
recompute only the sessions, conversions and searches new events touch; ``fct_search_funnel``
recomputes the lookback days plus the days those touched; user-level marts are full rebuilds
from the compact intermediates.
Seed documents' approach, implemented faithfully: the Airflow DAG's BashOperators, i.e. separate
``dbt`` processes for deps, ``run --select staging``, ``run --select intermediate``,
``run --select marts`` and ``test``, each starting dbt from scratch, every run a full rebuild
(their marts are tables).

Data: the generator (fixed seeds) written as JSONL and landed by the ingestion stage; the second
batch is 5% as many events on the day after the first batch ends.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from bench import Row

AREA = "transform"
FULL_EVENTS = 1_000_000


def _land(settings, events: int, seed: int, start, days: int, out: Path) -> None:
    from generator import GeneratorConfig, generate, write
    from searchflow import ledger
    from searchflow.ingest import run_ingestion
    from searchflow.warehouse import session

    config = GeneratorConfig(
        events=events,
        users=max(events // 20, 100),
        seed=seed,
        start=start,
        days=days,
        duplicate_rate=0.01,
        late_rate=0.01,
    )
    write(generate(config), "jsonl", settings, out)
    landed = run_ingestion(settings, "jsonl", path=out)
    with session(settings) as con:  # the ingestion gate's verdict: dbt reads published batches
        ledger.ensure_ledger(con)
        ledger.record(con, landed["batch_id"], "ingestion", source="jsonl")
        ledger.judge(con, landed["batch_id"], "passed")


def _seed_style(settings) -> float:
    """The seed DAG: five dbt CLI processes in a row, full rebuilds."""
    from searchflow.transform import dbt_env, project_dir, target_dir

    env = {**os.environ, **dbt_env(settings)}
    dbt = str(Path(sys.executable).with_name("dbt"))
    common = [
        "--project-dir",
        str(project_dir()),
        "--profiles-dir",
        str(project_dir()),
        "--target-path",
        str(target_dir(settings, "dev")) + "-seed",
        "--log-path",
        str(settings.home_path / "dbt" / "logs-seed"),
        "--quiet",
    ]
    steps = [
        ["run", "--select", "staging", "--full-refresh"],
        ["run", "--select", "intermediate", "--full-refresh"],
        ["run", "--select", "marts", "ml", "--full-refresh"],
        ["test"],
    ]
    started = time.perf_counter()
    deps = [dbt, "deps", "--project-dir", str(project_dir()), "--quiet"]
    subprocess.run(deps, env=env, check=True, capture_output=True)
    for step in steps:
        subprocess.run([dbt, *step, *common], env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def run(scale: float) -> list[Row]:
    from generator.config import DEFAULT_START
    from searchflow.config import Settings
    from searchflow.transform import run_transform

    events = max(int(FULL_EVENTS * scale), 10_000)
    more = max(events // 20, 500)
    with tempfile.TemporaryDirectory(prefix="bench-transform-") as tmp:
        settings = Settings(home=Path(tmp), probe_localhost=False, embedded_services=False)
        _land(settings, events, 11, DEFAULT_START, 7, Path(tmp) / "events-1")
        run_transform(settings, select="+int_as_of")  # parse once, as any later run would find it
        full = run_transform(settings, full_refresh=True)["seconds"]
        _land(settings, more, 12, DEFAULT_START + timedelta(days=7), 1, Path(tmp) / "events-2")
        incremental = run_transform(settings)["seconds"]
        seed_full = _seed_style(settings)
    ratio = incremental / full if full else float("nan")
    return [
        Row(
            AREA,
            "dbt build, full (models+snapshot+tests)",
            events,
            full,
            seed_full,
            goal="-",
            note="seed: 5 dbt processes (deps, run x3, test)",
        ),
        Row(
            AREA,
            "dbt build, incremental after +5% events",
            events + more,
            incremental,
            seed_full,
            goal="< 1/3 of full",
            note=f"incremental/full = {ratio:.2f}",
        ),
    ]
