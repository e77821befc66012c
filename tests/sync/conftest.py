"""Marts built directly in a test warehouse, in the contract's columns (docs/architecture.md)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import duckdb
import pytest

from searchflow.config import Settings

AS_OF = datetime(2024, 6, 1, 12, 0, 0)

MART_DDL = {
    "marketing.mart_user_segments": """(
        user_id VARCHAR, segment VARCHAR, total_searches BIGINT, total_clicks BIGINT,
        total_conversions BIGINT, lifetime_value DECIMAL(14, 2), first_seen_at TIMESTAMP,
        last_seen_at TIMESTAMP, as_of TIMESTAMP)""",
    "marketing.mart_email_triggers": """(
        trigger_id VARCHAR, user_id VARCHAR, session_id VARCHAR, trigger_type VARCHAR,
        destination VARCHAR, searches_in_session BIGINT, session_started_at TIMESTAMP,
        session_ended_at TIMESTAMP, as_of TIMESTAMP)""",
    "marketing.mart_recommendations": """(
        user_id VARCHAR, destination_1 VARCHAR, destination_2 VARCHAR, destination_3 VARCHAR,
        score DOUBLE, generated_at TIMESTAMP)""",
}

SEGMENTS = ("power", "regular", "engaged", "casual", "dormant")
CITIES = ("Paris", "Rome", "Tokyo", "Lisbon", "Cancun", "Miami", "Oslo")


def segment_row(i: int, segment: str | None = None, searches: int | None = None) -> tuple:
    return (
        f"user_{i}",
        segment or SEGMENTS[i % 5],
        searches if searches is not None else i * 3,
        i,
        i % 4,
        round(i * 12.5, 2),
        AS_OF - timedelta(days=30 + i % 7),
        AS_OF - timedelta(hours=i % 48),
        AS_OF,
    )


def trigger_row(i: int) -> tuple:
    return (
        f"trg_{i:04d}",
        f"user_{i}",
        f"sess_{i}",
        "abandoned_search",
        CITIES[i % 7],
        2 + i % 3,
        AS_OF - timedelta(hours=3, minutes=i),
        AS_OF - timedelta(hours=2, minutes=i),
        AS_OF,
    )


def reco_row(i: int, score: float | None = None, n: int = 3) -> tuple:
    dests = [CITIES[(i + k) % 7] for k in range(n)] + [None] * (3 - n)
    return (
        f"user_{i}",
        *dests,
        score if score is not None else round(0.1 + (i % 9) / 10, 2),
        AS_OF,
    )


@pytest.fixture
def build_marts(settings: Settings) -> Callable[..., None]:
    """Replace the marts in the test warehouse: build_marts(segments=[...], triggers=..., recos=...).

    A mart passed as None is left as it is; pass ``drop=("marketing.mart_x",)`` to remove one.
    """

    def build(
        segments: Sequence[tuple] | None = None,
        triggers: Sequence[tuple] | None = None,
        recos: Sequence[tuple] | None = None,
        drop: Sequence[str] = (),
    ) -> None:
        settings.ensure_home()
        con = duckdb.connect(str(settings.warehouse_path))
        try:
            con.execute("CREATE SCHEMA IF NOT EXISTS marketing")
            for mart, rows in (
                ("marketing.mart_user_segments", segments),
                ("marketing.mart_email_triggers", triggers),
                ("marketing.mart_recommendations", recos),
            ):
                if rows is None:
                    continue
                con.execute(f"CREATE OR REPLACE TABLE {mart} {MART_DDL[mart]}")
                if rows:
                    marks = ", ".join("?" * len(rows[0]))
                    con.executemany(f"INSERT INTO {mart} VALUES ({marks})", [list(r) for r in rows])
            for mart in drop:
                con.execute(f"DROP TABLE IF EXISTS {mart}")
        finally:
            con.close()

    return build


@pytest.fixture
def default_marts(build_marts) -> dict[str, list[tuple]]:
    """Small marts: 40 users, 12 triggers, 40 recommendations (some with fewer destinations)."""
    rows = {
        "segments": [segment_row(i) for i in range(40)],
        "triggers": [trigger_row(i) for i in range(12)],
        "recos": [reco_row(i, n=1 + i % 3) for i in range(40)],
    }
    build_marts(**rows)
    return rows
