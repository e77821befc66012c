"""The audit log: who ran a write command, when, and what it touched."""

from __future__ import annotations

import duckdb
import pytest

from searchflow import audit
from searchflow.errors import SearchflowError


@pytest.fixture
def con():
    connection = duckdb.connect()
    yield connection
    connection.close()


def test_rows_say_who_when_and_what(con) -> None:
    first = audit.record(con, "retention", touched={"raw.search_events": 3})
    second = audit.record(
        con, "sync", target="user_segments", touched={"inserted": 2}, flow_run_id="fr1"
    )
    rows = audit.entries(con)
    assert {r["audit_id"] for r in rows} == {first, second}
    by_id = {r["audit_id"]: r for r in rows}
    assert by_id[second]["actor"] == "flow-run:fr1" and by_id[second]["flow_run_id"] == "fr1"
    assert by_id[first]["actor"].startswith("user:") and by_id[first]["flow_run_id"] is None
    assert by_id[first]["touched"] == {"raw.search_events": 3}
    assert [r["target"] for r in audit.entries(con, command="sync")] == ["user_segments"]
    assert by_id[first]["ran_at"] is not None


def test_an_unknown_command_is_refused(con) -> None:
    with pytest.raises(SearchflowError, match="unknown audited command"):
        audit.record(con, "drop everything")
