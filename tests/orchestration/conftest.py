"""A real Prefect server for the orchestration tests: one per session, on a free port, with its own
PREFECT_HOME, stopped at the end (also when a test fails). Triggers only fire on a real server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from deployments.server import PrefectServer, start_server


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    server = start_server(tmp_path_factory.mktemp("prefect-home"), ui=False, timeout=300)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def prepared(prefect_server: PrefectServer):
    """The pool, the warehouse limit and every deployment, applied once for the session; the
    sweeper paused, so its runs never mix with the chain a test follows (or outlive the test)."""
    from deployments.prepare import prepare

    return prepare(prefect_server.api_url, sweeper=False)


@pytest.fixture
def prefect_env(prefect_server: PrefectServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """PREFECT_API_URL pointing at the session server, for commands that read it."""
    monkeypatch.setenv("PREFECT_API_URL", prefect_server.api_url)
    return prefect_server.api_url


@pytest.fixture
def logs_dir(tmp_path: Path) -> Path:
    path = tmp_path / "logs"
    path.mkdir()
    return path
