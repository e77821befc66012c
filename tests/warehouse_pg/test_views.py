"""Publication's view repointing in a PostgreSQL warehouse: the published names are PostgreSQL
views, repointed inside the publication's transaction (a rollback leaves the previous version
served), even when the new version's columns differ, and restorable from what was read before."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from searchflow import warehouse
from searchflow.config import Settings

# the module (the package exports its function publish under the same name)
publish = importlib.import_module("searchflow.transform.publish")

pytestmark = pytest.mark.services


def _columns(con: object) -> list[str]:
    cursor = con.execute("SELECT * FROM analytics.fct LIMIT 0")  # type: ignore[attr-defined]
    return [d[0] for d in cursor.description]


def test_views_repoint_in_the_transaction_and_restore(home: Path, warehouse_url: str) -> None:
    settings = Settings(home=home, warehouse_url=warehouse_url)
    with warehouse.session(settings) as con:
        for version, columns in (("v1", "a INTEGER"), ("v2", "a INTEGER, b INTEGER")):
            con.execute(f"CREATE SCHEMA analytics__{version}")
            con.execute(f"CREATE TABLE analytics__{version}.fct ({columns})")
        publish.repoint(con, {"analytics.fct": "analytics__v1.fct"})
        assert _columns(con) == ["a"]
        before = publish._view_sql(con, "analytics.fct")
        assert before is not None and "analytics__v1" in before

        con.execute("BEGIN TRANSACTION")
        publish.repoint(con, {"analytics.fct": "analytics__v2.fct"})
        assert _columns(con) == ["a", "b"]
        con.execute("ROLLBACK")
        con.execute("CALL pg_clear_cache()")
        assert _columns(con) == ["a"]

        publish.repoint(con, {"analytics.fct": "analytics__v2.fct"})
        assert _columns(con) == ["a", "b"]
        assert not publish._is_table(con, "analytics.fct")
        warehouse.execute_in_place(con, before)
        assert _columns(con) == ["a"]
