"""The DuckDB warehouse: connecting to it and the raw layer's DDL.

DuckDB allows one writer process per file, and while a process holds it read-write no other process
can open it at all. Connections here are therefore short-lived, and a lock conflict becomes one
clear line instead of an IOException traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from searchflow.config import Settings
from searchflow.errors import SearchflowError
from searchflow.events import EVENT_TYPES

RAW_SCHEMA = "raw"


def raw_table(event_type: str) -> str:
    """``raw.<type>_events``: the landing table of one event type."""
    return f"{RAW_SCHEMA}.{event_type}_events"


# One table per event type, same columns: the id, the event time, the whole payload (new fields need
# no migration), and where the row came from. event_id is unique per table; ingestion enforces it
# set-wise (anti-join) rather than through a PRIMARY KEY index, which costs 3x on bulk loads.
_EVENT_TABLE = """
CREATE TABLE IF NOT EXISTS {table} (
    event_id     VARCHAR   NOT NULL,
    event_time   TIMESTAMP NOT NULL,  -- UTC
    payload      JSON      NOT NULL,
    source       VARCHAR   NOT NULL,  -- jsonl | redis | postgres
    source_ref   VARCHAR,             -- file:line, stream entry id or app row id
    batch_id     VARCHAR   NOT NULL,
    ingested_at  TIMESTAMP NOT NULL   -- UTC
)
"""

RAW_DDL: tuple[str, ...] = (
    f"CREATE SCHEMA IF NOT EXISTS {RAW_SCHEMA}",
    *(_EVENT_TABLE.format(table=raw_table(t)) for t in EVENT_TYPES),
    f"""
    CREATE TABLE IF NOT EXISTS {RAW_SCHEMA}.dead_letter_events (
        dead_letter_id VARCHAR   NOT NULL,  -- deterministic: a re-read never adds a second row
        raw_text       VARCHAR   NOT NULL,  -- exactly what was read
        reason         VARCHAR   NOT NULL,  -- malformed class, see generator/faults.py
        detail         VARCHAR,             -- human-readable specifics
        event_type     VARCHAR,             -- when it could be told
        source         VARCHAR   NOT NULL,
        source_ref     VARCHAR,
        batch_id       VARCHAR   NOT NULL,
        ingested_at    TIMESTAMP NOT NULL
    )
    """,
)


def lock_error(path: Path, exc: Exception) -> SearchflowError:
    """The one-line error for a warehouse another process holds."""
    return SearchflowError(
        f"the warehouse {path} is locked by another process (DuckDB allows one writer); "
        "wait for the running stage to finish or stop it, then retry"
    )


def connect(settings: Settings, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the warehouse file, creating its folder; a lock conflict is one clear error."""
    path = settings.warehouse_path
    if read_only and not path.exists():
        raise SearchflowError(
            f"the warehouse {path} does not exist yet; run `searchflow ingest` first"
        )
    settings.ensure_home()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise lock_error(path, exc) from None
        raise SearchflowError(f"cannot open the warehouse {path}: {exc}") from None


@contextmanager
def session(settings: Settings, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection closed on exit, so the file is free for the next process."""
    con = connect(settings, read_only=read_only)
    try:
        yield con
    finally:
        con.close()


def ensure_raw_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the raw layer if missing (idempotent)."""
    for statement in RAW_DDL:
        con.execute(statement)


def table_exists(con: duckdb.DuckDBPyConnection, qualified: str) -> bool:
    schema, _, name = qualified.rpartition(".")
    row = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [schema or "main", name],
    ).fetchone()
    return bool(row and row[0])
