"""A small published world for the API tests, written by the platform's own writers: the ledger
(searchflow.ledger), the raw dead letters, a published mart version (searchflow.published), the
sync history (crm.sync_runs) and recommendation keys in Redis. The API then reads it as it would
after `searchflow run`, on the real Postgres and Redis."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from searchflow import ledger, published, warehouse
from searchflow.api import create_app
from searchflow.config import Settings

TOKEN = "a-long-random-test-token-0123456789"
USERS = ("user_000001", "user_000002", "user_000003")
MALFORMED_LINE = '{"event_id": "e9", "email": "jane.doe@example.com", "phone": "+1 415 555 0100",'


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def build_world(settings: Settings, postgres_url: str, redis_url: str) -> dict[str, object]:
    """Ledger, dead letters, marts and Parquet snapshot, sync runs and reco keys."""
    now = _now()
    with warehouse.session(settings) as con:
        warehouse.ensure_raw_schema(con)
        ledger.record(con, "gen-1", "generation", source="jsonl", counts={"events": 160})
        ledger.judge(con, "gen-1", "passed")
        ledger.record(
            con,
            "ingest-ok",
            "ingestion",
            parents=["gen-1"],
            source="jsonl",
            counts={"landed": 100, "dead_letters": 2, "seconds": 1.5},
        )
        ledger.judge(con, "ingest-ok", "passed")
        ledger.record(
            con,
            "ingest-bad",
            "ingestion",
            source="redis",
            counts={"landed": 40, "dead_letters": 18, "seconds": 0.7},
        )
        ledger.judge(
            con,
            "ingest-bad",
            "failed",
            ["ingestion.batch: dead_letter_share observed 0.31, expected at most 0.05"],
        )
        ledger.record(
            con, "ingest-gone", "ingestion", source="jsonl", counts={"landed": 999}, state="landed"
        )
        ledger.discard(con, "ingest-gone")
        ledger.record(con, "t1", "transformation", parents=["ingest-ok"], counts={"seconds": 30.0})
        ledger.judge(con, "t1", "passed")
        ledger.record(con, "sync-1", "sync", parents=["t1"], source="user_segments")
        ledger.judge(con, "sync-1", "passed")
        con.execute(
            "INSERT INTO raw.dead_letter_events VALUES "
            "('d1', ?, 'unparsable', 'trailing comma', 'search', 'jsonl', 'f.jsonl:3', 'ingest-ok', ?),"
            "('d2', 'x', 'missing_field', 'no event_id', NULL, 'jsonl', 'f.jsonl:9', 'ingest-ok', ?),"
            "('d3', '{}', 'missing_field', 'no event_id', NULL, 'redis', '1-0', 'ingest-bad', ?)",
            [MALFORMED_LINE, now, now, now],
        )
        con.execute("CREATE SCHEMA marketing")
        con.execute(
            """
            CREATE TABLE marketing.mart_user_segments AS
            SELECT * FROM (VALUES
                ('user_000001', 'engaged', 12, 4, 1, 250.50::DECIMAL(14,2)),
                ('user_000002', 'casual', 2, 0, 0, 0.00::DECIMAL(14,2)),
                ('user_000003', 'converter', 5, 3, 2, 900.00::DECIMAL(14,2))
            ) t(user_id, segment, total_searches, total_clicks, total_conversions, lifetime_value)
            """
        )
        ledger.record_publication(con, "t1", parents=["ingest-ok"])
        published.write_snapshot(con, settings.home_path, "t1", ["marketing.mart_user_segments"])
        published.export_ops(con, settings.home_path)

    import psycopg2

    from searchflow.sync.postgres_ddl import ensure_crm_schema
    from searchflow.sync.postgres_sync import record_run

    pg = psycopg2.connect(postgres_url)
    with pg, pg.cursor() as cur:
        ensure_crm_schema(cur)
        for i, (sync, status, seconds) in enumerate(
            [
                ("user_segments", "succeeded", 1.0),
                ("user_segments", "succeeded", 3.0),
                ("user_segments", "failed", 0.5),
                ("recommendations", "succeeded", 2.0),
            ]
        ):
            record_run(
                cur,
                {
                    "run_id": f"run-{i}",
                    "sync": sync,
                    "batch_id": f"run-{i}",
                    "started_at": now - timedelta(seconds=seconds),
                    "finished_at": now,
                    "status": status,
                    "full_resync": False,
                    "read": 3,
                    "inserted": 3 if status == "succeeded" else 0,
                    "updated": 0,
                    "unchanged": 0,
                    "deleted": 0,
                    "failed": 0 if status == "succeeded" else 3,
                    "seconds": seconds,
                    "error": None if status == "succeeded" else "connection lost",
                    "mart_version": "t1",
                },
            )
    pg.close()

    import redis

    client = redis.Redis.from_url(redis_url)
    value = {"destinations": ["Paris", "Rome", "Lisbon"], "score": 0.5, "generated_at": "x"}
    client.set(f"{settings.reco_prefix}user_000001", json.dumps(value), ex=3600)
    client.close()
    return {"now": now}


@pytest.fixture
def api_settings(home, postgres_url: str, redis_url: str) -> Settings:
    return Settings(home=home, postgres_url=postgres_url, redis_url=redis_url, api_token=TOKEN)


@pytest.fixture
def world(api_settings: Settings, postgres_url: str, redis_url: str) -> dict[str, object]:
    return build_world(api_settings, postgres_url, redis_url)


@pytest.fixture
def client(api_settings: Settings, world: dict[str, object]) -> Iterator[TestClient]:
    """The app over the fixture world, no Prefect API."""
    with TestClient(create_app(api_settings, prefect_api_url=None)) as test_client:
        yield test_client


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}
