"""The local Prefect server's database: Prefect's SQLite under PREFECT_HOME unless
SEARCHFLOW_PREFECT_DATABASE_URL names another (PostgreSQL for busy chains)."""

from __future__ import annotations

from pathlib import Path

from deployments.server import DATABASE_ENV, server_env


def test_sqlite_under_prefect_home_by_default(tmp_path: Path) -> None:
    env = server_env(tmp_path, base={})
    assert "PREFECT_SERVER_DATABASE_CONNECTION_URL" not in env
    assert env["PREFECT_HOME"] == str(tmp_path)


def test_a_configured_database_reaches_the_server(tmp_path: Path) -> None:
    url = "postgresql+asyncpg://prefect@127.0.0.1:5432/prefect"
    env = server_env(tmp_path, base={DATABASE_ENV: url})
    assert env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] == url
