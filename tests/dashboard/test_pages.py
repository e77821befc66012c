"""Every page under Streamlit's AppTest: no exception, and every KPI equal to a query written here,
independently of the page, against the warehouse the snapshot was published from."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import psycopg2
import pytest

from searchflow.sync.postgres_ddl import ensure_crm_schema
from tests.dashboard.conftest import PAGES, metrics
from tests.dashboard.snapshot import SEGMENTS


def _count(n: object) -> str:
    return f"{int(n):,}"


def _money(x: object) -> str:
    return f"{float(x):,.2f}"


def _pct(x: float) -> str:
    return f"{x:.2%}"


def _delta(current: float, previous: float) -> str:
    return f"{(current - previous) / abs(previous):+.1%}"


def _funnel(warehouse, start: date | None = None, end: date | None = None):
    where = "" if start is None else f"WHERE event_date BETWEEN DATE '{start}' AND DATE '{end}'"
    return warehouse.sql(
        f"SELECT sum(searches), sum(clicks), sum(conversions), sum(revenue) "
        f"FROM analytics.fct_search_funnel {where}"
    ).fetchone()


def test_overview_shows_the_whole_history_by_default(open_page, warehouse) -> None:
    shown = metrics(open_page("overview"))
    searches, clicks, bookings, revenue = _funnel(warehouse)
    assert shown["Searches"][0] == _count(searches)
    assert shown["Clicks"][0] == _count(clicks)
    assert shown["Bookings"][0] == _count(bookings)
    assert shown["Revenue"][0] == _money(revenue)
    assert shown["Click-through rate"][0] == _pct(clicks / searches)
    assert shown["Conversion rate"][0] == _pct(bookings / searches)
    assert shown["Average booking value"][0] == _money(float(revenue) / bookings)
    # nothing before the history: no comparison to show
    assert shown["Searches"][1] in ("", None)


def test_overview_compares_a_range_with_the_period_before(open_page, warehouse) -> None:
    app = open_page("overview")
    start, end = date(2025, 3, 1), date(2025, 3, 30)
    app.date_input(key="overview_range").set_value((start, end)).run()
    assert not app.exception
    shown = metrics(app)
    now = _funnel(warehouse, start, end)
    before = _funnel(warehouse, start - timedelta(days=30), start - timedelta(days=1))
    assert shown["Searches"] == (_count(now[0]), _delta(now[0], before[0]))
    assert shown["Bookings"] == (_count(now[2]), _delta(now[2], before[2]))
    assert shown["Revenue"] == (_money(now[3]), _delta(float(now[3]), float(before[3])))
    # year over year: the fixture's history starts in 2025, so nothing to compare with
    assert "a year before" not in " ".join(shown)


def test_overview_grains_render(open_page) -> None:
    app = open_page("overview")
    for grain in ("Week", "Month", "Day"):
        app.radio(key="overview_grain").set_value(grain).run()
        assert not app.exception


def test_funnel_steps_and_drop_off(open_page, warehouse) -> None:
    shown = metrics(open_page("funnel"))
    searches, clicks, bookings, _ = _funnel(warehouse)
    assert shown["Searches"][0] == _count(searches)
    assert shown["Clicks"][0] == _count(clicks)
    assert shown["Bookings"][0] == _count(bookings)
    assert shown["Drop-off search → click"][0] == _pct(1 - clicks / searches)
    assert shown["Drop-off click → booking"][0] == _pct(1 - bookings / clicks)


def test_funnel_by_dimension_tables(open_page, warehouse) -> None:
    app = open_page("funnel")
    tables = [frame.value for frame in app.dataframe]
    assert len(tables) == 3  # platform, device, country
    by_platform = dict(
        warehouse.sql(
            "SELECT platform, sum(searches) FROM analytics.fct_search_funnel GROUP BY 1"
        ).fetchall()
    )
    shown = dict(zip(tables[0]["value"], tables[0]["searches"], strict=True))
    assert shown == by_platform


@pytest.mark.parametrize("model", ["last_touch", "first_touch"])
def test_attribution_spend_roas_cost_per_booking(open_page, warehouse, model: str) -> None:
    app = open_page("attribution")
    label = {"last_touch": "Last touch", "first_touch": "First touch"}[model]
    app.radio(key="attribution_model").set_value(label).run()
    shown = metrics(app)
    spend, bookings, revenue, paid_revenue, paid_bookings = warehouse.sql(
        f"""
        SELECT sum(spend), sum({model}_conversions), sum({model}_revenue),
               sum(CASE WHEN is_paid THEN {model}_revenue END),
               sum(CASE WHEN is_paid THEN {model}_conversions END)
        FROM marketing.mart_campaign_performance
        """
    ).fetchone()
    assert shown["Spend"][0] == _money(spend)
    assert shown[f"Bookings ({label.lower()})"][0] == _count(bookings)
    assert shown[f"Revenue ({label.lower()})"][0] == _money(revenue)
    assert shown["ROAS (paid campaigns)"][0] == f"{float(paid_revenue) / float(spend):,.2f}x"
    assert shown["Cost per booking (paid campaigns)"][0] == _money(float(spend) / paid_bookings)


def test_attribution_campaign_table(open_page, warehouse) -> None:
    table = open_page("attribution").dataframe[0].value
    expected = warehouse.sql(
        "SELECT count(DISTINCT campaign_key), sum(first_touch_conversions), "
        "sum(last_touch_conversions) FROM marketing.mart_campaign_performance"
    ).fetchone()
    assert (
        len(table),
        table["first_touch_bookings"].sum(),
        table["last_touch_bookings"].sum(),
    ) == expected


def test_segments_today_and_all_five_names(open_page, warehouse) -> None:
    app = open_page("segments")
    shown = metrics(app)
    counts = dict(
        warehouse.sql(
            "SELECT segment, count(*) FROM marketing.mart_user_segments GROUP BY 1"
        ).fetchall()
    )
    assert set(shown) == set(SEGMENTS)
    assert {name: value for name, (value, _) in shown.items()} == {
        name: _count(counts.get(name, 0)) for name in SEGMENTS
    }
    top = app.dataframe[-1].value
    best = warehouse.sql(
        "SELECT user_id FROM marketing.mart_user_segments ORDER BY lifetime_value DESC, user_id LIMIT 20"
    ).fetchall()
    assert list(top["user_id"]) == [row[0] for row in best]


def test_segment_transitions_per_period(open_page, warehouse) -> None:
    app = open_page("segments")
    app.radio(key="segments_grain").set_value("month").run()
    options = app.selectbox(key="segments_period").options
    assert options[0] == "the whole range" and len(options) > 1
    moved = warehouse.sql(
        "SELECT count(*) FROM marketing.mart_segment_transitions WHERE from_segment <> '(new)'"
    ).fetchone()[0]
    assert moved > 0
    # the matrix is a chart; its total is what the independent query counts
    assert not app.exception


def test_segments_default_to_the_whole_history_against_the_first_build(
    open_page, warehouse
) -> None:
    """The range starts at the first user's first event, not at the snapshot's first build, and
    each segment's change is against the distribution that build recorded."""
    app = open_page("segments")
    first_seen, last_build = warehouse.sql(
        "SELECT (SELECT cast(min(first_seen_at) AS date) FROM marketing.mart_user_segments), "
        "(SELECT max(as_of_date) FROM marketing.mart_segment_history)"
    ).fetchone()
    assert tuple(app.date_input(key="segments_range").value) == (first_seen, last_build)
    now = dict(
        warehouse.sql(
            "SELECT segment, count(*) FROM marketing.mart_user_segments GROUP BY 1"
        ).fetchall()
    )
    first = dict(
        warehouse.sql(
            "SELECT segment, users FROM marketing.mart_segment_history "
            "WHERE as_of = (SELECT min(as_of) FROM marketing.mart_segment_history)"
        ).fetchall()
    )
    shown = metrics(app)
    for segment in SEGMENTS:
        before, after = first.get(segment, 0), now.get(segment, 0)
        expected = f"{(after - before) / before:+.1%}" if before else None
        assert shown[segment][1] == expected, segment


def test_health_ledger_counts(open_page, warehouse) -> None:
    shown = metrics(open_page("health"))
    by_state = dict(warehouse.sql("SELECT state, count(*) FROM ops.batches GROUP BY 1").fetchall())
    for state in ("published", "held", "landed", "discarded"):
        assert shown[f"Batches {state}"][0] == _count(by_state.get(state, 0))


def test_health_reads_sync_runs_from_postgres(
    open_page, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the ledger's batches are recorded now, so the page's default range ends today
    with psycopg2.connect(postgres_url) as conn, conn.cursor() as cur:
        ensure_crm_schema(cur)
        cur.execute(
            """
            INSERT INTO crm.sync_runs (run_id, sync, started_at, finished_at, status, read, seconds, error)
            VALUES ('r1', 'user_segments', now() - interval '3 minutes', now(), 'succeeded', 240, 2.0, NULL),
                   ('r2', 'recommendations', now() - interval '2 minutes', now(), 'failed', 0, 1.0, 'redis down'),
                   ('r3', 'email_triggers', now() - interval '1 minute', now(), 'succeeded', 12, 4.0, NULL)
            """
        )
    conn.close()
    monkeypatch.setenv("SEARCHFLOW_POSTGRES_URL", postgres_url)
    app = open_page("health")
    shown = metrics(app)
    assert shown["Sync runs"][0] == "3"
    assert shown["Failed sync runs"][0] == "1"
    assert shown["Median latency (s)"][0] == "2.00"
    assert not app.warning


def test_health_without_postgres_says_so(open_page, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEARCHFLOW_POSTGRES_URL", "postgresql://nobody@127.0.0.1:9/nowhere")
    app = open_page("health")
    assert any("Sync history unavailable" in w.value for w in app.warning)


@pytest.mark.parametrize("page", PAGES)
def test_pages_before_any_publication(open_page, tmp_path: Path, page: str) -> None:
    app = open_page(page, home=tmp_path / "empty")
    assert [i.value for i in app.info], "the page should say what to run"
