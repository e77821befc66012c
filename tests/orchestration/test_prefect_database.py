"""The demo's Prefect server on PostgreSQL: a database of its own beside the demo's, created when
missing (with Prefect's trigram extension), on a server that outlives the demo; SQLite otherwise.
A database the user chose always wins, and the report says which database a server uses."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg2
import pytest

from deployments.demo import PREFECT_DATABASE_SUFFIX, prefect_database, with_database
from deployments.server import (
    DATABASE_ENV,
    SQLITE,
    api_healthy,
    describe_database,
    process_database,
    server_env,
    start_server,
)
from searchflow.errors import UsageError
from searchflow.services import asyncpg_url


def test_asyncpg_url_keeps_everything_but_the_driver() -> None:
    url = "postgresql://me:secret@db.example:6543/crm"
    assert asyncpg_url(url) == "postgresql+asyncpg://me:secret@db.example:6543/crm"
    assert asyncpg_url("postgresql+psycopg2://me@h/crm") == "postgresql+asyncpg://me@h/crm"
    with pytest.raises(UsageError, match="not a PostgreSQL URL"):
        asyncpg_url("redis://localhost:6379/0")


def test_the_demo_database_reaches_the_server(tmp_path: Path) -> None:
    url = "postgresql+asyncpg://me@127.0.0.1:5432/searchflow_prefect"
    env = server_env(tmp_path, base={}, database_url=url)
    assert env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] == url
    assert describe_database(env) == f"PostgreSQL {url}"


def test_the_users_choice_wins_over_the_demos(tmp_path: Path) -> None:
    demo = "postgresql+asyncpg://me@127.0.0.1:5432/searchflow_prefect"
    mine = "postgresql+asyncpg://me:pw@db.example/prefect"
    env = server_env(tmp_path, base={DATABASE_ENV: mine}, database_url=demo)
    assert env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] == mine
    assert "pw" not in describe_database(env)
    # Prefect's own setting is a choice too, and is passed on under one name only
    prefects = "sqlite+aiosqlite:////data/prefect.db"
    env = server_env(
        tmp_path, base={"PREFECT_API_DATABASE_CONNECTION_URL": prefects}, database_url=demo
    )
    assert env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] == prefects
    assert "PREFECT_API_DATABASE_CONNECTION_URL" not in env


def test_sqlite_keeps_prefects_file(tmp_path: Path) -> None:
    demo = "postgresql+asyncpg://me@127.0.0.1:5432/searchflow_prefect"
    env = server_env(tmp_path, base={DATABASE_ENV: SQLITE}, database_url=demo)
    assert "PREFECT_SERVER_DATABASE_CONNECTION_URL" not in env
    assert describe_database(env) == f"SQLite {tmp_path / 'prefect.db'}"


def test_a_running_servers_database_is_read_from_its_environment(tmp_path: Path) -> None:
    """A server recorded before the record said its database: the demo reads the process's."""
    url = "postgresql+asyncpg://me:pw@127.0.0.1:5432/searchflow_prefect"
    env = server_env(tmp_path, base={"PATH": os.environ.get("PATH", "")}, database_url=url)
    process = subprocess.Popen(["sleep", "60"], env=env)
    try:
        assert (
            process_database(process.pid)
            == "PostgreSQL postgresql+asyncpg://me:***@127.0.0.1:5432/searchflow_prefect"
        )
    finally:
        process.kill()
        process.wait()
    assert process_database(process.pid) is None


def test_the_embedded_postgres_leaves_the_server_on_sqlite() -> None:
    url, why = prefect_database("postgresql://me@/searchflow?host=/tmp/pg", "embedded")
    assert url is None
    assert "embedded" in why


@pytest.fixture
def prefect_db(postgres_url: str) -> Iterator[tuple[str, str]]:
    """(the test's database URL, the name of the Prefect database beside it); dropped afterwards."""
    name = urlsplit(postgres_url).path.lstrip("/") + PREFECT_DATABASE_SUFFIX
    yield postgres_url, name
    con = psycopg2.connect(postgres_url)
    con.autocommit = True
    with con.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    con.close()


@pytest.mark.services
def test_the_prefect_database_is_created_beside_the_demos(prefect_db: tuple[str, str]) -> None:
    postgres_url, name = prefect_db
    url, why = prefect_database(postgres_url, "configured")
    if url is None and "pg_trgm" in why:
        pytest.skip(f"this PostgreSQL has no pg_trgm, which Prefect needs: {why}")
    assert url == asyncpg_url(with_database(postgres_url, name)), why
    con = psycopg2.connect(with_database(postgres_url, name))
    with con.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_extension WHERE extname = 'pg_trgm'")
        assert cur.fetchone()[0] == 1
    con.close()
    again, _ = prefect_database(postgres_url, "localhost")  # an existing one is used as it is
    assert again == url


@pytest.mark.services
@pytest.mark.prefect_server
@pytest.mark.slow
@pytest.mark.timeout(400)
def test_a_server_runs_on_the_prefect_database(
    prefect_db: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    postgres_url, name = prefect_db
    monkeypatch.delenv(DATABASE_ENV, raising=False)
    url, why = prefect_database(postgres_url, "configured")
    if url is None and "pg_trgm" in why:
        pytest.skip(f"this PostgreSQL has no pg_trgm, which Prefect needs: {why}")
    assert url is not None, why
    server = start_server(tmp_path / "prefect", ui=False, timeout=300, database_url=url)
    try:
        assert api_healthy(server.api_url)
        assert server.database is not None and server.database.startswith("PostgreSQL")
        assert process_database(server.process.pid) == server.database
        con = psycopg2.connect(with_database(postgres_url, name))
        with con.cursor() as cur:  # Prefect's tables are there, not in a SQLite file
            cur.execute("SELECT to_regclass('public.flow_run') IS NOT NULL")
            assert cur.fetchone()[0]
        con.close()
        assert not (tmp_path / "prefect" / "prefect.db").exists()
    finally:
        server.stop()
