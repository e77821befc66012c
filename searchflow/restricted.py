"""The restricted store: the one place outside the raw layer that holds email, name and phone.

DuckDB has no roles, so the separation is a file: a DuckDB database of its own, in a folder of
its own beside the warehouse (``<warehouse folder>/restricted/<warehouse name>.duckdb``), the
folder readable by its owner only (0700) and the file 0600. The folder's mode is what protects
the write-ahead log DuckDB creates beside the file while writing, whatever its mode.

Only the steps that need it attach it: dbt (through ``searchflow.restricted_plugin``, which
builds ``restricted.pii.user_contacts`` and ``restricted.pii.user_keys``), the syncs (the real id
behind each pseudonym, and the address at sync time) and ``forget``. Everything analysts read (analytics, marketing, ml, the published Parquet,
the API, the dashboards) opens the warehouse file alone, where no address exists outside
``raw.app_users``.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

ALIAS = "restricted"
CONTACTS = f"{ALIAS}.pii.user_contacts"
USER_KEYS = f"{ALIAS}.pii.user_keys"  # user_key (the marts' pseudonym) -> user_id
DIR_MODE = 0o700
FILE_MODE = 0o600


def restricted_path(warehouse_path: Path) -> Path:
    """The restricted file that belongs to a warehouse file (one per warehouse, so tests and
    environments never share one)."""
    return warehouse_path.parent / "restricted" / warehouse_path.name


def ensure_store(warehouse_path: Path) -> Path:
    """Create the folder (0700) and the file (0600) when missing and reset both modes; returns
    the file. Called before anything attaches the file read-write."""
    path = restricted_path(warehouse_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, DIR_MODE)
    if not path.exists():
        # The folder is already owner-only, so the file is never readable by others, even in
        # the moment between DuckDB creating it and the chmod below.
        duckdb.connect(str(path)).close()
    os.chmod(path, FILE_MODE)
    return path


def attach_sql(path: Path, read_only: bool) -> str:
    mode = " (READ_ONLY)" if read_only else ""
    escaped = str(path).replace("'", "''")
    return f"ATTACH IF NOT EXISTS '{escaped}' AS {ALIAS}{mode}"


def attach(con: duckdb.DuckDBPyConnection, warehouse_path: Path, read_only: bool = True) -> bool:
    """Attach the restricted file to a warehouse connection as ``restricted``; False (nothing
    attached) when a read-only caller finds no file, i.e. no transform has built it yet."""
    path = restricted_path(warehouse_path)
    if read_only and not path.exists():
        return False
    if not read_only:
        ensure_store(warehouse_path)
    con.execute(attach_sql(path, read_only))
    return True


def has_table(con: duckdb.DuckDBPyConnection, relation: str) -> bool:
    """Whether the attached store holds ``relation`` (a :data:`CONTACTS` or :data:`USER_KEYS`,
    built by a transform)."""
    _, schema, table = relation.split(".")
    return bool(
        con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = ? "
            "AND schema_name = ? AND table_name = ?",
            [ALIAS, schema, table],
        ).fetchone()[0]
    )


def has_contacts(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the attached store holds the contacts model."""
    return has_table(con, CONTACTS)
