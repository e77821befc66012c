"""Ingestion's write-audit-publish contract in a PostgreSQL warehouse: a chunk lands in one
transaction (DuckDB's, carried by the extension as one PostgreSQL transaction), so a failure before
its COMMIT leaves no row in any raw table and no ledger row; the same lines land whole afterwards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from searchflow import ledger, warehouse
from searchflow.config import Settings
from searchflow.events import EVENT_TYPES
from searchflow.ingest.land import ensure_ingest_schema, land_chunk
from tests.transform import scenario

pytestmark = pytest.mark.services


def _raw_rows(con: object) -> int:
    return sum(
        con.execute(f"SELECT count(*) FROM {warehouse.raw_table(t)}").fetchone()[0]  # type: ignore[attr-defined]
        for t in EVENT_TYPES
    )


def test_a_failed_chunk_leaves_nothing_then_lands_whole(home: Path, warehouse_url: str) -> None:
    settings = Settings(home=home, warehouse_url=warehouse_url)
    events, _ = scenario.base()
    lines = [json.dumps(e) for e in events.events]

    def die(con: object, counts: object) -> None:
        ledger.record(con, "b-1", "ingestion")  # type: ignore[arg-type]
        raise RuntimeError("killed before COMMIT")

    with warehouse.session(settings) as con:
        assert warehouse.on_postgres(con)
        ensure_ingest_schema(con)
        con.execute(
            "CREATE TEMP TABLE chunk_lines AS SELECT i::BIGINT AS ord, lines[i] AS raw_text, "
            "'f:' || i AS source_ref, NULL::VARCHAR AS stream, NULL::VARCHAR AS problem "
            "FROM (SELECT ?::VARCHAR[] AS lines), range(1, len(lines) + 1) AS r(i)",
            [lines],
        )
        with pytest.raises(RuntimeError, match="killed"):
            land_chunk(con, "temp.main.chunk_lines", "jsonl", "b-1", in_transaction=die)
        assert _raw_rows(con) == 0
        assert ledger.get(con, "b-1") is None

        counts = land_chunk(con, "temp.main.chunk_lines", "jsonl", "b-1")
        assert sum(c["read"] for c in counts.values()) == len(lines)
        landed = sum(c["landed"] for c in counts.values())
        assert landed == _raw_rows(con) >= len(lines) - 2
