"""Fixtures of the dashboard tests: a published snapshot, and the app under Streamlit's AppTest."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from searchflow.dashboard import APP
from tests.dashboard import snapshot

PAGES = ("overview", "funnel", "attribution", "segments", "health")


@pytest.fixture(scope="session")
def snapshot_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with the fixture snapshot published (built once per session; tests only read it)."""
    home = tmp_path_factory.mktemp("dashboard-home")
    snapshot.build(home)
    return home


@pytest.fixture
def warehouse(snapshot_home: Path) -> duckdb.DuckDBPyConnection:
    """The fixture's warehouse, read-only: the truth the independent queries run against."""
    con = duckdb.connect(str(snapshot_home / "fixture.duckdb"), read_only=True)
    yield con
    con.close()


@pytest.fixture
def open_page(snapshot_home: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., AppTest]:
    """Run the app on one page against ``home`` (default: the fixture snapshot)."""

    def run(page: str, home: Path | None = None) -> AppTest:
        monkeypatch.setenv("SEARCHFLOW_HOME", str(home or snapshot_home))
        app = AppTest.from_file(str(APP), default_timeout=60)
        app.run()
        if page != "overview":
            app.switch_page(f"pages/{page}.py").run()
        assert not app.exception, [e.value for e in app.exception]
        return app

    return run


def metrics(app: AppTest) -> dict[str, tuple[str, str]]:
    """The page's KPIs: label -> (value, delta)."""
    return {m.label: (m.value, m.delta) for m in app.metric}
