"""The issue's check on generated data: 100,000 events with a fixed seed (duplicates, late and
malformed events included), generated, ingested, transformed, then compared with an independent
recomputation from the raw tables: funnel totals and revenue to the cent, every known user's
segment, one row per user, and recommendations for every user with interest."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from searchflow import pii
from searchflow.config import Settings
from searchflow.transform import run_transform

from .keys import key_map
from .rawdata import publish_batch
from .recompute import mismatches

pytestmark = pytest.mark.slow

generator = pytest.importorskip("generator")
ingest = pytest.importorskip("searchflow.ingest")


def test_marts_equal_the_recomputation_on_100k_generated_events(
    settings: Settings, tmp_path: Path
) -> None:
    config = generator.GeneratorConfig(
        events=100_000,
        users=5_000,
        seed=20240601,
        duplicate_rate=0.01,
        late_rate=0.01,
        malformed_rate=0.005,
    )
    generator.write(generator.generate(config), "jsonl", settings, tmp_path / "events")
    landed = ingest.run_ingestion(settings, "jsonl", path=tmp_path / "events")
    publish_batch(settings, landed["batch_id"], gate="passed")  # the ingestion gate's verdict
    summary = run_transform(settings)
    assert summary["failed"] == 0

    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        assert mismatches(con, key_map(settings)) == []
        pii.register_user_key(con, pii.pii_key(settings))  # the marts key users by sf_user_key
        missing = con.execute(
            """
            SELECT count(DISTINCT j.user_id)
            FROM intermediate.int_user_journeys j
            LEFT JOIN marketing.mart_recommendations r ON r.user_id = sf_user_key(j.user_id)
            WHERE j.user_id IS NOT NULL AND j.destination IS NOT NULL AND r.user_id IS NULL
            """
        ).fetchone()[0]
        users = con.execute(
            "SELECT count(*), count(DISTINCT user_id) FROM marketing.mart_user_segments"
        ).fetchone()
    assert missing == 0
    assert users[0] == users[1] > 1000
