"""Write-audit-publish for the marts: only published batches reach the models, a released batch is
picked up by the next build, a discarded one leaves them, and publication is one atomic step that
rolls back whole.

One module-scoped warehouse goes through the story in order (a dbt build costs seconds):
base published + a held batch -> build; release it -> build; discard it -> build.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator

import duckdb
import pytest

from searchflow import ledger
from searchflow.config import Settings
from searchflow.errors import SearchflowError, UsageError
from searchflow.published import current_version
from searchflow.transform import (
    build_candidate,
    discard_from_models,
    publish,
    reject,
    run_transform,
)
from searchflow.transform import candidate as candidates
from searchflow.warehouse import session

from . import scenario
from .keys import key_map
from .rawdata import load_duckdb, publish_batch
from .recompute import mismatches

# the module (the package exports its function under the same name)
publication = importlib.import_module("searchflow.transform.publish")


def _state(settings: Settings) -> dict:
    keys = key_map(settings)  # the marts' pseudonyms back to the scenario's ids
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        funnel = con.execute(
            "SELECT sum(searches), list_contains(list(event_date), DATE '2024-06-05') "
            "FROM analytics.fct_search_funnel"
        ).fetchone()
        users = {
            keys.get(r[0], r[0])
            for r in con.execute("SELECT user_id FROM marketing.mart_user_segments").fetchall()
        }
        view = con.execute(
            "SELECT sql FROM duckdb_views() WHERE schema_name = 'analytics' "
            "AND view_name = 'fct_search_funnel'"
        ).fetchone()[0]
        return {
            "searches": int(funnel[0]),
            "next_day": bool(funnel[1]),
            "users": users,
            "view": view,
            "log": con.execute(
                "SELECT version FROM ops.publish_log ORDER BY published_at"
            ).fetchall(),
            "snapshot": con.execute(
                "SELECT count(*) FROM snapshots.user_segments_snapshot"
            ).fetchone()[0],
            "problems": mismatches(con, keys),
            "candidates": candidates.candidates(con),
        }


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    settings = Settings(
        home=tmp_path_factory.mktemp("publication-home"),
        probe_localhost=False,
        embedded_services=False,
    )
    base, _ = scenario.base()
    later, _ = scenario.next_day()
    load_duckdb(settings, base.events, batch_id="batch-1")
    load_duckdb(settings, later.events, batch_id="batch-2", publish=False)  # its gate failed
    held = run_transform(settings)
    states = {"held": _state(settings)}
    publish_batch(settings, "batch-2")  # `searchflow batches release batch-2 --force`
    released = run_transform(settings)
    states["released"] = _state(settings)
    with session(settings) as con:  # `searchflow batches discard batch-2`
        con.execute("BEGIN TRANSACTION")
        for table in ("search", "click", "conversion"):
            con.execute(f"DELETE FROM raw.{table}_events WHERE batch_id = 'batch-2'")
        ledger.discard(con, "batch-2")
        removed = discard_from_models(con, "batch-2")
        con.execute("COMMIT")
    discarded = run_transform(settings)
    states["discarded"] = _state(settings)
    yield {
        "settings": settings,
        "summaries": {"held": held, "released": released, "discarded": discarded},
        "states": states,
        "removed": removed,
    }


def test_a_held_batch_never_reaches_the_marts(story: dict) -> None:
    held = story["states"]["held"]
    assert held["problems"] == []
    assert "newcomer" not in held["users"] and not held["next_day"]
    assert story["summaries"]["held"]["parents"] == ["batch-1"]
    assert story["summaries"]["held"]["batch_id"] == "batch-1"


def test_a_released_batch_is_picked_up_by_the_next_incremental_build(story: dict) -> None:
    released = story["states"]["released"]
    assert released["problems"] == []
    assert "newcomer" in released["users"] and released["next_day"]
    assert released["searches"] == story["states"]["held"]["searches"] + 2
    assert story["summaries"]["released"]["parents"] == ["batch-2"]
    assert story["summaries"]["released"]["seeded"] == ["analytics.fct_search_funnel"]


def test_a_discarded_batch_leaves_staging_and_the_marts(story: dict) -> None:
    discarded = story["states"]["discarded"]
    assert sum(story["removed"]["staging_rows"].values()) == 4
    assert discarded["problems"] == []
    assert "newcomer" not in discarded["users"]
    assert not discarded["next_day"]  # a day that lost every event is gone, not stale
    assert discarded["searches"] == story["states"]["held"]["searches"]
    assert story["summaries"]["discarded"]["seeded"] == []  # rebuilt in full


def test_each_publication_repoints_the_views_and_writes_its_parquet(story: dict) -> None:
    settings = story["settings"]
    versions = [story["summaries"][k]["version"] for k in ("held", "released", "discarded")]
    assert [row[0] for row in story["states"]["discarded"]["log"]] == versions
    assert f"analytics__{versions[-1]}" in story["states"]["discarded"]["view"]
    assert current_version(settings.home_path) == versions[-1]
    folder = settings.home_path / "published" / versions[-1]
    assert (folder / "analytics.fct_search_funnel.parquet").exists()
    assert (folder / "snapshots.user_segments_snapshot.parquet").exists()
    # the two newest candidates (the served one among them); older ones dropped
    assert story["states"]["discarded"]["candidates"] == versions[-2:]
    assert story["summaries"]["discarded"]["by_type"]["snapshot"]["passed"] == 1


def test_a_failure_after_the_transaction_rolls_the_publication_back_whole(
    story: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = story["settings"]
    before = _state(settings)
    served = current_version(settings.home_path)
    built = build_candidate(settings)

    def broken(*_: object) -> None:
        raise OSError("No space left on device")

    monkeypatch.setattr(publication, "_write_parquet", broken)
    with pytest.raises(SearchflowError, match="rolled back.*No space left"):
        publish(settings, built["version"])
    after = _state(settings)
    for key in ("view", "log", "snapshot", "searches", "users"):
        assert after[key] == before[key], key
    assert current_version(settings.home_path) == served
    assert not (settings.home_path / "published" / built["version"]).exists()
    assert built["version"] in after["candidates"]  # kept, to publish again or reject

    monkeypatch.undo()
    reject(settings, built["version"])
    assert built["version"] not in _state(settings)["candidates"]
    with pytest.raises(UsageError, match="served"):
        reject(settings, served)


def test_an_incomplete_candidate_is_not_published(story: dict) -> None:
    with pytest.raises(SearchflowError, match="lacks"):
        publish(story["settings"], candidates.new_version())
