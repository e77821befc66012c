"""dbt-duckdb plugin: attach the restricted store (:mod:`searchflow.restricted`) to dbt's
connection, creating it owner-only first.

profiles.yml names this module under ``plugins``. dbt-duckdb calls ``configure_connection`` on
every new connection before its own ``attach`` list, so the file exists with its modes set
before anything writes to it, and its path is computed in one place (beside the warehouse) for
dbt and for the steps that read it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dbt.adapters.duckdb.plugins import BasePlugin
from duckdb import DuckDBPyConnection

from searchflow.restricted import attach_sql, ensure_store


class Plugin(BasePlugin):
    """Attaches ``restricted`` read-write to the connection dbt builds models with."""

    def initialize(self, plugin_config: dict[str, Any]) -> None:
        self._warehouse = Path(self.creds.path).expanduser().resolve() if self.creds else None

    def configure_connection(self, conn: DuckDBPyConnection) -> None:
        if self._warehouse is None or str(self._warehouse).endswith(":memory:"):
            return
        conn.execute(attach_sql(ensure_store(self._warehouse), read_only=False))
