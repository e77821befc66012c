"""The transformation stage on hand-made raw data: each business rule's exact case, the incremental
funnel with a late event, idempotent rebuilds, and the warehouse left unlocked.

One module-scoped warehouse is built twice (the base data, then a second batch through the
incremental path): a dbt build costs seconds, so the assertions share them.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from searchflow.config import Settings
from searchflow.transform import run_transform

from . import scenario
from .keys import key_map, with_real_ids
from .rawdata import load_duckdb
from .recompute import mismatches

MARTS = (
    *scenario.MARTS,
    "intermediate.int_search_sessions",
    "intermediate.int_conversions",
)


def _read(settings: Settings) -> dict[str, pd.DataFrame]:
    keys = key_map(settings)  # the marts' pseudonyms back to the scenario's ids
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        return {name: with_real_ids(con.sql(f"SELECT * FROM {name}").df(), keys) for name in MARTS}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    home = tmp_path_factory.mktemp("transform-home")
    settings = Settings(home=home, probe_localhost=False, embedded_services=False)
    base, base_ids = scenario.base()
    load_duckdb(settings, base.events, batch_id="batch-1")
    first_summary = run_transform(settings)
    first = _read(settings)
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        first_problems = mismatches(con, key_map(settings))
    later, later_ids = scenario.next_day()
    load_duckdb(settings, later.events, batch_id="batch-2")
    second_summary = run_transform(settings)
    second = _read(settings)
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        second_problems = mismatches(con, key_map(settings))
    yield {
        "settings": settings,
        "ids": {**base_ids, **later_ids},
        "first": first,
        "first_summary": first_summary,
        "first_problems": first_problems,
        "second": second,
        "second_summary": second_summary,
        "second_problems": second_problems,
    }


def _segments(frames: dict[str, pd.DataFrame]) -> dict[str, str]:
    df = frames["marketing.mart_user_segments"]
    return dict(zip(df.user_id, df.segment, strict=True))


def test_summary_counts_every_node_and_passes(built: dict) -> None:
    summary = built["first_summary"]
    assert summary["failed"] == 0 and summary["skipped"] == 0
    assert summary["passed"] + summary["warned"] == summary["nodes"]
    assert summary["by_type"]["model"]["run"] >= 14
    assert summary["by_type"]["test"]["run"] > 40
    assert summary["by_type"]["unit_test"]["passed"] == 5  # segments, crm fields, reco, two SCD2
    assert summary["by_type"]["snapshot"]["passed"] == 1
    assert summary["batch_id"] == "batch-1"
    assert summary["as_of"] == scenario.AS_OF.isoformat()
    assert built["second_summary"]["batch_id"] == "batch-2"


def test_marts_match_an_independent_recomputation(built: dict) -> None:
    assert built["first_problems"] == []
    assert built["second_problems"] == []


def test_segments_follow_the_spec(built: dict) -> None:
    assert _segments(built["first"]) == {
        "power": "power",
        "regular": "regular",
        "late_booker": "regular",  # a booking outside the journey window is still a booking
        "engaged": "engaged",
        "casual": "casual",
        "dormant": "dormant",
        "splitter": "casual",  # last seen 3 days before as_of
        "abandoner": "casual",
        "hasty": "casual",
        "returner": "regular",
    }
    seg = built["first"]["marketing.mart_user_segments"].set_index("user_id")
    assert seg.loc["power", "total_conversions"] == 3
    assert round(seg.loc["power", "lifetime_value"], 2) == 300.30
    assert (seg["as_of"] == pd.Timestamp(scenario.AS_OF)).all()


def test_idle_31_minutes_splits_a_session_29_does_not(built: dict) -> None:
    sessions = built["first"]["intermediate.int_search_sessions"]
    split = sessions[sessions.session_id == "split"].sort_values("session_index")
    assert list(split.session_key) == ["split", "split#2"]
    assert list(split.searches) == [1, 1]
    assert len(sessions[sessions.session_id == "nosplit"]) == 1


def test_conversion_25_hours_after_its_click_is_outside_the_window(built: dict) -> None:
    conv = built["first"]["intermediate.int_conversions"].set_index("conversion_id")
    assert not conv.loc[built["ids"]["late_conversion"], "is_within_window"]
    assert conv["is_within_window"].sum() == len(conv) - 1
    funnel = built["first"]["analytics.fct_search_funnel"]
    # power 3 + regular 1 + anonymous 1 + returner 1; the late booking is not a journey conversion
    assert funnel.conversions.sum() == 6
    assert round(funnel.revenue.sum(), 2) == 385.85


def test_a_duplicated_raw_event_does_not_double_count(built: dict) -> None:
    funnel = built["first"]["analytics.fct_search_funnel"]
    with duckdb.connect(str(built["settings"].warehouse_path), read_only=True) as con:
        raw_rows, distinct_ids = con.execute(
            "SELECT count(*), count(DISTINCT event_id) FROM raw.search_events"
        ).fetchone()
    assert raw_rows == distinct_ids + 1  # the duplicate
    assert funnel.searches.sum() == distinct_ids - 2  # each base search once (2 came in batch 2)
    regular = built["first"]["marketing.mart_user_segments"].set_index("user_id").loc["regular"]
    assert regular.total_searches == 1


def test_a_late_event_within_24_hours_is_counted_by_the_next_incremental_run(built: dict) -> None:
    before = built["first"]["analytics.fct_search_funnel"]
    after = built["second"]["analytics.fct_search_funnel"]
    day = date(2024, 6, 4)
    assert after[after.event_date.dt.date == day].searches.sum() == (
        before[before.event_date.dt.date == day].searches.sum() + 1
    )
    # untouched older days kept their rows; the new day arrived
    old = date(2024, 6, 1)
    pd.testing.assert_frame_equal(
        before[before.event_date.dt.date == old].reset_index(drop=True),
        after[after.event_date.dt.date == old].reset_index(drop=True),
    )
    assert (after.event_date.dt.date == date(2024, 6, 5)).any()
    assert "newcomer" in set(built["second"]["marketing.mart_user_segments"].user_id)


def test_email_triggers_one_per_abandoned_session(built: dict) -> None:
    triggers = built["first"]["marketing.mart_email_triggers"]
    # engaged (10 h ago) and abandoner (5 h ago); splitter's three sessions ended 67-70 h ago.
    # Not: hasty (30 min ago), returner (booked 20 h later), bookers, late_booker (75 h ago).
    assert set(zip(triggers.user_id, triggers.session_id, strict=True)) == {
        ("engaged", "engaged-1"),
        ("abandoner", "ab-1"),
        ("splitter", "split"),
        ("splitter", "split#2"),
        ("splitter", "nosplit"),
    }
    assert triggers.trigger_id.is_unique
    assert (triggers.trigger_type == "abandoned_search").all()
    # the same session keeps its trigger_id in a later build (the queue is insert-only by it)
    again = built["second"]["marketing.mart_email_triggers"]
    both = triggers.merge(again, on=["user_id", "session_id"], suffixes=("", "_later"))
    assert len(both) >= 1
    assert (both.trigger_id == both.trigger_id_later).all()


def test_recommendations_rank_the_users_interest(built: dict) -> None:
    reco = built["first"]["marketing.mart_recommendations"].set_index("user_id")
    assert set(reco.index) == set(_segments(built["first"]))  # every known user searched
    assert reco.loc["power", "destination_1"] == "Paris"
    assert pd.isna(reco.loc["power", "destination_2"])
    assert reco.loc["returner", "destination_1"] == "Prague"
    assert reco.score.between(0, 1).all()
    assert (reco.generated_at == pd.Timestamp(scenario.AS_OF)).all()


def test_attribution_and_features(built: dict) -> None:
    attribution = built["first"]["marketing.mart_campaign_attribution"].set_index("campaign_key")
    assert round(attribution.first_touch_revenue.sum(), 2) == 385.85
    assert attribution.loc["google / summer", "last_touch_revenue"] == 10.0
    features = built["first"]["ml.user_features"]
    assert features.user_id.is_unique
    assert set(features.converts_next_period) <= {0, 1}


def test_the_warehouse_is_free_after_a_run(built: dict) -> None:
    code = f"import duckdb; duckdb.connect({str(built['settings'].warehouse_path)!r}).close()"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_rebuilding_unchanged_data_gives_identical_marts(built: dict) -> None:
    settings: Settings = built["settings"]
    run_transform(settings, select="mart_user_segments mart_recommendations mart_email_triggers")
    again = _read(settings)
    for name in (
        "marketing.mart_user_segments",
        "marketing.mart_recommendations",
        "marketing.mart_email_triggers",
    ):
        key = again[name].columns[0]
        pd.testing.assert_frame_equal(
            built["second"][name].sort_values(key).reset_index(drop=True),
            again[name].sort_values(key).reset_index(drop=True),
        )


def test_project_dir_holds_every_model_described() -> None:
    models = Path(__file__).resolve().parents[2] / "dbt" / "models"
    sql = {p.stem for p in models.rglob("*.sql")}
    described = "".join(p.read_text() for p in models.rglob("*.yml"))
    assert all(f"name: {name}" in described for name in sql)
