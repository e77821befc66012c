"""dbt-duckdb plugin: attach the restricted store (:mod:`searchflow.restricted`) to dbt's
connection, creating it owner-only first, and register ``sf_user_key`` (the pseudonym of a user id,
:func:`searchflow.pii.pseudonym`) that the marts' ``user_key`` macro calls.

profiles.yml names this module under ``plugins``. dbt-duckdb calls ``configure_connection`` on
every new connection before its own ``attach`` list, so the file exists with its modes set
before anything writes to it, and its path is computed in one place (beside the warehouse) for
dbt and for the steps that read it. The PII key comes from the settings: ``SEARCHFLOW_PII_KEY``,
else the key file of ``SEARCHFLOW_HOME`` (exported by ``searchflow transform``), else of the
warehouse's folder (a plain ``dbt build`` on the default layout).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dbt.adapters.duckdb.plugins import BasePlugin
from duckdb import DuckDBPyConnection

from searchflow import pii
from searchflow.config import Settings
from searchflow.restricted import attach_sql, ensure_store


class Plugin(BasePlugin):
    """Attaches ``restricted`` read-write to the connection dbt builds models with, and
    registers ``sf_user_key``."""

    def initialize(self, plugin_config: dict[str, Any]) -> None:
        self._warehouse = Path(self.creds.path).expanduser().resolve() if self.creds else None

    def configure_connection(self, conn: DuckDBPyConnection) -> None:
        if self._warehouse is None or str(self._warehouse).endswith(":memory:"):
            return
        conn.execute(attach_sql(ensure_store(self._warehouse), read_only=False))
        home = os.environ.get("SEARCHFLOW_HOME") or str(self._warehouse.parent)
        pii.register_user_key(conn, pii.pii_key(Settings(home=Path(home))))
