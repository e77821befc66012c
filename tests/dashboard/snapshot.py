"""A small published snapshot for the dashboard tests, written the way publication writes one.

The marts are synthetic but shaped exactly like the dbt ones (same names, columns and types the
pages read), built with set-based SQL in a throwaway DuckDB file, then published through
:func:`searchflow.published.write_snapshot` and :func:`searchflow.published.export_ops`. Numbers
vary by day, dimension and segment so that a wrong filter or a wrong sum shows.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from searchflow import ledger, published
from searchflow.warehouse import ensure_raw_schema

VERSION = "t20250411t000000fix1"
FIRST_DAY = "2025-01-01"
DAYS = 100  # to 2025-04-10
SEGMENTS = ("power", "regular", "engaged", "casual", "dormant")

_MARTS = (
    "CREATE SCHEMA analytics",
    "CREATE SCHEMA marketing",
    "CREATE SCHEMA ml",
    "CREATE SCHEMA snapshots",
    f"""
    CREATE TABLE analytics.fct_search_funnel AS
    WITH grid AS (
        SELECT cast(DATE '{FIRST_DAY}' + cast(d AS integer) AS date) AS event_date, d, p.platform, p.pi,
               dv.device_type, dv.di, c.country, c.ci, u.utm_source, u.ui
        FROM range({DAYS}) AS t(d)
        CROSS JOIN (VALUES ('web', 1), ('ios', 2), ('android', 3)) AS p(platform, pi)
        CROSS JOIN (VALUES ('desktop', 1), ('mobile', 2)) AS dv(device_type, di)
        CROSS JOIN (VALUES ('US', 1), ('DE', 2), ('(unknown)', 3)) AS c(country, ci)
        CROSS JOIN (VALUES ('(none)', 1), ('google', 2), ('email', 3)) AS u(utm_source, ui)
    ),
    counted AS (
        SELECT *, 20 + (d * 7 + pi * 13 + di * 5 + ci * 3 + ui * 11) % 47 AS searches FROM grid
    )
    SELECT event_date, platform, device_type, country, utm_source,
           cast(searches AS bigint) AS searches,
           cast(searches * (2 + pi) // 10 AS bigint) AS clicks,
           cast(searches * (2 + pi) // 10 // (4 + di) AS bigint) AS conversions,
           cast(searches * (2 + pi) // 10 // (4 + di) * (100 + 10 * ci) + 0.45 AS decimal(18, 2)) AS revenue,
           NULL::double AS click_through_rate, NULL::double AS conversion_rate
    FROM counted
    """,
    f"""
    CREATE TABLE marketing.mart_campaign_performance AS
    WITH grid AS (
        SELECT cast(DATE '{FIRST_DAY}' + cast(d AS integer) AS date) AS event_date, d, k.*
        FROM range({DAYS}) AS t(d)
        CROSS JOIN (VALUES
            ('google', 'brand_search', true, 1), ('google', 'summer_sale', true, 2),
            ('email', 'newsletter', true, 3), ('direct', '(none)', false, 4),
            ('(none)', '(none)', false, 5)
        ) AS k(utm_source, utm_campaign, is_paid, ki)
    )
    SELECT event_date, utm_source || ' / ' || utm_campaign AS campaign_key, utm_source,
           utm_campaign, is_paid,
           cast(CASE WHEN is_paid THEN 5 + (d + ki) % 9 ELSE 0 END AS bigint) AS paid_clicks,
           cast(CASE WHEN is_paid THEN 20 + ki * 7.5 + (d * 3 + ki) % 11 ELSE 0 END AS decimal(18, 2)) AS spend,
           cast((d + 2 * ki) % 4 AS bigint) AS first_touch_conversions,
           cast(((d + 2 * ki) % 4) * (150 + ki) AS decimal(18, 2)) AS first_touch_revenue,
           cast((d + ki) % 3 AS bigint) AS last_touch_conversions,
           cast(((d + ki) % 3) * (140 + 3 * ki) AS decimal(18, 2)) AS last_touch_revenue
    FROM grid
    """,
    f"""
    CREATE TABLE marketing.mart_user_segments AS
    SELECT 'user_' || lpad(cast(i AS varchar), 4, '0') AS user_id,
           ['power', 'regular', 'engaged', 'casual', 'dormant'][cast(1 + (i * i + i // 3) % 5 AS bigint)] AS segment,
           cast(1 + i % 9 AS bigint) AS total_searches,
           cast(i % 5 AS bigint) AS total_clicks,
           cast(i % 4 AS bigint) AS total_conversions,
           cast((i * 37) % 1000 + i / 100 AS decimal(18, 2)) AS lifetime_value,
           TIMESTAMP '{FIRST_DAY}' + to_days(cast(i % 40 AS integer)) AS first_seen_at,
           TIMESTAMP '{FIRST_DAY}' + to_days(cast(40 + i % 60 AS integer)) AS last_seen_at,
           TIMESTAMP '{FIRST_DAY}' + to_days({DAYS - 1}) AS as_of
    FROM range(1, 241) AS t(i)
    """,
    # Four snapshot builds, the first three weeks apart; users move a step down at each.
    f"""
    CREATE TABLE snapshots.user_segments_snapshot AS
    WITH builds AS (
        SELECT b, TIMESTAMP '{FIRST_DAY}' + to_days(cast(25 * b + 20 AS integer)) AS built_at FROM range(4) AS t(b)
    ),
    versions AS (
        SELECT u.user_id, b.b, b.built_at,
               ['power', 'regular', 'engaged', 'casual', 'dormant'][cast(1 + (hash(u.user_id) % 5 + b.b * (u.i % 2)) % 5 AS bigint)] AS segment
        FROM (SELECT 'user_' || lpad(cast(i AS varchar), 4, '0') AS user_id, i FROM range(1, 241) AS t(i)) AS u
        CROSS JOIN builds AS b
    ),
    changed AS (
        SELECT * FROM versions
        QUALIFY segment IS DISTINCT FROM lag(segment) OVER (PARTITION BY user_id ORDER BY b)
    )
    SELECT user_id, segment, built_at AS dbt_updated_at, built_at AS dbt_valid_from,
           lead(built_at) OVER (PARTITION BY user_id ORDER BY built_at) AS dbt_valid_to
    FROM changed
    """,
    """
    CREATE TABLE marketing.mart_segment_transitions AS
    SELECT user_id,
           coalesce(lag(segment) OVER (PARTITION BY user_id ORDER BY dbt_valid_from), '(new)') AS from_segment,
           segment AS to_segment, dbt_valid_from AS transitioned_at,
           cast(dbt_valid_from AS date) AS transition_date
    FROM snapshots.user_segments_snapshot
    """,
    """
    CREATE TABLE marketing.mart_segment_history AS
    WITH recorded AS (SELECT DISTINCT dbt_updated_at AS as_of FROM snapshots.user_segments_snapshot)
    SELECT r.as_of, cast(r.as_of AS date) AS as_of_date, v.segment, count(*) AS users
    FROM recorded AS r
    JOIN snapshots.user_segments_snapshot AS v
      ON v.dbt_valid_from <= r.as_of AND (v.dbt_valid_to IS NULL OR v.dbt_valid_to > r.as_of)
    GROUP BY ALL
    """,
)

_RAW = (
    """
    INSERT INTO raw.search_events
    SELECT 's' || i, TIMESTAMP '2025-04-10 12:00:00' - to_minutes(cast(i AS integer)), '{}',
           CASE WHEN i % 2 = 0 THEN 'jsonl' ELSE 'redis' END, NULL, 'ingest-jsonl-1',
           TIMESTAMP '2025-04-11 06:00:00' - to_minutes(cast(i % 7 AS integer))
    FROM range(30) AS t(i)
    """,
    """
    INSERT INTO raw.click_events
    SELECT 'c' || i, TIMESTAMP '2025-04-10 11:00:00' - to_minutes(cast(i AS integer)), '{}', 'jsonl', NULL,
           'ingest-jsonl-1', TIMESTAMP '2025-04-11 06:00:00'
    FROM range(10) AS t(i)
    """,
    """
    INSERT INTO raw.dead_letter_events
    SELECT 'd' || i, 'x', ['malformed_json', 'missing_field', 'impossible_value'][1 + i % 3],
           NULL, 'search', CASE WHEN i % 4 = 0 THEN 'redis' ELSE 'jsonl' END, NULL,
           'ingest-jsonl-1', TIMESTAMP '2025-04-11 06:00:00' - to_days(cast(i % 2 AS integer))
    FROM range(11) AS t(i)
    """,
)


def _ledger(con: duckdb.DuckDBPyConnection) -> None:
    ledger.ensure_ledger(con)
    rows = [
        ("gen-1", "generation", "jsonl", "passed"),
        ("gen-2", "generation", "jsonl", "failed"),
        ("ingest-jsonl-1", "ingestion", "jsonl", "passed"),
        ("ingest-redis-1", "ingestion", "redis", "passed"),
        ("ingest-jsonl-2", "ingestion", "jsonl", "failed"),
        ("ingest-jsonl-3", "ingestion", "jsonl", None),
        (VERSION, "transformation", None, "passed"),
        ("sync-1", "sync", "user_segments", "passed"),
    ]
    for batch_id, stage, source, outcome in rows:  # the verdict decides the state
        ledger.record(con, batch_id, stage, source=source, counts={"read": 10})
        if outcome is not None:
            reasons = (
                ["ingestion.dead_letters: share 0.3 above 0.05"] if outcome == "failed" else []
            )
            ledger.judge(con, batch_id, outcome, reasons)
    ledger.record_publication(con, VERSION, parents=["ingest-jsonl-1"])


def build(home: Path) -> Path:
    """Publish the fixture snapshot under ``home``; returns the warehouse file it came from."""
    home.mkdir(parents=True, exist_ok=True)
    warehouse = home / "fixture.duckdb"
    con = duckdb.connect(str(warehouse))
    try:
        for statement in _MARTS:
            con.execute(statement)
        ensure_raw_schema(con)
        for statement in _RAW:
            con.execute(statement)
        _ledger(con)
        published.write_snapshot(con, home, VERSION)
        published.export_ops(con, home)
    finally:
        con.close()
    return warehouse
