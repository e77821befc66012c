"""``ingest --source app``: the application's users and bookings, incremental, read-only, gated."""

from __future__ import annotations

from datetime import datetime, timedelta

import psycopg2
import pytest

from flows.gated import gated_ingest
from generator import GeneratorConfig, generate, write
from searchflow import appdb
from searchflow.errors import GateFailed, UsageError
from searchflow.ingest import run_ingestion
from tests.ingest.conftest import reconciles

CONFIG = GeneratorConfig(events=3000, users=400, seed=3, days=30)


@pytest.fixture
def source(service_settings, postgres_url):
    batch = generate(CONFIG)
    write(batch, "postgres", service_settings)
    con = psycopg2.connect(postgres_url)
    con.autocommit = True
    yield batch, con
    con.close()


def test_lands_every_version_once_and_gates_the_batch(service_settings, source, query):
    batch, _ = source
    summary = gated_ingest(service_settings, "app")
    users, bookings = batch.records.current_users.num_rows, batch.records.current_bookings.num_rows
    assert summary["per_type"]["app_users"]["landed"] == users
    assert summary["per_type"]["app_bookings"]["landed"] == bookings
    assert reconciles(summary) and summary["gate"]["outcome"] == "passed"
    assert summary["source_accuracy"] == 1.0
    state = query(f"SELECT state FROM ops.batches WHERE batch_id = '{summary['batch_id']}'")
    assert state == [("published",)]
    again = gated_ingest(service_settings, "app")
    assert again["landed"] == 0 and again["gate"] is None
    full = run_ingestion(service_settings, "app", full=True)
    assert full["landed"] == 0 and full["duplicates"] == users + bookings


def test_updates_land_as_new_versions_late_ones_too(service_settings, source, query):
    _, con = source
    run_ingestion(service_settings, "app")
    with con.cursor() as cur:
        cur.execute("SELECT max(updated_at) FROM app.bookings")
        newest = cur.fetchone()[0]
        cur.execute(
            "UPDATE app.bookings SET status = 'cancelled', updated_at = %s WHERE booking_id = "
            "(SELECT min(booking_id) FROM app.bookings WHERE status = 'confirmed') "
            "RETURNING booking_id",
            (newest + timedelta(hours=1),),
        )
        (cancelled,) = cur.fetchone()
        # a late update: its updated_at is before the newest one already extracted
        cur.execute(
            "UPDATE app.users SET loyalty_tier = 'platinum', updated_at = %s WHERE user_id = "
            "(SELECT min(user_id) FROM app.users WHERE loyalty_tier <> 'platinum') "
            "RETURNING user_id",
            (newest - timedelta(hours=3),),
        )
        (upgraded,) = cur.fetchone()
    summary = run_ingestion(service_settings, "app")
    assert summary["landed"] == 2 and summary["source_accuracy"] == 1.0
    versions = query(
        f"SELECT status FROM raw.app_bookings WHERE booking_id = '{cancelled}' ORDER BY updated_at"
    )
    assert versions[-1] == ("cancelled",) and len(versions) == 2
    tiers = query(f"SELECT loyalty_tier FROM raw.app_users WHERE user_id = '{upgraded}' "
                  "ORDER BY updated_at")  # fmt: skip
    assert tiers[-1] == ("platinum",)


def test_backfill_of_a_range_and_dead_letters(service_settings, source, query):
    _, con = source
    with con.cursor() as cur:
        cur.execute("SELECT min(created_at), max(created_at) FROM app.bookings")
        first, last = cur.fetchone()
        cur.execute("UPDATE app.bookings SET status = 'lost' WHERE booking_id = "
                    "(SELECT min(booking_id) FROM app.bookings)")  # fmt: skip
    middle = first + (last - first) / 2
    since = datetime(middle.year, middle.month, middle.day)
    summary = run_ingestion(service_settings, "app", since=since, until=since + timedelta(days=2))
    landed = query("SELECT min(updated_at), max(updated_at) FROM raw.app_bookings")[0]
    assert landed[0] >= since and landed[1] < since + timedelta(days=2)
    rest = run_ingestion(service_settings, "app", full=True)
    assert summary["dead_letters"] + rest["dead_letters"] == 1  # once, whichever run saw it
    assert rest["landed"] > 0 and reconciles(rest)
    reason = query("SELECT detail, event_type FROM raw.dead_letter_events")
    assert reason == [("unknown status", "app_bookings")]
    assert rest["source_accuracy"] < 1.0
    with pytest.raises(UsageError):
        run_ingestion(service_settings, "postgres", full=True)


def test_a_source_out_of_step_is_held(service_settings, source):
    _, con = source
    run_ingestion(service_settings, "app")
    with con.cursor() as cur:  # many rows change their amount without a new updated_at
        cur.execute("UPDATE app.bookings SET amount = amount + 1")
        cur.execute("UPDATE app.users SET updated_at = now() "
                    "WHERE user_id = (SELECT min(user_id) FROM app.users)")  # fmt: skip
    with pytest.raises(GateFailed) as failed:
        gated_ingest(service_settings, "app")
    assert any("source_accuracy" in r for r in failed.value.summary["gate"]["reasons"])


def test_the_source_connection_is_read_only(service_settings, source):
    with appdb.read_only(service_settings) as conn:
        appdb.begin_read_only(conn)
        with conn.cursor() as cur, pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):
            cur.execute("DELETE FROM app.users")
        conn.rollback()
        with conn.cursor() as cur:
            cur.execute("SHOW default_transaction_read_only")
            assert cur.fetchone() == ("on",)
