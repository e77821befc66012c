"""searchflow/published.py: the snapshot readers see, written whole and pointed at atomically."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from searchflow import ledger, published
from searchflow.cli.dashboard import streamlit_command
from searchflow.errors import SearchflowError


def _warehouse(path: Path, rows: int) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(path))
    con.execute("CREATE SCHEMA IF NOT EXISTS analytics")
    con.execute(
        "CREATE OR REPLACE TABLE analytics.fct_search_funnel AS SELECT range AS searches FROM range(?)",
        [rows],
    )
    return con


def test_nothing_published_yet(tmp_path: Path) -> None:
    assert published.current_version(tmp_path) is None
    with pytest.raises(SearchflowError, match="nothing is published yet"):
        published.mart_path(tmp_path, "analytics.fct_search_funnel")
    with pytest.raises(SearchflowError, match="not a published mart"):
        published.mart_path(tmp_path, "raw.search_events", "v1")


def test_write_snapshot_points_current_at_the_new_version(tmp_path: Path) -> None:
    con = _warehouse(tmp_path / "w.duckdb", 3)
    published.write_snapshot(con, tmp_path, "v1")
    assert published.current_version(tmp_path) == "v1"
    assert published.read_mart(tmp_path, "analytics.fct_search_funnel").num_rows == 3
    # a relation missing from the warehouse (the snapshot before its first run) is skipped
    assert not published.mart_path(tmp_path, published.SNAPSHOT).exists()

    con.execute("INSERT INTO analytics.fct_search_funnel VALUES (3)")
    published.write_snapshot(con, tmp_path, "v2")
    assert published.current_version(tmp_path) == "v2"
    assert published.read_mart(tmp_path, "analytics.fct_search_funnel").num_rows == 4
    assert published.read_mart(tmp_path, "analytics.fct_search_funnel", "v1").num_rows == 3
    con.close()
    # no temporary files or folders left behind
    assert not [p for p in published.published_root(tmp_path).iterdir() if p.name.startswith(".")]


def test_older_versions_are_pruned_but_never_the_served_one(tmp_path: Path) -> None:
    con = _warehouse(tmp_path / "w.duckdb", 1)
    for version in ("v1", "v2", "v3", "v4"):
        published.write_snapshot(con, tmp_path, version)
    con.close()
    assert sorted(published.versions(tmp_path)) == ["v3", "v4"]
    assert published.current_version(tmp_path) == "v4"


def test_a_mapping_publishes_a_candidate_under_the_published_name(tmp_path: Path) -> None:
    con = _warehouse(tmp_path / "w.duckdb", 2)
    con.execute("CREATE SCHEMA analytics__v9")
    con.execute("CREATE TABLE analytics__v9.fct_search_funnel AS SELECT 1 AS searches")
    published.write_snapshot(
        con, tmp_path, "v9", {"analytics.fct_search_funnel": "analytics__v9.fct_search_funnel"}
    )
    con.close()
    assert published.read_mart(tmp_path, "analytics.fct_search_funnel").num_rows == 1


def test_export_ops_writes_the_ledger_and_skips_missing_tables(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    ledger.ensure_ledger(con)
    ledger.record(con, "b1", "ingestion", source="jsonl")
    ledger.judge(con, "b1", "failed", ["too many dead letters"])
    written = published.export_ops(con, tmp_path)
    con.close()
    # no raw layer in this warehouse: dead letters and freshness are skipped
    assert set(written) == {"batches", "publish_log"}
    batches = duckdb.sql(
        f"SELECT batch_id, state FROM read_parquet('{published.ops_path(tmp_path, 'batches')}')"
    ).fetchall()
    assert batches == [("b1", "held")]


def test_dashboard_command_refuses_a_busy_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "searchflow.cli", "dashboard", "--port", str(port)],
            capture_output=True,
            text=True,
            env={"SEARCHFLOW_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
            timeout=60,
        )
    assert done.returncode != 0
    assert done.stderr.count("\n") == 1 and "pick another port with --port" in done.stderr


def test_streamlit_runs_headless_without_usage_statistics() -> None:
    command = streamlit_command("127.0.0.1", 8765)
    assert "--browser.gatherUsageStats=false" in command
    assert "--server.headless=true" in command
    assert "--server.port=8765" in command
