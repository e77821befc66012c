"""PostgreSQL reader: ``app.events(seq, event_type, payload, created_at[, batch_id])`` above a
watermark.

The watermark (highest ``seq`` landed) lives in DuckDB, ``raw.ingest_watermarks``, and advances in
the same transaction as the rows it covers: a crash can never move it past rows that were not
committed, nor leave rows committed under an old watermark (re-reading them would only make
duplicates, which dedup absorbs anyway). Rows leave Postgres in bulk with ``COPY ... TO STDOUT``
(CSV) into a scratch file DuckDB reads in parallel, chunk by chunk in ``seq`` order. A payload over
the line limit never leaves Postgres whole: its first bytes come with a problem, and it is
dead-lettered like an over-long JSONL line. The ``batch_id`` column, when the table has it, names
each row's generation batch (the ingestion batch's parents).

The watermark is keyed by server and database, and resets when ``app.events`` holds no row as
high as it (the table was recreated): dedup protects the rows already landed.

The scratch folder is ``$SEARCHFLOW_HOME/ingest-pg-*``, made once the warehouse is held; what a
killed run leaves is removed by the next ingest of any source (:func:`remove_stale_scratch`).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from searchflow.config import Settings
from searchflow.contract import APP_EVENTS_BATCH_COLUMN, APP_EVENTS_TABLE, POSTGRES_READ_BATCH
from searchflow.errors import SearchflowError, ServiceUnavailable
from searchflow.events import MAX_LINE_BYTES
from searchflow.ingest.chunks import INPUT, Chunk
from searchflow.ingest.land import lit, utc_now
from searchflow.ingest.space import disk_full_error, is_disk_full
from searchflow.ingest.textlines import KEPT_BYTES, SEP
from searchflow.warehouse import RAW_SCHEMA

TABLE = APP_EVENTS_TABLE
SCRATCH_PREFIX = "ingest-pg-"
Reader = Callable[[duckdb.DuckDBPyConnection, dict[str, Any]], Iterator[Chunk]]


@dataclass(frozen=True)
class SourceTable:
    """What the reader learned of ``app.events`` before reading it."""

    key: str  # which table of which server the watermark belongs to
    max_seq: int
    has_batch: bool  # the generation batch column exists
    row_bytes: int  # about how large a row is (what a full disk's message says a chunk needs)


def source_key(con) -> str:
    """Which table of which server the watermark belongs to."""
    info = con.info
    return f"postgres:{info.host}:{info.port}/{info.dbname}:{TABLE}"


def read_watermark(duck: duckdb.DuckDBPyConnection, key: str) -> int:
    row = duck.execute(
        f"SELECT last_seq FROM {RAW_SCHEMA}.ingest_watermarks WHERE source_key = {lit(key)}"
    ).fetchone()
    return int(row[0]) if row else 0


def remove_stale_scratch(home: Path) -> list[Path]:
    """Remove the scratch folders a killed or failed run left in ``home``; returns them.

    Called while the warehouse is held: no other ingest can be running, so none is in use.
    """
    stale = sorted(home.glob(f"{SCRATCH_PREFIX}*"))
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return stale


def _inspect(pg, url_text: str) -> SourceTable:
    with pg.cursor() as cur:
        cur.execute("SELECT to_regclass(%s)", (TABLE,))
        if cur.fetchone()[0] is None:
            raise SearchflowError(
                f"no table {TABLE} in the PostgreSQL at {url_text}; "
                "run `searchflow generate --sink postgres` first"
            )
        cur.execute(f"SELECT coalesce(max(seq), 0) FROM {TABLE}")
        max_seq = int(cur.fetchone()[0])
        schema, _, name = TABLE.partition(".")
        cur.execute(
            "SELECT count(*) FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s AND column_name = %s",
            (schema, name, APP_EVENTS_BATCH_COLUMN),
        )
        has_batch = bool(cur.fetchone()[0])
        cur.execute("SELECT pg_table_size(%s::regclass)", (TABLE,))
        row_bytes = int(cur.fetchone()[0]) // max(1, max_seq) + 1
    return SourceTable(source_key(pg), max_seq, has_batch, row_bytes)


def _copy_sql(table: SourceTable, after: int, count: int) -> str:
    """One chunk of rows above ``after`` as CSV; an over-long payload cut, with its problem."""
    batch = APP_EVENTS_BATCH_COLUMN if table.has_batch else "NULL"
    problem = (
        f"'unparsable{SEP}a line of ' || to_char(octet_length(payload), 'FM999,999,999,999') "
        f"|| ' bytes, over the limit of {MAX_LINE_BYTES:,}; its first {KEPT_BYTES:,} bytes kept'"
    )
    return (
        f"COPY (SELECT seq, event_type, "
        f"CASE WHEN octet_length(payload) > {MAX_LINE_BYTES} "
        f"THEN left(payload, {KEPT_BYTES}) ELSE payload END, "
        f"CASE WHEN octet_length(payload) > {MAX_LINE_BYTES} THEN {problem} END, {batch} "
        f"FROM {TABLE} WHERE seq > {int(after)} AND seq <= {table.max_seq} "
        f"ORDER BY seq LIMIT {int(count)}) TO STDOUT WITH (FORMAT csv)"
    )


def _stage(duck: duckdb.DuckDBPyConnection, path: Path) -> int | None:
    """The scratch CSV as the input relation; returns its highest seq (None: no rows)."""
    duck.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _ingest_pg AS
        SELECT * FROM read_csv({lit(str(path))},
            columns = {{'seq': 'BIGINT', 'event_type': 'VARCHAR', 'payload': 'VARCHAR',
                        'problem': 'VARCHAR', 'gen_batch': 'VARCHAR'}},
            header = false, quote = '"', escape = '"', auto_detect = false,
            allow_quoted_nulls = false, max_line_size = {4 * MAX_LINE_BYTES})
        """
    )
    high = duck.execute("SELECT max(seq) FROM _ingest_pg").fetchone()[0]
    duck.execute(
        f"""
        CREATE OR REPLACE TEMP VIEW {INPUT} AS
        SELECT seq AS ord, payload AS raw_text, {lit(TABLE + "/")} || seq AS source_ref,
               event_type AS stream, problem
        FROM _ingest_pg
        """
    )
    return None if high is None else int(high)


def _watermark_sql(key: str, high: int, batch_id: str, now) -> list[str]:
    return [
        f"DELETE FROM {RAW_SCHEMA}.ingest_watermarks WHERE source_key = {lit(key)}",
        f"INSERT INTO {RAW_SCHEMA}.ingest_watermarks VALUES "
        f"({lit(key)}, {int(high)}, {lit(batch_id)}, {lit(now)})",
    ]


def _chunks(
    pg, table: SourceTable, home: Path, chunk_size: int, batch_id: str
) -> Callable[[duckdb.DuckDBPyConnection, dict[str, Any]], Iterator[Chunk]]:
    def chunks(duck: duckdb.DuckDBPyConnection, stats: dict[str, Any]) -> Iterator[Chunk]:
        start = watermark = read_watermark(duck, table.key)
        reset = watermark > table.max_seq
        stats.update(watermark_from=start, watermark_to=start, watermark_reset=reset)
        if reset:
            watermark = 0
        scratch = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=home))
        path = scratch / "chunk.csv"
        try:
            while watermark < table.max_seq:
                try:
                    with path.open("wb") as handle, pg.cursor() as cur:
                        cur.copy_expert(_copy_sql(table, watermark, chunk_size), handle)
                    high = _stage(duck, path)
                except (duckdb.Error, OSError) as exc:
                    if is_disk_full(exc):
                        needed = 2 * table.row_bytes * min(chunk_size, table.max_seq - watermark)
                        raise disk_full_error(exc, scratch, needed) from None
                    raise
                if high is None:
                    break
                parents = duck.execute(
                    "SELECT DISTINCT gen_batch FROM _ingest_pg WHERE gen_batch IS NOT NULL"
                ).fetchall()
                now = utc_now()
                yield Chunk(
                    size_bytes=path.stat().st_size,
                    parents=frozenset(p for (p,) in parents),
                    bookkeeping=_watermark_sql(table.key, high, batch_id, now),
                    ingested_at=now,
                )
                watermark = stats["watermark_to"] = high
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            duck.execute(f"DROP VIEW IF EXISTS {INPUT}")
            duck.execute("DROP TABLE IF EXISTS _ingest_pg")

    return chunks


@contextmanager
def reader(
    settings: Settings, batch_id: str, *, chunk_size: int = POSTGRES_READ_BATCH
) -> Iterator[Reader]:
    """The app.events reader: ``chunks(con, stats)`` lands every row above the watermark.

    ``stats`` receives what the summary adds (the watermark before and after, whether it reset).
    A lost PostgreSQL is one clear line; committed chunks are kept.
    """
    import psycopg2

    from searchflow.services import mask_url, postgres_connect, postgres_url

    url = postgres_url(settings)
    try:
        pg = postgres_connect(settings)
    except psycopg2.Error as exc:
        raise ServiceUnavailable(
            f"cannot connect to PostgreSQL at {mask_url(url)}: {str(exc).strip().splitlines()[0]}"
        ) from None
    try:
        pg.set_session(readonly=True, autocommit=True)
        table = _inspect(pg, mask_url(url))
        yield _chunks(pg, table, settings.ensure_home(), chunk_size, batch_id)
    except psycopg2.Error as exc:
        raise ServiceUnavailable(
            f"PostgreSQL at {mask_url(url)} failed while ingesting: "
            f"{str(exc).strip().splitlines()[0]}; committed chunks are kept, rerun to continue"
        ) from None
    finally:
        pg.close()
