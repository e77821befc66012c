"""Small, hand-made batches for the gate tests: raw rows and marts written straight into DuckDB."""

from __future__ import annotations

import duckdb
import pandas as pd

from searchflow import ledger, warehouse
from searchflow.config import Settings


def land_raw(
    settings: Settings,
    batch_id: str = "ing-1",
    searches: int = 200,
    clicks: int = 60,
    conversions: int = 6,
    dead_letters: int = 0,
    orphan_clicks: int = 0,
    state: str = "published",
) -> None:
    """A raw batch: searches, clicks of those searches (some orphans), conversions, dead letters,
    recorded in the batch ledger in ``state`` (dbt, and so the funnel totals, see only published)."""
    with warehouse.session(settings) as con:
        warehouse.ensure_raw_schema(con)
        ledger.record(con, batch_id, "ingestion", state=state, source="jsonl")
        con.execute(
            """
            INSERT INTO raw.search_events
            SELECT 's' || i, TIMESTAMP '2025-01-01' + i * INTERVAL 1 MINUTE,
                   json_object('event_id', 's' || i, 'session_id', 'x' || (i // 3)),
                   'jsonl', 'f:' || i, $b, now() FROM range($n) t(i)
            """,
            {"b": batch_id, "n": searches},
        )
        con.execute(
            """
            INSERT INTO raw.click_events
            SELECT 'c' || i, TIMESTAMP '2025-01-01' + i * INTERVAL 1 MINUTE,
                   json_object('event_id', 'c' || i, 'session_id', 'x' || i,
                               'search_event_id', CASE WHEN i < $o THEN 'gone' || i ELSE 's' || i END),
                   'jsonl', 'f:' || i, $b, now() FROM range($n) t(i)
            """,
            {"b": batch_id, "n": clicks, "o": orphan_clicks},
        )
        con.execute(
            """
            INSERT INTO raw.conversion_events
            SELECT 'v' || i, TIMESTAMP '2025-01-01' + i * INTERVAL 1 MINUTE,
                   json_object('event_id', 'v' || i, 'session_id', 'x' || i, 'click_event_id', 'c' || i),
                   'jsonl', 'f:' || i, $b, now() FROM range($n) t(i)
            """,
            {"b": batch_id, "n": conversions},
        )
        con.execute(
            """
            INSERT INTO raw.dead_letter_events
            SELECT 'd' || i, '{"event_id": ', 'unparsable', 'cut short', 'search', 'jsonl',
                   'f:' || i, $b, now() FROM range($n) t(i)
            """,
            {"b": batch_id, "n": dead_letters},
        )


PUBLISHED = "(SELECT batch_id FROM ops.batches WHERE state = 'published')"


def build_marts(
    settings: Settings, users: int = 50, bad_segment: bool = False, version: str | None = None
) -> None:
    """Marts in the contract's shape, consistent with :func:`land_raw`'s default batch.

    ``version``: build them as a candidate, in ``<schema>__<version>`` schemas.
    """
    suffix = f"__{version}" if version else ""
    segments = ["power", "regular", "engaged", "casual", "dormant"]
    seg = pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(users)],
            "segment": [segments[i % 5] for i in range(users)],
            "total_searches": 4,
            "total_clicks": 1,
            "total_conversions": 0,
            "lifetime_value": 0.0,
        }
    )
    if bad_segment:
        seg.loc[3, "segment"] = "vip"
    reco = pd.DataFrame(
        {
            "user_id": seg["user_id"],
            "destination_1": "Paris",
            "destination_2": "Rome",
            "destination_3": None,
            "score": 0.5,
            "generated_at": pd.Timestamp("2025-01-02"),
        }
    )
    triggers = pd.DataFrame(
        {"trigger_id": [f"t{i}" for i in range(10)], "user_id": seg["user_id"][:10]}
    )
    with warehouse.session(settings) as con:
        con.execute(
            f"CREATE SCHEMA IF NOT EXISTS marketing{suffix}; CREATE SCHEMA IF NOT EXISTS analytics{suffix}"
        )
        for name, frame in (
            (f"marketing{suffix}.mart_user_segments", seg),
            (f"marketing{suffix}.mart_recommendations", reco),
            (f"marketing{suffix}.mart_email_triggers", triggers),
        ):
            con.register("frame", frame)
            con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM frame")
            con.unregister("frame")
        con.execute(
            """
            CREATE OR REPLACE TABLE analytics{suffix}.fct_search_funnel AS
            SELECT DATE '2025-01-01' AS event_date, 'web' AS platform,
                   (SELECT count(*) FROM raw.search_events WHERE batch_id IN {published}) AS searches,
                   (SELECT count(*) FROM raw.click_events WHERE batch_id IN {published}) AS clicks,
                   (SELECT count(*) FROM raw.conversion_events WHERE batch_id IN {published}) AS conversions,
                   0.0 AS revenue, 0.3 AS click_through_rate, 0.03 AS conversion_rate
            """.replace("{suffix}", suffix).replace("{published}", PUBLISHED)
        )


def quarantine_rows(settings: Settings) -> pd.DataFrame:
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        return con.execute("SELECT * FROM quality.quarantine").df()
    finally:
        con.close()
