"""dbt's and dbt-duckdb's internals that the transformation stage relies on.

Two things have no public API:

- **Freeing the warehouse file.** dbt-duckdb keeps its DuckDB database in a class attribute of
  ``DuckDBConnectionManager`` (``_ENV``, guarded by ``_LOCK``) for the life of the process. Until
  it is closed the file stays locked for every other process, and this process cannot reopen it
  with other settings (read-only). :func:`release_warehouse` closes it as soon as dbt returns.
- **Retargeting a parsed manifest.** The marts' schemas carry the build's version
  (``analytics__<version>``); dbt fixes a node's schema when it parses. Parsing again for every
  build would cost a full parse each time, so the in-process runner parses once (with the
  ``dev`` version) and :func:`retarget_manifest` points the versioned nodes at this build's
  schemas. It relies on dbt resolving ``ref()`` from a node's ``schema`` at run time.

``tests/compat/test_dbt_duckdb.py`` fails if either stops working.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class DbtInternalsChanged(RuntimeError):
    """dbt or dbt-duckdb no longer looks the way :mod:`searchflow.compat.dbt_duckdb` expects."""


def release_warehouse() -> None:
    """Close the DuckDB database dbt-duckdb keeps open in this process after an invocation."""
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:  # dbt-duckdb not installed: nothing was opened
        return
    lock = getattr(DuckDBConnectionManager, "_LOCK", None)
    if lock is None or not hasattr(DuckDBConnectionManager, "_ENV"):
        raise DbtInternalsChanged(
            "dbt-duckdb's DuckDBConnectionManager has no _LOCK/_ENV; update "
            "searchflow/compat/dbt_duckdb.py for this dbt-duckdb version"
        )
    with lock:
        env = DuckDBConnectionManager._ENV
        DuckDBConnectionManager._ENV = None
        if env is not None:
            env.close()


def retarget_manifest(manifest: Any, schemas: Mapping[str, str]) -> int:
    """Point every model node whose schema is a key of ``schemas`` at the mapped schema.

    ``schemas`` maps a schema the manifest holds now to the one this build writes (for example
    ``analytics__dev`` -> ``analytics__t20261201t1522334a1b``). The node's rendered relation name is
    updated with it. Returns how many nodes moved.
    """
    moved = 0
    for node in manifest.nodes.values():
        if str(getattr(node, "resource_type", "")) not in {"model", "NodeType.Model"}:
            continue
        if not hasattr(node, "schema") or not hasattr(node, "relation_name"):
            raise DbtInternalsChanged(
                "dbt's model nodes have no schema/relation_name; update "
                "searchflow/compat/dbt_duckdb.py for this dbt version"
            )
        new = schemas.get(node.schema)
        if new is None:
            continue
        if node.relation_name:
            node.relation_name = node.relation_name.replace(f'"{node.schema}"', f'"{new}"')
        node.schema = new
        moved += 1
    return moved
