"""The real chain, then the dashboards: ``searchflow run`` over 90 days publishes the marts, and
every page (under AppTest, then in a real browser following the app's links) shows the warehouse's
own totals, all five segments, and no traceback."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import duckdb
import pytest

from searchflow.dashboard import browser
from tests.dashboard.conftest import PAGES, metrics
from tests.dashboard.snapshot import SEGMENTS

pytestmark = [pytest.mark.slow, pytest.mark.services]

CHAIN = ("--events", "30000", "--users", "1500", "--days", "90", "--start", "2025-06-01")


def _shown(number: int, text: str) -> bool:
    """The number appears as plain, comma-grouped or K/M-abbreviated text."""
    forms = {str(number), f"{number:,}"}
    for unit, size in (("K", 1e3), ("M", 1e6)):
        if number >= size:
            forms |= {
                f"{number / size:.1f}{unit}",
                f"{number / size:.2f}{unit}",
                f"{number / size:.0f}{unit}",
            }
    return any(re.search(rf"(?<![\d,.]){re.escape(form)}(?![\d,])", text) for form in forms)


def test_dashboards_after_a_90_day_run(service_settings, open_page) -> None:
    home = service_settings.home_path
    env = {**os.environ, **service_settings.as_env()}
    ran = subprocess.run(
        [sys.executable, "-m", "searchflow.cli", "run", *CHAIN],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]

    con = duckdb.connect(str(service_settings.warehouse_path), read_only=True)
    try:
        searches, clicks, bookings, revenue = con.sql(
            "SELECT sum(searches), sum(clicks), sum(conversions), sum(revenue) "
            "FROM analytics.fct_search_funnel"
        ).fetchone()
        raw_searches = con.sql("SELECT count(*) FROM raw.search_events").fetchone()[0]
        segments = dict(
            con.sql(
                "SELECT segment, count(*) FROM marketing.mart_user_segments GROUP BY 1"
            ).fetchall()
        )
        spend = con.sql("SELECT sum(spend) FROM marketing.mart_campaign_performance").fetchone()[0]
        published = con.sql(
            "SELECT count(*) FROM ops.batches WHERE state = 'published'"
        ).fetchone()[0]
    finally:
        con.close()
    assert searches == raw_searches

    # AppTest: every page, KPIs equal to the warehouse
    shown = {page: metrics(open_page(page, home=home)) for page in PAGES}
    assert shown["overview"]["Searches"][0] == f"{searches:,}"
    assert shown["overview"]["Clicks"][0] == f"{clicks:,}"
    assert shown["overview"]["Bookings"][0] == f"{bookings:,}"
    assert shown["overview"]["Revenue"][0] == f"{revenue:,.2f}"
    assert shown["attribution"]["Spend"][0] == f"{spend:,.2f}"
    assert {s: shown["segments"][s][0] for s in SEGMENTS} == {
        s: f"{segments.get(s, 0):,}" for s in SEGMENTS
    }
    assert shown["health"]["Batches published"][0] == f"{published:,}"

    # A real browser, from the root URL through the app's links
    if browser.unavailable():
        pytest.skip(browser.unavailable())
    with browser.serve(home, env=service_settings.as_env()) as url:
        readings = browser.visit_all(url)
    assert len(readings) >= 5
    for reading in readings:
        assert not reading.failures, (reading.url, reading.failures)
        assert "Traceback" not in reading.text
    text = "\n".join(reading.text for reading in readings)
    for total in (searches, clicks, bookings):
        assert _shown(int(total), text), total
    for segment in SEGMENTS:
        assert segment in text
