"""The dashboards in a real browser (Playwright driving the system's Chromium): every page reached
by following the app's own links, its KPIs read from the page and compared with the warehouse, no
traceback anywhere, nothing fetched from another host; and the pipeline keeps running while a
browser keeps reloading a page."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from searchflow.dashboard import browser
from tests.dashboard.snapshot import SEGMENTS

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(browser.unavailable() is not None, reason=str(browser.unavailable())),
]

RELOAD_PAUSE_MS = 1000  # a reader that reloads every second, without taking every core

TITLES = {
    "Executive overview",
    "Search funnel",
    "Marketing attribution",
    "User segments",
    "Pipeline health",
}


def test_every_page_in_a_real_browser(snapshot_home: Path, warehouse, tmp_path: Path) -> None:
    searches, clicks, bookings, revenue = warehouse.sql(
        "SELECT sum(searches), sum(clicks), sum(conversions), sum(revenue) "
        "FROM analytics.fct_search_funnel"
    ).fetchone()
    spend = warehouse.sql("SELECT sum(spend) FROM marketing.mart_campaign_performance").fetchone()[
        0
    ]
    segments = dict(
        warehouse.sql(
            "SELECT segment, count(*) FROM marketing.mart_user_segments GROUP BY 1"
        ).fetchall()
    )
    held = warehouse.sql("SELECT count(*) FROM ops.batches WHERE state = 'held'").fetchone()[0]

    with browser.serve(snapshot_home) as url:
        readings = browser.visit_all(url, screenshots=tmp_path)

    pages = {reading.title: reading for reading in readings}
    assert set(pages) == TITLES
    for reading in readings:
        assert not reading.failures, (reading.url, reading.failures)
        assert not reading.foreign_requests, (reading.url, reading.foreign_requests)
    assert len(list(tmp_path.glob("dashboard-*.png"))) == len(TITLES)
    overview = pages["Executive overview"].metrics
    assert overview, pages["Executive overview"].text
    assert overview["Searches"] == f"{searches:,}"
    assert overview["Clicks"] == f"{clicks:,}"
    assert overview["Bookings"] == f"{bookings:,}"
    assert overview["Revenue"] == f"{revenue:,.2f}"
    assert pages["Search funnel"].metrics["Bookings"] == f"{bookings:,}"
    assert pages["Marketing attribution"].metrics["Spend"] == f"{spend:,.2f}"
    shown = pages["User segments"].metrics
    assert {name: shown[name] for name in SEGMENTS} == {
        name: f"{segments.get(name, 0):,}" for name in SEGMENTS
    }
    assert pages["Pipeline health"].metrics["Batches held"] == f"{held:,}"


def _searchflow(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "searchflow.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_pipeline_runs_while_a_browser_keeps_reloading(
    snapshot_home: Path, service_settings
) -> None:
    """The dashboards read only the published snapshot, so a browser reloading a page the whole
    time never blocks the one-writer warehouse: ingestion and transformation both succeed."""
    home = service_settings.home_path
    home.mkdir(parents=True, exist_ok=True)
    # start from a published snapshot, so the page has data from the first reload on
    shutil.copytree(snapshot_home / "published", home / "published")
    env = {
        **os.environ,
        **service_settings.as_env(),
        "SEARCHFLOW_HOME": str(home),
        "SEARCHFLOW_WAREHOUSE": str(home / "warehouse.duckdb"),
    }
    generated = _searchflow(
        "generate", "--events", "4000", "--users", "400", "--days", "20", env=env
    )
    assert generated.returncode == 0, generated.stderr

    loads: list[browser.Reading] = []
    stop = threading.Event()
    problems: list[BaseException] = []

    def keep_reloading(url: str) -> None:
        try:
            with browser.browser() as page:
                while not stop.is_set():
                    loads.append(browser.read(page, f"{url}/funnel"))
                    page.wait_for_timeout(RELOAD_PAUSE_MS)
        except BaseException as exc:  # reported by the test below
            problems.append(exc)

    with browser.serve(home) as url:
        reloader = threading.Thread(target=keep_reloading, args=(url,))
        reloader.start()
        try:
            ingested = _searchflow("ingest", "--source", "jsonl", env=env)
            transformed = _searchflow("transform", env=env)
        finally:
            stop.set()
            reloader.join(timeout=120)

    assert ingested.returncode == 0, ingested.stderr
    assert transformed.returncode == 0, transformed.stderr
    assert not problems, problems
    assert len(loads) >= 2, "the browser should have reloaded the page during the run"
    assert all(not load.failures for load in loads)
