"""dbt-duckdb and dbt internals used by searchflow/compat/dbt_duckdb.py: fails loudly when they change."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest

from searchflow.compat import dbt_duckdb


def test_dbt_duckdb_keeps_its_database_in_a_locked_class_attribute() -> None:
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    assert hasattr(DuckDBConnectionManager, "_ENV")
    assert hasattr(DuckDBConnectionManager._LOCK, "__enter__")


def test_release_frees_the_file_an_in_process_dbt_run_held(tmp_path) -> None:
    """After dbt-duckdb opened a database in this process, release_warehouse lets another process
    open it read-write."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    from dbt.adapters.duckdb.credentials import DuckDBCredentials
    from dbt.adapters.duckdb.environments import create

    path = tmp_path / "held.duckdb"
    env = create(DuckDBCredentials(path=str(path), database="held", schema="main"))
    handle = env.handle()
    handle.cursor().execute("CREATE TABLE t AS SELECT 1 AS x")
    DuckDBConnectionManager._ENV = env
    env.handle_count += 1  # a connection dbt still counts as open, as after an invocation
    code = f"import duckdb; duckdb.connect({str(path)!r}).close()"
    blocked = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert blocked.returncode != 0  # the file is held while dbt-duckdb keeps its database
    dbt_duckdb.release_warehouse()
    assert DuckDBConnectionManager._ENV is None
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_retarget_moves_model_nodes_and_their_relation_names() -> None:
    from dbt.contracts.graph.nodes import ModelNode

    fields = ModelNode.__dataclass_fields__
    assert "schema" in fields and "relation_name" in fields
    model = SimpleNamespace(
        resource_type="model",
        schema="analytics__dev",
        relation_name='"w"."analytics__dev"."fct"',
    )
    other = SimpleNamespace(
        resource_type="model", schema="staging", relation_name='"w"."staging"."s"'
    )
    test = SimpleNamespace(resource_type="test", schema="analytics__dev", relation_name=None)
    manifest = SimpleNamespace(nodes={"a": model, "b": other, "c": test})
    moved = dbt_duckdb.retarget_manifest(manifest, {"analytics__dev": "analytics__t1"})
    assert moved == 1
    assert model.schema == "analytics__t1"
    assert model.relation_name == '"w"."analytics__t1"."fct"'
    assert other.schema == "staging" and test.schema == "analytics__dev"


def test_retarget_fails_loudly_on_nodes_it_does_not_understand() -> None:
    manifest = SimpleNamespace(nodes={"a": SimpleNamespace(resource_type="model")})
    with pytest.raises(dbt_duckdb.DbtInternalsChanged):
        dbt_duckdb.retarget_manifest(manifest, {"x": "y"})
