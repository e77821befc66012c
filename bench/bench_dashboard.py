"""Dashboards: how long each page takes to render in a real browser (Chromium through Playwright),
with the published marts of a 10M-event warehouse. The goal is under 2 s per page.

The pages read only the published Parquet snapshot, so what their speed depends on is the size of
those marts, not of the raw layer: this bench publishes marts of the size a 10M-event, 90-day run
publishes (every funnel cell of 90 days, 688k users with their segment history, daily campaign
rows), synthesised with set-based SQL, and times each page from navigation to the script's end:
the first load (cold caches) and the median of three reloads. ``SEARCHFLOW_BENCH_DASHBOARD_HOME``
points it at a home published by a real run instead (its sync history then comes from the
configured Postgres).

Bounded: every browser step has its own timeout (:mod:`searchflow.dashboard.browser`), and once
``BENCH_SECONDS`` have passed the remaining pages are reported as not measured instead of timed.
Without Playwright or Chromium it prints why and reports nothing.

No seed-style counterpart: the seed documents serve dashboards from Metabase and measure nothing.
"""

from __future__ import annotations

import os
import statistics
import tempfile
from pathlib import Path

from bench import Row

AREA = "dashboard"
EVENTS = 10_000_000
USERS = 688_000  # known users of a 10M-event run
DAYS = 90
RELOADS = 3
# The whole browser part's budget: beyond it the remaining pages are skipped, never waited for.
BENCH_SECONDS = 600

_MARTS = (
    "CREATE SCHEMA analytics",
    "CREATE SCHEMA marketing",
    "CREATE SCHEMA snapshots",
    f"""
    CREATE TABLE analytics.fct_search_funnel AS
    SELECT cast(DATE '2025-06-01' + cast(d AS integer) AS date) AS event_date,
           p.v AS platform, dv.v AS device_type, 'C' || c.v AS country, u.v AS utm_source,
           cast(searches AS bigint) AS searches,
           cast(searches * 3 // 10 AS bigint) AS clicks,
           cast(searches * 3 // 100 AS bigint) AS conversions,
           cast(searches * 3 // 100 * 1193.43 AS decimal(18, 2)) AS revenue,
           0.3 AS click_through_rate, 0.03 AS conversion_rate
    FROM range({DAYS}) AS t(d)
    CROSS JOIN (VALUES ('web'), ('ios'), ('android')) AS p(v)
    CROSS JOIN (VALUES ('desktop'), ('mobile'), ('tablet')) AS dv(v)
    CROSS JOIN range(16) AS c(v)
    CROSS JOIN (VALUES ('(none)'), ('google'), ('facebook'), ('email'), ('affiliate'), ('direct')) AS u(v)
    CROSS JOIN (SELECT {{per_cell}} AS searches)
    """,
    f"""
    CREATE TABLE marketing.mart_campaign_performance AS
    SELECT cast(DATE '2025-06-01' + cast(d AS integer) AS date) AS event_date,
           s || ' / ' || c AS campaign_key, s AS utm_source, c AS utm_campaign, s <> '(none)' AS is_paid,
           cast(900 AS bigint) AS paid_clicks, cast(12000.00 AS decimal(18, 2)) AS spend,
           cast(80 AS bigint) AS first_touch_conversions, cast(95000 AS decimal(18, 2)) AS first_touch_revenue,
           cast(80 AS bigint) AS last_touch_conversions, cast(95000 AS decimal(18, 2)) AS last_touch_revenue
    FROM range({DAYS}) AS t(d)
    CROSS JOIN (VALUES ('google', 'brand_search'), ('google', 'summer_sale'), ('google', 'winter_escape'),
                       ('facebook', 'retargeting'), ('facebook', 'summer_sale'), ('email', 'newsletter'),
                       ('email', 'abandoned_search'), ('affiliate', 'partner_deals'), ('direct', '(none)'),
                       ('(none)', '(none)')) AS k(s, c)
    """,
    f"""
    CREATE TABLE marketing.mart_user_segments AS
    SELECT 'user_' || lpad(cast(i AS varchar), 7, '0') AS user_id,
           ['power', 'regular', 'engaged', 'casual', 'dormant'][cast(1 + hash(i) % 5 AS bigint)] AS segment,
           cast(1 + i % 40 AS bigint) AS total_searches, cast(i % 12 AS bigint) AS total_clicks,
           cast(i % 4 AS bigint) AS total_conversions,
           cast((hash(i) % 500000) / 100.0 AS decimal(18, 2)) AS lifetime_value,
           TIMESTAMP '2025-06-01' + to_days(cast(i % 60 AS integer)) AS first_seen_at,
           TIMESTAMP '2025-07-01' + to_days(cast(i % 60 AS integer)) AS last_seen_at,
           TIMESTAMP '2025-08-29 23:59:00' AS as_of
    FROM range({USERS}) AS t(i)
    """,
    """
    CREATE TABLE snapshots.user_segments_snapshot AS
    SELECT user_id, segment, TIMESTAMP '2025-06-30' + to_days(cast(30 * b AS integer)) AS dbt_updated_at,
           TIMESTAMP '2025-06-30' + to_days(cast(30 * b AS integer)) AS dbt_valid_from,
           CASE WHEN b < 2 AND hash(user_id) % 3 = 0 THEN TIMESTAMP '2025-06-30' + to_days(cast(30 * b + 30 AS integer)) END AS dbt_valid_to
    FROM marketing.mart_user_segments CROSS JOIN range(3) AS t(b)
    WHERE b = 0 OR hash(user_id) % 3 = 0
    """,
    """
    CREATE TABLE marketing.mart_segment_transitions AS
    SELECT user_id,
           coalesce(lag(segment) OVER (PARTITION BY user_id ORDER BY dbt_valid_from), '(new)') AS from_segment,
           segment AS to_segment, dbt_valid_from AS transitioned_at, cast(dbt_valid_from AS date) AS transition_date
    FROM snapshots.user_segments_snapshot
    """,
    """
    CREATE TABLE marketing.mart_segment_history AS
    WITH recorded AS (SELECT DISTINCT dbt_updated_at AS as_of FROM snapshots.user_segments_snapshot)
    SELECT r.as_of, cast(r.as_of AS date) AS as_of_date, v.segment, count(*) AS users
    FROM recorded AS r JOIN snapshots.user_segments_snapshot AS v
      ON v.dbt_valid_from <= r.as_of AND (v.dbt_valid_to IS NULL OR v.dbt_valid_to > r.as_of)
    GROUP BY ALL
    """,
)


def _publish(home: Path, scale: float) -> None:
    """Publish marts of a ``scale`` x 10M-event warehouse under ``home``, with a small ledger."""
    import duckdb

    from searchflow import ledger, published
    from searchflow.warehouse import ensure_raw_schema

    cells = DAYS * 3 * 3 * 16 * 6
    per_cell = max(int(EVENTS * scale * 0.75 / cells), 1)
    con = duckdb.connect(str(home / "bench.duckdb"))
    try:
        for statement in _MARTS:
            sql = statement.replace("{per_cell}", str(per_cell))
            if "mart_user_segments AS" in sql:
                sql = sql.replace(f"range({USERS})", f"range({max(int(USERS * scale), 1000)})")
            con.execute(sql)
        ensure_raw_schema(con)
        ledger.ensure_ledger(con)
        for n in range(200):
            ledger.record(con, f"ingest-jsonl-{n}", "ingestion", source="jsonl")
            ledger.judge(con, f"ingest-jsonl-{n}", "passed" if n % 10 else "failed")
        published.write_snapshot(con, home, "bench")
        published.export_ops(con, home)
    finally:
        con.close()


# The floor: what Streamlit itself costs on this machine for a page with a title, one KPI and one
# small chart, served and timed the same way; a dashboard page cannot render faster than this.
_FLOOR_APP = """
import altair as alt
import pandas as pd
import streamlit as st

st.title("Floor")
st.metric("Searches", "1,000")
frame = pd.DataFrame({"day": range(10), "searches": range(10)})
st.altair_chart(alt.Chart(frame).mark_line().encode(x="day:Q", y="searches:Q"), width="stretch")
"""


def _floor(scratch: Path, page: object) -> float:
    """Median reload seconds of :data:`_FLOOR_APP` (see there)."""
    import sys

    from searchflow.cli.dashboard import STREAMLIT_OPTIONS
    from searchflow.dashboard import browser

    app = scratch / "floor.py"
    app.write_text(_FLOOR_APP)
    command = [sys.executable, "-m", "streamlit", "run", str(app), *STREAMLIT_OPTIONS]
    with browser.serve(scratch, command=[*command, "--server.port"]) as url:
        browser.read(page, url)
        return statistics.median(browser.read(page, url).seconds for _ in range(RELOADS))


def run(scale: float) -> list[Row]:
    import time

    from searchflow.dashboard import browser

    reason = browser.unavailable()
    if reason:
        print(f"dashboard bench skipped: {reason}")
        return []
    configured = os.environ.get("SEARCHFLOW_BENCH_DASHBOARD_HOME")
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as scratch:
        home = Path(configured) if configured else Path(scratch)
        if not configured:
            _publish(home, scale)
        rows: list[Row] = []
        # synthesised marts have no Postgres: the page says so, the render is still timed
        env = (
            {} if configured else {"SEARCHFLOW_POSTGRES_URL": "postgresql://bench@127.0.0.1:9/none"}
        )
        deadline = time.monotonic() + BENCH_SECONDS
        with browser.serve(home, env=env) as url, browser.browser() as page:
            links = browser.page_links(page, url)
            for link in links:
                if time.monotonic() > deadline:
                    print(f"dashboard bench: out of time, {link} not measured")
                    continue
                first = browser.read(page, link)
                reloads = [browser.read(page, link).seconds for _ in range(RELOADS)]
                name = first.title
                rows.append(
                    Row(
                        AREA,
                        f"{name}: first load / reload",
                        int(EVENTS * scale),
                        statistics.median(reloads),
                        goal="< 2 s per page",
                        note=f"first load {first.seconds:.2f} s"
                        + ("; FAILED: " + first.failures[0][:60] if first.failures else ""),
                    )
                )
            if time.monotonic() < deadline:
                floor = _floor(Path(scratch), page)
                rows.append(
                    Row(
                        AREA,
                        "floor: Streamlit page with a title, a KPI, a chart",
                        0,
                        floor,
                        note="same browser, same machine load",
                    )
                )
        return rows
