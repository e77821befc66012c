"""Issue 11's check, in process: a held ingestion batch stays out of the marts and the
destinations, one batch identity runs from generation to sync, a forced release brings it in.

Real generator, DuckDB, dbt, Postgres and Redis; the gated functions every path calls.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from flows import gated
from generator import config_from_options
from searchflow import ledger, warehouse
from searchflow.config import Settings
from searchflow.errors import GateFailed

pytestmark = [pytest.mark.services, pytest.mark.slow]


def _batch(settings: Settings, events: Path, seed: int, malformed: float = 0.0) -> str:
    config = config_from_options(events=2000, users=300, seed=seed, malformed_rate=malformed)
    return gated.gated_generate(settings, config, "jsonl", events)["batch_id"]


def _searches(settings: Settings) -> int:
    with warehouse.session(settings, read_only=True) as con:
        return int(
            con.execute("SELECT sum(searches) FROM analytics.fct_search_funnel").fetchone()[0]
        )


def _clean_searches(settings: Settings, ingestions: list[str]) -> int:
    with warehouse.session(settings, read_only=True) as con:
        return int(
            con.execute(
                "SELECT count(*) FROM raw.search_events WHERE list_contains(?, batch_id)",
                [ingestions],
            ).fetchone()[0]
        )


def test_a_held_batch_stays_out_until_forced(service_settings: Settings, tmp_path: Path):
    settings = service_settings
    events = tmp_path / "events"

    gen1 = _batch(settings, events, seed=1)
    ing1 = gated.gated_ingest(settings, "jsonl", events, parent_batch_id=gen1)["batch_id"]
    v1 = gated.gated_transform(settings)
    assert v1["gate"]["outcome"] == "passed" and v1["parents"] == [ing1]
    synced = gated.gated_sync(settings, "user_segments")
    assert synced["gate"]["outcome"] == "passed" and synced["mart_version"] == v1["version"]
    assert gated.gated_sync(settings, "user_segments")["nothing_new"] is True

    with warehouse.session(settings, read_only=True) as con:
        story = ledger.lineage(con, gen1)
    assert [(r["stage"], r["state"]) for r in story] == [
        ("generation", "published"),
        ("ingestion", "published"),
        ("transformation", "published"),
        ("sync", "published"),
    ]
    assert story[3]["parents"] == [v1["version"]] and story[3]["source"] == "user_segments"

    gen2 = _batch(settings, events, seed=2, malformed=0.3)
    with pytest.raises(GateFailed) as caught:
        gated.gated_ingest(settings, "jsonl", events, parent_batch_id=gen2)
    held = caught.value.summary["batch_id"]

    v2 = gated.gated_transform(settings)
    assert held not in v2["parents"]
    assert _searches(settings) == _clean_searches(settings, [ing1])

    gen3 = _batch(settings, events, seed=3)
    ing3 = gated.gated_ingest(settings, "jsonl", events, parent_batch_id=gen3)["batch_id"]
    v3 = gated.gated_transform(settings)
    assert v3["parents"] == [ing3]
    assert _searches(settings) == _clean_searches(settings, [ing1, ing3])

    gated.release(settings, held, force=True)
    v4 = gated.gated_transform(settings)
    assert v4["parents"] == [held]
    assert _searches(settings) == _clean_searches(settings, [ing1, ing3, held])
    with warehouse.session(settings, read_only=True) as con:
        assert ledger.published_version(con)["version"] == v4["version"]
        row = ledger.get(con, held)
    assert row["forced"] and row["gate_outcome"] == "forced"
