"""The warehouse: connecting to it and the raw layer's DDL.

DuckDB allows one writer process per file, and while a process holds it read-write no other process
can open it at all. Connections here are therefore short-lived, and a lock conflict becomes one
clear line instead of an IOException traceback.

With ``SEARCHFLOW_WAREHOUSE_URL`` set the warehouse is a PostgreSQL database instead: a connection
is then an in-memory DuckDB that attaches it through DuckDB's PostgreSQL extension
(:mod:`searchflow.compat.duckdb_postgres`) as catalog :data:`POSTGRES_CATALOG` and uses it as the
default, so the stages keep their SQL and no DuckDB file is written. :func:`on_postgres` tells the
few places that must differ.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from searchflow.compat import duckdb_postgres
from searchflow.config import Settings
from searchflow.errors import SearchflowError
from searchflow.events import EVENT_TYPES
from searchflow.ledger import ensure_ledger

RAW_SCHEMA = "raw"
# The catalog name a PostgreSQL warehouse is attached under (what current_database() returns).
POSTGRES_CATALOG = "warehouse"
# A new warehouse file is written in this DuckDB's newest storage format (DuckDB defaults to the
# v1.0 one for old readers): it stores the payloads with ZSTD and the other strings with
# DICT_FSST: a much smaller file, and less to write when landing (figures: docs/architecture.md).
# An existing file keeps the format it was created with.
STORAGE_VERSION = "latest"
# The first version whose format compresses strings with ZSTD.
ZSTD_STRINGS_SINCE = (1, 2)


def raw_table(event_type: str) -> str:
    """``raw.<type>_events``: the landing table of one event type."""
    return f"{RAW_SCHEMA}.{event_type}_events"


# One table per event type, same columns: the id, the event time, the whole payload (new fields need
# no migration; ZSTD-compressed where the file's format allows), and where the row came from.
# event_id is unique per table; ingestion enforces it set-wise (anti-join) rather than through a
# PRIMARY KEY index, whose upkeep makes bulk loads several times slower.
_EVENT_TABLE = """
CREATE TABLE IF NOT EXISTS {table} (
    event_id     VARCHAR   NOT NULL,
    event_time   TIMESTAMP NOT NULL,  -- UTC
    payload      JSON      NOT NULL{compression},
    source       VARCHAR   NOT NULL,  -- jsonl | redis | postgres
    source_ref   VARCHAR,             -- file:line, stream entry id or app row id
    batch_id     VARCHAR   NOT NULL,
    ingested_at  TIMESTAMP NOT NULL   -- UTC
)
"""

_DEAD_LETTER_TABLE = f"""
CREATE TABLE IF NOT EXISTS {RAW_SCHEMA}.dead_letter_events (
    dead_letter_id VARCHAR   NOT NULL,  -- deterministic: a re-read never adds a second row
    raw_text       VARCHAR   NOT NULL,  -- exactly what was read
    reason         VARCHAR   NOT NULL,  -- malformed class, see searchflow/events.py
    detail         VARCHAR,             -- human-readable specifics
    event_type     VARCHAR,             -- when it could be told
    source         VARCHAR   NOT NULL,
    source_ref     VARCHAR,
    batch_id       VARCHAR   NOT NULL,
    ingested_at    TIMESTAMP NOT NULL
)
"""


def raw_ddl(zstd: bool) -> tuple[str, ...]:
    """The raw layer's DDL; ``zstd``: declare the payloads ZSTD (see :func:`zstd_strings`)."""
    compression = " USING COMPRESSION zstd" if zstd else ""
    return (
        f"CREATE SCHEMA IF NOT EXISTS {RAW_SCHEMA}",
        *(_EVENT_TABLE.format(table=raw_table(t), compression=compression) for t in EVENT_TYPES),
        _DEAD_LETTER_TABLE,
    )


def is_lock_conflict(text: object) -> bool:
    """True when DuckDB's message (possibly wrapped by dbt) says another process holds the file."""
    lowered = str(text).lower()
    return "could not set lock" in lowered or "conflicting lock" in lowered


def lock_error(path: Path, exc: Exception | None = None) -> SearchflowError:
    """The one-line error for a warehouse another process holds."""
    return SearchflowError(
        f"the warehouse {path} is locked by another process (DuckDB allows one writer); "
        "wait for the running stage to finish or stop it, then retry"
    )


def connect(
    settings: Settings, read_only: bool = False, *, row_group_size: int | None = None
) -> duckdb.DuckDBPyConnection:
    """Open the warehouse file, creating its folder; a lock conflict is one clear error.

    Every connection opens with the settings' memory limit, threads and spill folder
    (:meth:`Settings.duckdb_config`), so no stage's DuckDB grows with the data.

    ``row_group_size``: rows per row group this connection writes (DuckDB's default 122,880 when
    None). It is an ATTACH option, so such a connection attaches the file to an in-memory one
    under the file's own name (what a plain connect calls it) and makes it the default.
    """
    if settings.warehouse_url is not None:
        return _connect_postgres(settings, read_only)
    path = settings.warehouse_path
    if read_only and not path.exists():
        raise SearchflowError(
            f"the warehouse {path} does not exist yet; run `searchflow ingest` first"
        )
    settings.ensure_home()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        new = not path.exists()
        config = settings.duckdb_config()
        if row_group_size is None:
            if new:
                config["storage_compatibility_version"] = STORAGE_VERSION
            return duckdb.connect(str(path), read_only=read_only, config=config)
        con = duckdb.connect(config=config)
        try:
            name = '"' + path.stem.replace('"', '""') + '"'
            options = f"ROW_GROUP_SIZE {int(row_group_size)}" + (", READ_ONLY" if read_only else "")
            if new:
                options += f", STORAGE_VERSION '{STORAGE_VERSION}'"
            con.execute(f"ATTACH '{str(path).replace(chr(39), chr(39) * 2)}' AS {name} ({options})")
            con.execute(f"USE {name}")
        except BaseException:
            con.close()
            raise
        return con
    except duckdb.Error as exc:
        if "lock" in str(exc).lower():
            raise lock_error(path, exc) from None
        raise SearchflowError(f"cannot open the warehouse {path}: {exc}") from None


def _connect_postgres(settings: Settings, read_only: bool) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the PostgreSQL warehouse attached and in use (see the docstring)."""
    assert settings.warehouse_url is not None
    settings.ensure_home()
    con = duckdb.connect(config=settings.duckdb_config())
    try:
        duckdb_postgres.attach(con, settings.warehouse_url, POSTGRES_CATALOG, read_only=read_only)
    except duckdb.Error as exc:
        con.close()
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SearchflowError(
            f"cannot open the warehouse {settings.warehouse_name}: {first}; "
            "check SEARCHFLOW_WAREHOUSE_URL and that the database exists"
        ) from None
    except BaseException:
        con.close()
        raise
    return con


def on_postgres(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether ``con``'s default database is an attached PostgreSQL warehouse."""
    return duckdb_postgres.in_use(con)


def native(con: duckdb.DuckDBPyConnection, statement: str) -> None:
    """Run ``statement`` in the PostgreSQL warehouse itself, in PostgreSQL's own SQL, within the
    connection's transaction; DuckDB's cached view of the catalog is refreshed after it.

    For what the extension cannot say through DuckDB: copies that keep PostgreSQL's column types
    exactly (dbt-postgres compares them on an incremental model), views read back, dropped and
    recreated as PostgreSQL sees them.
    """
    con.execute(f"CALL postgres_execute('{POSTGRES_CATALOG}', '{_literal(statement)}')")
    con.execute("CALL pg_clear_cache()")


def native_rows(con: duckdb.DuckDBPyConnection, query: str) -> list[tuple[object, ...]]:
    """The rows of ``query`` run in the PostgreSQL warehouse itself (PostgreSQL's own SQL)."""
    return con.execute(
        f"SELECT * FROM postgres_query('{POSTGRES_CATALOG}', '{_literal(query)}')"
    ).fetchall()


def execute_in_place(con: duckdb.DuckDBPyConnection, statement: str) -> None:
    """Run ``statement`` (SQL both engines read) where the warehouse lives: through
    :func:`native` in a PostgreSQL warehouse, so what it creates keeps PostgreSQL's own types and
    view definitions, and on the connection itself in a DuckDB file."""
    if on_postgres(con):
        native(con, statement)
    else:
        con.execute(statement)


def copy_table(con: duckdb.DuckDBPyConnection, source: str, target: str) -> None:
    """``CREATE TABLE target AS SELECT * FROM source`` (quoted names); in a PostgreSQL warehouse
    run there, so the copy keeps the source's column types."""
    execute_in_place(con, f"CREATE TABLE {target} AS SELECT * FROM {source}")


def _literal(text: str) -> str:
    return text.replace("'", "''")


@contextmanager
def session(
    settings: Settings, read_only: bool = False, *, row_group_size: int | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection closed on exit, so the file is free for the next process."""
    con = connect(settings, read_only=read_only, row_group_size=row_group_size)
    try:
        yield con
    finally:
        con.close()


def ensure_raw_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the raw layer and the batch ledger if missing (idempotent); dbt reads both.

    In a PostgreSQL warehouse the raw tables are created there, with the payload as ``jsonb``
    (DuckDB's DDL would make it ``json``): dbt-postgres reads every field with a jsonb lookup, and
    a ``json`` payload would be parsed again for each field of each row.
    """
    if on_postgres(con):
        native(con, ";\n".join(raw_ddl(zstd=False)).replace(" JSON ", " JSONB "))
    else:
        for statement in raw_ddl(zstd_strings(con)):
            con.execute(statement)
    ensure_ledger(con)


def zstd_strings(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the connection's warehouse file is in a format that compresses strings with ZSTD.

    A file created by another tool (dbt before the first ingest, an older DuckDB) may be in the v1.0
    format, where a column declared ZSTD would be stored uncompressed.
    """
    return storage_version(con) >= ZSTD_STRINGS_SINCE


def storage_version(con: duckdb.DuckDBPyConnection) -> tuple[int, ...]:
    """The storage format of the current database, e.g. (1, 5, 0); (0,) when it cannot be told."""
    row = con.execute(
        "SELECT tags FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchone()
    tag = str((row[0] or {}).get("storage_version", "")) if row else ""
    digits = tag.lstrip("v").rstrip("+").split(".")
    try:
        return tuple(int(d) for d in digits)
    except ValueError:
        return (0,)


def table_exists(con: duckdb.DuckDBPyConnection, qualified: str) -> bool:
    schema, _, name = qualified.rpartition(".")
    row = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [schema or "main", name],
    ).fetchone()
    return bool(row and row[0])
