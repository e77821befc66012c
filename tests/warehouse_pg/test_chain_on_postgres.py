"""The issue's check for the path past one machine: ``searchflow run`` with
``SEARCHFLOW_WAREHOUSE_URL`` set passes every gate with the warehouse in PostgreSQL, writes no
DuckDB file, and its marts equal an independent recomputation from the raw events in that database
(the same recomputation the DuckDB tests use, tests/transform/recompute.py), down to the funnel
counted straight from the raw tables by PostgreSQL itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest
import redis

from searchflow import warehouse
from searchflow.config import Settings
from tests.transform.recompute import mismatches

pytestmark = [pytest.mark.services, pytest.mark.slow]

PUBLISHED = (
    "batch_id IN (SELECT batch_id FROM ops.batches "
    "WHERE stage = 'ingestion' AND state = 'published')"
)


def _rows(url: str, sql: str) -> list[tuple[object, ...]]:
    con = psycopg2.connect(url)
    try:
        with con.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall())
    finally:
        con.close()


def test_searchflow_run_with_the_warehouse_in_postgres(
    home: Path, postgres_url: str, redis_url: str, warehouse_url: str
) -> None:
    duckdb_file = home / "warehouse.duckdb"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SEARCHFLOW_")},
        "SEARCHFLOW_HOME": str(home),
        "SEARCHFLOW_WAREHOUSE": str(duckdb_file),  # the URL wins over it
        "SEARCHFLOW_WAREHOUSE_URL": warehouse_url,
        "SEARCHFLOW_POSTGRES_URL": postgres_url,
        "SEARCHFLOW_REDIS_URL": redis_url,
    }
    done = subprocess.run(
        [sys.executable, "-m", "searchflow.cli", "run", "--events", "3000", "--users", "400"]
        + ["--days", "6", "--seed", "17", "--duplicate-rate", "0.01", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])

    stages = summary["stages"]
    gates = [stages[s]["gate"]["outcome"] for s in ("generation", "ingestion", "transformation")]
    gates += [sync["gate"]["outcome"] for sync in stages["sync"].values()]
    assert gates == ["passed"] * 6
    assert stages["transformation"]["target"] == "postgres"

    # no DuckDB file anywhere under the home: the warehouse is the PostgreSQL database
    assert not duckdb_file.exists()
    assert not [p for p in home.rglob("*") if p.suffix in {".duckdb", ".db"} and p.is_file()]

    # the raw contract: the payload is a JSON column, PostgreSQL's jsonb
    assert _rows(
        warehouse_url,
        "SELECT DISTINCT data_type FROM information_schema.columns WHERE table_schema = 'raw' "
        "AND table_name LIKE '%\\_events' AND column_name = 'payload'",
    ) == [("jsonb",)]
    # every batch the chain recorded is published
    states = _rows(warehouse_url, "SELECT stage, state FROM ops.batches ORDER BY stage")
    assert {stage for stage, _ in states} == {"generation", "ingestion", "transformation", "sync"}
    assert {state for _, state in states} == {"published"}

    # the funnel equals the raw events of published batches, counted by PostgreSQL itself
    funnel = _rows(
        warehouse_url,
        "SELECT sum(searches), sum(clicks) FROM analytics.fct_search_funnel",
    )[0]
    raw = _rows(
        warehouse_url,
        f"SELECT (SELECT count(DISTINCT event_id) FROM raw.search_events WHERE {PUBLISHED}), "
        f"(SELECT count(DISTINCT event_id) FROM raw.click_events WHERE {PUBLISHED})",
    )[0]
    assert funnel == raw and raw[0] > 1000

    # the marts against the independent recomputation, read through the warehouse connection
    settings = Settings(home=home, warehouse_url=warehouse_url)
    with warehouse.session(settings, read_only=True) as con:
        assert mismatches(con) == []

    # the destinations hold what the marts say
    (users,) = _rows(warehouse_url, "SELECT count(*) FROM marketing.mart_user_segments")[0]
    assert _rows(postgres_url, "SELECT count(*) FROM crm.user_segments")[0][0] == users > 0
    (reco,) = _rows(warehouse_url, "SELECT count(*) FROM marketing.mart_recommendations")[0]
    client = redis.Redis.from_url(redis_url)
    try:
        assert sum(1 for _ in client.scan_iter("reco:*", count=1000)) == reco > 0
    finally:
        client.close()
    # the API and the dashboards read the published Parquet snapshot of that version
    current = (home / "published" / "CURRENT").read_text().strip()
    assert current == stages["transformation"]["version"]
    assert (home / "published" / current).is_dir()
