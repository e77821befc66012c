"""The audit log: one row per write command, in the warehouse's ``ops`` schema.

Syncs, releases, discards, retention and forgetting change data that people and other systems rely
on; each one leaves a row saying who ran it (the Prefect flow run when there is one, otherwise the
operating-system user), when, and what it touched (counts and ids). A forgotten user appears here
only as a keyed hash, never by id. Plain SQL on an open DuckDB connection, like the ledger.
"""

from __future__ import annotations

import getpass
import json
import os
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import duckdb

from searchflow.errors import SearchflowError

SCHEMA = "ops"
AUDIT = f"{SCHEMA}.audit"
COMMANDS: tuple[str, ...] = ("sync", "release", "discard", "retention", "forget")

_DDL: tuple[str, ...] = (
    f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
    f"""
    CREATE TABLE IF NOT EXISTS {AUDIT} (
        audit_id     VARCHAR PRIMARY KEY,
        command      VARCHAR NOT NULL,   -- sync | release | discard | retention | forget
        actor        VARCHAR NOT NULL,   -- flow-run:<id> or user:<os user>
        flow_run_id  VARCHAR,
        ran_at       TIMESTAMP NOT NULL, -- UTC
        target       VARCHAR,            -- a batch id, a sync name, a user hash
        touched      JSON                -- what the command changed: counts and ids
    )
    """,
)


def ensure_audit(con: duckdb.DuckDBPyConnection) -> None:
    """Create ``ops.audit`` if missing (idempotent)."""
    for statement in _DDL:
        con.execute(statement)


def actor(flow_run_id: str | None = None) -> str:
    """Who is running the command: the flow run when Prefect runs it, else the OS user."""
    if flow_run_id:
        return f"flow-run:{flow_run_id}"
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry for the uid (containers)
        name = os.environ.get("USER") or str(os.getuid())
    return f"user:{name}"


def record(
    con: duckdb.DuckDBPyConnection,
    command: str,
    *,
    target: str | None = None,
    touched: Mapping[str, Any] | None = None,
    flow_run_id: str | None = None,
) -> str:
    """Append one audit row; returns its id. Runs in the caller's transaction when there is one."""
    if command not in COMMANDS:
        raise SearchflowError(f"unknown audited command {command!r}; one of {', '.join(COMMANDS)}")
    ensure_audit(con)
    audit_id = uuid.uuid4().hex
    con.execute(
        f"INSERT INTO {AUDIT} VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            audit_id,
            command,
            actor(flow_run_id),
            flow_run_id,
            datetime.now(UTC).replace(tzinfo=None),
            target,
            json.dumps(dict(touched or {}), default=str, sort_keys=True),
        ],
    )
    return audit_id


def entries(
    con: duckdb.DuckDBPyConnection, command: str | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    """Audit rows, newest first, ``touched`` parsed (none when nothing was audited yet)."""
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = 'audit'",
        [SCHEMA],
    ).fetchone()[0]
    if not exists:
        return []
    where, params = ("WHERE command = ?", [command]) if command else ("", [])
    tail = f" LIMIT {int(limit)}" if limit else ""
    cur = con.execute(f"SELECT * FROM {AUDIT} {where} ORDER BY ran_at DESC, audit_id{tail}", params)
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    for row in rows:
        row["touched"] = json.loads(row["touched"]) if row["touched"] else {}
    return rows
