"""The JSONL sink's change records (``users/``, ``bookings/``) land in ``raw.app_*``, exactly once,
in the same ingestion batch as the events, under the app extraction's rules."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from searchflow.ingest import run_ingestion

from .conftest import reconciles
from .helpers import event, line


def user(i: int, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "user_id": f"user_{i}",
        "email": f"user.{i}@example.com",
        "full_name": f"User {i}",
        "phone": "+1-555-000-0000",
        "home_city": "Lisbon",
        "home_country": "PT",
        "loyalty_tier": "basic",
        "marketing_consent": True,
        "created_at": "2025-01-01T00:00:00.000000Z",
        "updated_at": "2025-01-01T00:00:00.000000Z",
    }
    return row | overrides


def booking(i: int, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "booking_id": f"b-{i}",
        "user_id": f"user_{i}",
        "status": "confirmed",
        "amount": 120.5 + i,
        "currency": "EUR",
        "product_type": "hotel",
        "created_at": "2025-01-02T00:00:00.000000Z",
        "updated_at": "2025-01-02T00:00:00.000000Z",
    }
    return row | overrides


def write(folder: Path, name: str, lines: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("".join(f"{x}\n" for x in lines))
    return path


@pytest.fixture
def events_dir(tmp_path: Path) -> Path:
    root = tmp_path / "events"
    write(root / "search", "gen-a.jsonl", [line(event("search", i)) for i in range(1, 4)])
    write(
        root / "users",
        "gen-a.jsonl",
        [
            line(user(1)),
            line(user(2, marketing_consent=False)),
            # a later version of user_1: consent withdrawn
            line(user(1, marketing_consent=False, updated_at="2025-01-03T00:00:00.000000Z")),
            line(user(3, loyalty_tier="diamond")),  # breaks the contract
            '{"user_id": "user_4", "email": ',  # not JSON
            line(user(5, marketing_consent="yes")),  # consent of the wrong type: unknown
        ],
    )
    write(
        root / "bookings",
        "gen-a.jsonl",
        [
            line(booking(1)),
            line(booking(1, status="cancelled", updated_at="2025-01-04T00:00:00.000000Z")),
            line(booking(2, amount=-3)),  # breaks the contract
        ],
    )
    return root


def test_change_records_land_in_raw_app_tables_with_the_events(settings, events_dir, query):
    summary = run_ingestion(settings, "jsonl", events_dir)

    assert reconciles(summary)
    assert summary["record_files_read"] == 2
    users, bookings = summary["per_type"]["app_users"], summary["per_type"]["app_bookings"]
    assert users == {"read": 6, "landed": 3, "duplicates": 0, "dead_letters": 3, "suppressed": 0}
    assert bookings == {"read": 3, "landed": 2, "duplicates": 0, "dead_letters": 1, "suppressed": 0}
    assert summary["per_type"]["search"]["landed"] == 3  # the events, in the same batch

    landed = query(
        "SELECT user_id, marketing_consent, updated_at::VARCHAR, source, batch_id "
        "FROM raw.app_users ORDER BY user_id, updated_at"
    )
    assert [r[:3] for r in landed] == [
        ("user_1", True, "2025-01-01 00:00:00"),
        ("user_1", False, "2025-01-03 00:00:00"),
        ("user_2", False, "2025-01-01 00:00:00"),
    ]
    assert {(r[3], r[4]) for r in landed} == {("jsonl", summary["batch_id"])}
    assert query("SELECT booking_id, status, amount::VARCHAR FROM raw.app_bookings ORDER BY 2") == [
        ("b-1", "cancelled", "121.50"),
        ("b-1", "confirmed", "121.50"),
    ]
    dead = query(
        "SELECT event_type, reason, detail, source_ref FROM raw.dead_letter_events "
        "ORDER BY event_type, source_ref"
    )
    assert [(d[0], d[1], d[2]) for d in dead] == [
        ("app_bookings", "invalid_record", "amount missing or negative"),
        ("app_users", "invalid_record", "unknown loyalty_tier"),
        ("app_users", "unparsable", "not a JSON object"),
        ("app_users", "invalid_record", "marketing_consent unknown"),
    ]
    assert dead[2][3].endswith("users/gen-a.jsonl:5")
    # one batch, gated like any other: its ledger row counts the records too
    (counts,) = query(f"SELECT counts FROM ops.batches WHERE batch_id = '{summary['batch_id']}'")[0]
    assert json.loads(counts)["per_type"]["app_users"]["landed"] == 3
    files = query("SELECT path, lines FROM raw.ingest_files ORDER BY path")
    assert [(Path(p).parent.name, n) for p, n in files] == [
        ("bookings", 3),
        ("search", 3),
        ("users", 6),
    ]


def test_a_second_ingest_lands_no_duplicates(settings, events_dir, query):
    run_ingestion(settings, "jsonl", events_dir)

    again = run_ingestion(settings, "jsonl", events_dir)
    assert again["nothing_new"] and again["read"] == 0 and again["record_files_read"] == 0

    # the same records under another name (a copied file) are read, and are all duplicates
    shutil.copy(events_dir / "users" / "gen-a.jsonl", events_dir / "users" / "gen-b.jsonl")
    copied = run_ingestion(settings, "jsonl", events_dir)
    users = copied["per_type"]["app_users"]
    assert users["read"] == 6 and users["landed"] == 0
    # a dead letter is keyed by its file and line: the copy's malformed lines are new ones
    assert users["duplicates"] == 3 and users["dead_letters"] == 3
    assert query("SELECT count(*), count(DISTINCT (user_id, updated_at)) FROM raw.app_users") == [
        (3, 3)
    ]
    assert reconciles(copied)


def test_a_forgotten_user_is_suppressed_not_landed(settings, events_dir, query):
    import duckdb

    from searchflow import pii

    settings.ensure_home()
    con = duckdb.connect(str(settings.warehouse_path))
    try:
        pii.suppress(con, pii.user_hash(settings, "user_1"))
    finally:
        con.close()

    summary = run_ingestion(settings, "jsonl", events_dir)

    users, bookings = summary["per_type"]["app_users"], summary["per_type"]["app_bookings"]
    assert users["suppressed"] == 2 and users["landed"] == 1
    assert bookings["suppressed"] == 2 and bookings["landed"] == 0
    assert query("SELECT count(*) FROM raw.app_users WHERE user_id = 'user_1'") == [(0,)]
    assert reconciles(summary)


@pytest.mark.services
@pytest.mark.slow
def test_run_chain_queues_emails_only_for_consenting_users(service_settings, postgres_url):
    """The chain fed by the JSONL sink (``searchflow run``) knows consent, so it queues emails."""
    from flows.chain import run_chain

    summary = run_chain(service_settings, events=3000, seed=5)

    ingestion = summary["stages"]["ingestion"]
    assert ingestion["per_type"]["app_users"]["landed"] > 0
    assert ingestion["per_type"]["app_bookings"]["landed"] > 0
    emails = summary["stages"]["sync"]["email_triggers"]
    assert emails["read"] > 0 and emails["inserted"] > 0
    with psycopg2.connect(postgres_url) as con, con.cursor() as cur:
        cur.execute("SELECT user_id, email FROM crm.email_queue")
        queued = cur.fetchall()
    con.close()
    assert queued and all(email and "@" in email for _, email in queued)
    # every queued user's newest landed profile gives consent (the as-of time is the newest event)
    consent = dict(
        _query_warehouse(
            service_settings,
            "SELECT user_id, arg_max(marketing_consent, updated_at) FROM raw.app_users "
            "GROUP BY user_id",
        )
    )
    assert all(consent.get(user_id) is True for user_id, _ in queued)


def _query_warehouse(settings, sql: str) -> list[tuple]:
    import duckdb

    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.mark.services
def test_redis_record_streams_land_once(home, redis_url, query):
    """The Redis sink's ``app:users`` / ``app:bookings`` streams land like the JSONL folders."""
    from generator import GeneratorConfig, generate, write
    from searchflow.config import Settings

    settings = Settings(home=home, redis_url=redis_url)
    batch = generate(GeneratorConfig(events=600, users=50, seed=7))
    write(batch, "redis", settings)

    summary = run_ingestion(settings, "redis", consumer="c1", chunk_size=97)

    assert reconciles(summary) and summary["pending"] == 0
    for record_type, n in batch.records.counts().items():
        assert summary["per_type"][f"app_{record_type}"]["landed"] == n > 0
    assert query("SELECT count(*) FROM raw.app_users") == [(batch.records.counts()["users"],)]
    assert query("SELECT DISTINCT source FROM raw.app_bookings") == [("redis",)]
    again = run_ingestion(settings, "redis", consumer="c1")
    assert again["nothing_new"] and again["read"] == 0
