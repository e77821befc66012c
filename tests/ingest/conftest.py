"""Fixtures of the ingestion tests: a warehouse reader and generated batches."""

from __future__ import annotations

from collections.abc import Callable

import duckdb
import pytest

from searchflow.config import Settings


@pytest.fixture
def query(settings: Settings) -> Callable[..., list[tuple]]:
    """Run a read-only query on a test's warehouse (opened and closed each time)."""

    def run(sql: str, settings_: Settings | None = None) -> list[tuple]:
        con = duckdb.connect(str((settings_ or settings).warehouse_path), read_only=True)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()

    return run


def reconciles(summary: dict) -> bool:
    """read = landed + duplicates + dead_letters, per type and in total."""
    parts = [summary, *summary["per_type"].values()]
    return all(
        p["read"] == p["landed"] + p["duplicates"] + p["dead_letters"] + p.get("suppressed", 0)
        for p in parts
    )


def event_totals(summary: dict) -> dict[str, int]:
    """The summary's totals over the events alone: a JSONL batch also counts the application's
    change records (``app_users``, ``app_bookings``) that the sink writes beside them."""
    parts = [v for k, v in summary["per_type"].items() if not k.startswith("app_")]
    return {key: sum(p[key] for p in parts) for key in parts[0]}
