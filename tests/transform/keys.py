"""The marts key users by a pseudonym (dbt/macros/user_key.sql); the rule tests state their
expectations in the scenario's readable ids, so they read the marts with the ids mapped back
through the restricted store's map, the way the syncs do."""

from __future__ import annotations

import duckdb
import pandas as pd

from searchflow import restricted
from searchflow.config import Settings


def key_map(settings: Settings) -> dict[str, str]:
    """user_key -> user_id from ``restricted.pii.user_keys`` (empty before any transform)."""
    path = restricted.restricted_path(settings.warehouse_path)
    if not path.exists():
        return {}
    with duckdb.connect(str(path), read_only=True) as con:
        exists = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'pii' "
            "AND table_name = 'user_keys'"
        ).fetchone()[0]
        if not exists:
            return {}
        return dict(con.execute("SELECT user_key, user_id FROM pii.user_keys").fetchall())


def with_real_ids(frame: pd.DataFrame, keys: dict[str, str]) -> pd.DataFrame:
    """``frame`` with its ``user_id`` column (a pseudonym in the marts) as the real id."""
    if "user_id" not in frame.columns or not keys:
        return frame
    return frame.assign(user_id=frame["user_id"].map(lambda k: keys.get(k, k)))
