"""The key guarantee of incrementality: after new events arrive, an incremental run leaves every mart
(and the incremental intermediates) exactly as a full refresh on the same raw data would.

The second batch is chosen to hit each path the incremental models take: a late event that merges
two parts of an idle-split session, a click on a 20-day-old search (beyond the funnel's lookback),
the click and search of a conversion that landed before them (out of order), an anonymous event
joining an old anonymous session, a new day and a late event within 24 hours.
"""

from __future__ import annotations

from datetime import timedelta

import duckdb
import pandas as pd
import pytest

from searchflow.config import Settings
from searchflow.transform import run_transform

from . import scenario
from .keys import key_map, with_real_ids
from .rawdata import T0, Raw, load_duckdb
from .scenario import H, M

COMPARED = (
    *scenario.MARTS,
    "intermediate.int_as_of",
    "intermediate.int_search_sessions",
    "intermediate.int_conversions",
    "intermediate.int_user_journeys",
    "staging.stg_search_events",
    "staging.stg_click_events",
    "staging.stg_conversion_events",
)
# Bookkeeping columns: when a row was staged or recomputed, which differs by construction.
BOOKKEEPING = {"loaded_at", "refreshed_at"}


def _batches() -> tuple[list[dict], list[dict]]:
    """The base data plus an orphan conversion, and the second batch that touches old rows."""
    base, _ = scenario.base()
    later, _ = scenario.next_day()
    extra = Raw()
    extra._n = 60_000
    # bridges the 31 idle minutes of splitter's "split" session: its two parts become one
    extra.search(T0 + 6 * H + 15 * M, "splitter", "split", "Lisbon")
    # a click on dormant's 20-day-old search: far beyond the funnel's 24-hour lookback
    dormant = next(e for e in base.events if e.get("user_id") == "dormant")
    extra.click(
        scenario.AS_OF - timedelta(days=20) + M,
        "dormant",
        "dormant-1",
        dormant["event_id"],
        "Vienna",
    )
    # out of order: the conversion landed in the base batch, its search and click only now
    search = extra.search(scenario.AS_OF - 50 * H, "ooo", "ooo-1", "Nice", utm_source="mail")
    click = extra.click(scenario.AS_OF - 50 * H + M, "ooo", "ooo-1", search, "Nice")
    orphan = Raw()
    orphan._n = 70_000
    orphan.conversion(scenario.AS_OF - 49 * H, "ooo", "ooo-1", click, 42.42)
    # an anonymous event joining the anonymous journey's session
    extra.search(T0 + 2 * H + 5 * M, None, "anon-1", "Paris", utm_source="google")
    return base.events + orphan.events, later.events + extra.events


def _read(settings: Settings) -> dict[str, pd.DataFrame]:
    frames = {}
    keys = key_map(settings)  # the marts' pseudonyms back to the scenario's ids
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        for name in COMPARED:
            frame = with_real_ids(con.sql(f"SELECT * FROM {name}").df(), keys)
            frame = frame[[c for c in frame.columns if c not in BOOKKEEPING]]
            frames[name] = frame.sort_values(list(frame.columns)).reset_index(drop=True)
    return frames


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, pd.DataFrame]]:
    settings = Settings(
        home=tmp_path_factory.mktemp("incremental-home"),
        probe_localhost=False,
        embedded_services=False,
    )
    first, second = _batches()
    load_duckdb(settings, first, batch_id="batch-1")
    run_transform(settings)
    load_duckdb(settings, second, batch_id="batch-2")
    incremental = run_transform(settings)
    assert incremental["failed"] == 0 and not incremental["full_refresh"]
    after_incremental = _read(settings)
    run_transform(settings, full_refresh=True)
    return {"incremental": after_incremental, "full": _read(settings)}


@pytest.mark.parametrize("name", COMPARED)
def test_incremental_run_equals_a_full_refresh(runs: dict, name: str) -> None:
    pd.testing.assert_frame_equal(runs["incremental"][name], runs["full"][name])


def test_the_second_batch_changed_what_it_should(runs: dict) -> None:
    sessions = runs["incremental"]["intermediate.int_search_sessions"]
    assert list(sessions[sessions.session_id == "split"].session_key) == ["split"]  # merged
    conversions = runs["incremental"]["intermediate.int_conversions"].set_index("user_id")
    assert conversions.loc["ooo", "is_within_window"]  # its click arrived after it
    assert conversions.loc["ooo", "utm_source"] == "mail"
    dormant = runs["incremental"]["analytics.dim_users"].set_index("user_id").loc["dormant"]
    assert dormant.total_clicks == 1
