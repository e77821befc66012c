"""How the warehouse stores what ingestion lands: file format, compression, row groups, locks."""

from __future__ import annotations

import subprocess
import sys
import time

import duckdb
import pytest

from searchflow.errors import SearchflowError
from searchflow.ingest import run_ingestion
from searchflow.ingest.land import LANDING_ROW_GROUP_SIZE
from searchflow.warehouse import storage_version

from .helpers import event, line, write_jsonl

N = LANDING_ROW_GROUP_SIZE + 5_000  # more than one landing row group


def _events(root, n: int = N) -> None:
    write_jsonl(root, "search", [line(event("search", i)) for i in range(n)])


def _storage(query, table: str = "raw.search_events") -> dict[str, set[str]]:
    rows = query(
        f"SELECT column_name, compression FROM pragma_storage_info('{table}') "
        "WHERE segment_type NOT IN ('VALIDITY')"
    )
    found: dict[str, set[str]] = {}
    for column, compression in rows:
        found.setdefault(column, set()).add(compression)
    return found


def test_new_warehouse_is_in_the_newest_format_with_zstd_payloads(settings, query, tmp_path):
    _events(tmp_path / "events")
    assert run_ingestion(settings, "jsonl", path=tmp_path / "events")["landed"] == N
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        assert storage_version(con) >= (1, 2)
        # row groups of the landing size, not DuckDB's default 122,880
        sizes = con.execute(
            "SELECT DISTINCT count FROM pragma_storage_info('raw.search_events') "
            "WHERE column_name = 'event_id' AND segment_type = 'VARCHAR'"
        ).fetchall()
    finally:
        con.close()
    assert max(size for (size,) in sizes) <= LANDING_ROW_GROUP_SIZE
    assert _storage(query)["payload"] == {"ZSTD"}
    # the payload still reads back as the line that was written
    assert query("SELECT payload FROM raw.search_events WHERE event_id = 's-000007'") == [
        (line(event("search", 7)),)
    ]


def test_warehouse_in_the_old_format_keeps_it_and_still_compresses(settings, query, tmp_path):
    """A file another tool created in DuckDB's v1.0 format is not upgraded, and its payloads are
    not declared ZSTD (that format would store them uncompressed)."""
    settings.warehouse_path.parent.mkdir(parents=True, exist_ok=True)
    duckdb.connect(str(settings.warehouse_path)).close()  # DuckDB's default: the v1.0 format
    _events(tmp_path / "events")
    assert run_ingestion(settings, "jsonl", path=tmp_path / "events")["landed"] == N
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        assert storage_version(con) < (1, 2)
    finally:
        con.close()
    payload = _storage(query)["payload"]
    assert payload and "Uncompressed" not in payload and "ZSTD" not in payload


def test_warehouse_held_by_another_process_is_one_clear_error(settings, tmp_path):
    _events(tmp_path / "events", 10)
    settings.warehouse_path.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True);"
            " time.sleep(60)",
            str(settings.warehouse_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(SearchflowError, match="locked by another process"):
            run_ingestion(settings, "jsonl", path=tmp_path / "events")
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.1)
    assert run_ingestion(settings, "jsonl", path=tmp_path / "events")["landed"] == 10
