"""searchflow forget: after the chain and the syncs, no trace of the user's id remains."""

from __future__ import annotations

import json
import re

import duckdb
import psycopg2
import pyarrow.parquet as pq
import pytest
import redis
from click.testing import CliRunner

from searchflow import audit, pii, restricted, warehouse
from searchflow.cli import cli

pytestmark = pytest.mark.services


def _pattern(user_id: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w.@-]){re.escape(user_id)}(?![\w@-])")


def _warehouse_traces(con: duckdb.DuckDBPyConnection, user_id: str) -> list[str]:
    found = []
    tables = con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() "
        "WHERE database_name = current_database()"
    ).fetchall()
    pattern = _pattern(user_id)
    for schema, table in tables:
        if (schema, table) == ("ops", "audit"):
            continue
        for row in con.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall():
            if any(isinstance(v, str) and pattern.search(v) for v in row):
                found.append(f"{schema}.{table}")
                break
    return found


def _postgres_traces(url: str, user_id: str) -> list[str]:
    found = []
    with psycopg2.connect(url) as con, con.cursor() as cur:
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'crm'")
        for (table,) in cur.fetchall():
            cur.execute(f"SELECT t::text FROM crm.{table} t")
            if any(_pattern(user_id).search(r[0]) for r in cur.fetchall()):
                found.append(table)
    return found


def _redis_traces(client: redis.Redis, user_id: str) -> list[str]:
    pattern, found = _pattern(user_id), []
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        if kind == "string":
            texts = [client.get(key)]
        elif kind == "list":
            texts = client.lrange(key, 0, -1)
        elif kind == "stream":
            texts = [v for _, f in client.xrange(key) for v in f.values()]
        else:
            texts = []
        if pattern.search(key.decode()) or any(pattern.search(t.decode()) for t in texts):
            found.append(key.decode())
    return found


def _restricted_traces(settings, needle: str) -> list[str]:
    """Tables of the restricted store (the contacts model) naming ``needle``."""
    store = restricted.restricted_path(settings.warehouse_path)
    if not store.exists():
        return []
    with duckdb.connect(str(store), read_only=True) as con:
        return _warehouse_traces(con, needle)


def _invoke(runner: CliRunner, *args: str) -> None:
    result = runner.invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output


def test_forget_leaves_no_trace(service_env, service_settings, postgres_url, redis_url):
    runner = CliRunner()
    simulation = ["--events", "3000", "--seed", "3", "--users", "400"]
    _invoke(runner, "run", *simulation)
    # The application's records of the same users (emails, consent), then the marts and syncs
    # again: the email queue addresses consented users from the restricted store.
    _invoke(runner, "generate", *simulation, "--sink", "postgres")
    _invoke(runner, "ingest", "--source", "app")
    _invoke(runner, "transform")
    _invoke(runner, "sync", "all")
    with psycopg2.connect(postgres_url) as con, con.cursor() as cur:
        cur.execute(
            "SELECT q.user_id, q.email FROM crm.email_queue q JOIN crm.user_segments s "
            "USING (user_id) ORDER BY q.user_id LIMIT 1"
        )
        user_id, email = cur.fetchone()
    assert "@" in email
    assert _restricted_traces(service_settings, email) == ["pii.user_contacts"]
    client = redis.Redis.from_url(redis_url)
    assert _redis_traces(client, user_id) and _postgres_traces(postgres_url, user_id)
    with warehouse.session(service_settings, read_only=True) as con:
        assert "raw.search_events" in _warehouse_traces(con, user_id)
    home = service_settings.home_path
    jsonl = [p for p in home.rglob("*.jsonl") if _pattern(user_id).search(p.read_text())]
    assert jsonl, "the chain's JSONL names the user before forget"

    pseudonym = pii.user_key(service_settings, user_id)  # the marts' key for the user
    with warehouse.session(service_settings, read_only=True) as con:
        assert any(t.startswith("marketing__") for t in _warehouse_traces(con, pseudonym))
    assert any(
        pseudonym in pq.read_table(p).column(0).to_pylist()
        for p in home.rglob("*mart_user_segments.parquet")
    ), "the published segments name the user before forget"

    forgotten = runner.invoke(cli, ["forget", user_id, "--json"])
    assert forgotten.exit_code == 0, forgotten.output
    summary = json.loads(forgotten.stdout.strip().splitlines()[-1])
    assert user_id not in forgotten.stdout
    assert summary["postgres"]["crm.email_queue"] >= 1

    with warehouse.session(service_settings, read_only=True) as con:
        assert _warehouse_traces(con, user_id) == []
        assert _warehouse_traces(con, email) == []
        assert _warehouse_traces(con, pseudonym) == []
        hashes = pii.suppressed_hashes(con)
        log = audit.entries(con, command="forget")
    assert pii.user_hash(service_settings, user_id) in hashes
    with warehouse.session(service_settings, read_only=True) as con:
        synced = audit.entries(con, command="sync")
    assert {e["target"] for e in synced} == {"user_segments", "email_triggers", "recommendations"}
    assert all(e["touched"]["run_id"] and e["actor"].startswith("user:") for e in synced)
    assert log[0]["target"] == summary["user_hash"] and user_id not in json.dumps(log, default=str)
    assert _restricted_traces(service_settings, user_id) == []
    assert _restricted_traces(service_settings, email) == []
    assert _postgres_traces(postgres_url, user_id) == []
    assert _postgres_traces(postgres_url, email) == []
    assert _redis_traces(client, user_id) == []
    assert _redis_traces(client, email) == []
    client.close()
    for path in home.rglob("*"):
        if path.is_file() and path.suffix in (".jsonl", ".json", ".html"):
            text = path.read_text(errors="replace")
            assert not _pattern(user_id).search(text) and email not in text, path
    parquet = sorted(home.rglob("*.parquet"))
    assert parquet, "the chain published Parquet snapshots"
    for path in parquet:
        for column in pq.read_table(path).to_pydict().values():
            assert not any(
                isinstance(v, str) and (_pattern(user_id).search(v) or pseudonym in v)
                for v in column
            ), path
    key = pii.key_path(service_settings)
    assert key.stat().st_mode & 0o777 == 0o600

    # The next sync does not bring the user back (the marts no longer hold them).
    again = runner.invoke(cli, ["sync", "all", "--json"])
    assert again.exit_code in (0, 3), again.output
    assert _postgres_traces(postgres_url, user_id) == []
