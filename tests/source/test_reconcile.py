"""``searchflow source reconcile`` and the read-only source role."""

from __future__ import annotations

import json
import uuid
from urllib.parse import urlsplit, urlunsplit

import duckdb
import psycopg2
import pytest
from click.testing import CliRunner

from flows.gated import gated_ingest
from generator import GeneratorConfig, generate, write
from searchflow.appdb import grant_source_role, source_role_grants
from searchflow.cli import cli
from searchflow.config import Settings
from searchflow.source import reconcile

CONFIG = GeneratorConfig(events=3000, users=300, seed=9, days=30)


@pytest.fixture
def landed(service_settings: Settings):
    batch = generate(CONFIG)
    write(batch, "postgres", service_settings)
    gated_ingest(service_settings, "app")
    return batch


def test_source_and_raw_agree(service_settings, landed):
    result = reconcile(service_settings)
    assert result["accuracy"] == 1.0 and result["ok"]
    users = result["tables"]["users"]
    assert users["source_rows"] == CONFIG.users
    assert users["levels"]["raw"]["mismatching_keys"] == []
    assert "raw" in result["accuracy_by_level"]


def test_a_corrupted_warehouse_row_is_named(service_settings, landed):
    con = duckdb.connect(str(service_settings.warehouse_path))
    booking = con.execute(
        "SELECT booking_id FROM raw.app_bookings ORDER BY booking_id LIMIT 1"
    ).fetchone()[0]
    con.execute(f"UPDATE raw.app_bookings SET amount = amount + 1 WHERE booking_id = '{booking}'")
    con.close()
    result = reconcile(service_settings)
    bookings = result["tables"]["bookings"]["levels"]["raw"]
    assert bookings["mismatching_keys"] == [{"key": booking, "problem": "differs: amount"}]
    assert bookings["matching_rows"] == bookings["source_rows"] - 1
    assert len(bookings["days_differing"]) == 1
    day = bookings["days_differing"][0]
    assert day["source_rows"] == day["warehouse_rows"]
    assert day["warehouse_amount"] == pytest.approx(day["source_amount"] + 1)
    total = result["source_rows"]
    assert result["accuracy"] == pytest.approx((total - 1) / total, abs=1e-6)


def test_the_command_prints_json_and_exits_1_below_the_goal(service_env, landed, service_settings):
    runner = CliRunner()
    ok = runner.invoke(cli, ["source", "reconcile", "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout.strip().splitlines()[-1])["accuracy"] == 1.0
    con = duckdb.connect(str(service_settings.warehouse_path))
    con.execute("DELETE FROM raw.app_users WHERE user_id IN "
                "(SELECT user_id FROM raw.app_users ORDER BY user_id LIMIT 5)")  # fmt: skip
    con.close()
    below = runner.invoke(cli, ["source", "reconcile", "--json"])
    assert below.exit_code == 1
    found = json.loads(below.stdout.strip().splitlines()[-1])
    missing = found["tables"]["users"]["levels"]["raw"]["mismatching_keys"]
    assert len(missing) == 5 and {m["problem"] for m in missing} == {"missing in warehouse"}


def _as(url: str, role: str) -> str:
    parts = urlsplit(url)
    host = f"{role}@{parts.hostname or '127.0.0.1'}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=host))


def test_the_read_only_source_role_reads_app_and_nothing_else(
    service_settings, postgres_url, landed
):
    role = f"sf_source_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(postgres_url)
    admin.autocommit = True
    cur = admin.cursor()
    database = admin.info.dbname
    cur.execute(f"CREATE ROLE {role} LOGIN")
    cur.execute("CREATE SCHEMA IF NOT EXISTS crm")
    cur.execute("CREATE TABLE IF NOT EXISTS crm.secret (x int)")
    try:
        assert any("SELECT ON app.users, app.bookings" in s for s in source_role_grants(
            cur, database, role))  # fmt: skip
        grant_source_role(cur, database, role)
        settings = service_settings.model_copy(update={"source_url": _as(postgres_url, role)})
        assert reconcile(settings)["accuracy"] == 1.0  # extraction and reconcile work as it
        reader = psycopg2.connect(_as(postgres_url, role))
        with reader.cursor() as rc:
            rc.execute("SELECT count(*) FROM app.users")
            assert rc.fetchone()[0] == CONFIG.users
            with pytest.raises(psycopg2.Error):
                rc.execute("SELECT * FROM crm.secret")
        reader.rollback()
        reader.set_session(readonly=False)
        with reader.cursor() as rc, pytest.raises(psycopg2.Error):
            rc.execute("UPDATE app.users SET loyalty_tier = 'gold'")
        reader.close()
    finally:
        cur.execute(f"DROP OWNED BY {role}")
        cur.execute(f"DROP ROLE {role}")
        admin.close()


def test_the_sync_role_cannot_read_the_application_tables(service_settings, postgres_url, landed):
    """The two roles are disjoint: the sync role (crm only) never reads app.users' PII."""
    from searchflow.sync.access import grant_sync_role
    from searchflow.sync.postgres_ddl import ensure_crm_schema

    role = f"sf_sync_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(postgres_url)
    admin.autocommit = True
    cur = admin.cursor()
    cur.execute(f"CREATE ROLE {role} LOGIN")
    try:
        ensure_crm_schema(cur)
        grant_sync_role(cur, admin.info.dbname, role)
        writer = psycopg2.connect(_as(postgres_url, role))
        with writer.cursor() as wc:
            wc.execute("SELECT count(*) FROM crm.email_queue")
            assert wc.fetchone()[0] == 0
            with pytest.raises(psycopg2.Error):
                wc.execute("SELECT email FROM app.users")
        writer.close()
    finally:
        cur.execute(f"DROP OWNED BY {role}")
        cur.execute(f"DROP ROLE {role}")
        admin.close()
