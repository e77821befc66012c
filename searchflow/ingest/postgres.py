"""PostgreSQL reader: ``app.events(seq, event_type, payload, created_at)`` above a watermark.

The watermark (highest ``seq`` landed) lives in DuckDB, ``raw.ingest_watermarks``, and advances in
the same transaction as the rows it covers: a crash can never move it past rows that were not
committed, nor leave rows committed under an old watermark (re-reading them would only make
duplicates, which dedup absorbs anyway). Rows leave Postgres in bulk with ``COPY ... TO STDOUT``
(CSV) into a scratch file DuckDB reads in parallel, batch by batch in ``seq`` order.

The watermark is keyed by server and database, and resets when ``app.events`` holds no row as
high as it (the table was recreated): dedup protects the rows already landed.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from searchflow.config import Settings
from searchflow.errors import SearchflowError, ServiceUnavailable
from searchflow.ingest.land import (
    LANDING_ROW_GROUP_SIZE,
    add_counts,
    ensure_ingest_schema,
    land_batch,
    lit,
    utc_now,
)
from searchflow.warehouse import RAW_SCHEMA, session

TABLE = "app.events"


def source_key(con) -> str:
    """Which table of which server the watermark belongs to."""
    info = con.info
    return f"postgres:{info.host}:{info.port}/{info.dbname}:{TABLE}"


def read_watermark(duck, key: str) -> int:
    row = duck.execute(
        f"SELECT last_seq FROM {RAW_SCHEMA}.ingest_watermarks WHERE source_key = {lit(key)}"
    ).fetchone()
    return int(row[0]) if row else 0


def ingest(
    settings: Settings,
    batch_id: str,
    counts: dict,
    *,
    batch_size: int = 200_000,
    after_commit: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Land every app.events row above the watermark; returns what the summary adds."""
    import psycopg2

    from searchflow.services import mask_url, postgres_connect, postgres_url

    url = postgres_url(settings)
    try:
        pg = postgres_connect(settings)
    except psycopg2.Error as exc:
        raise ServiceUnavailable(
            f"cannot connect to PostgreSQL at {mask_url(url)}: {str(exc).strip().splitlines()[0]}"
        ) from None
    batches = 0
    scratch: Path | None = None
    try:
        pg.set_session(readonly=True, autocommit=True)
        with pg.cursor() as cur:
            cur.execute("SELECT to_regclass(%s)", (TABLE,))
            if cur.fetchone()[0] is None:
                raise SearchflowError(
                    f"no table {TABLE} in the PostgreSQL at {mask_url(url)}; "
                    "run `searchflow generate --sink postgres` first"
                )
            cur.execute(f"SELECT coalesce(max(seq), 0) FROM {TABLE}")
            max_seq = int(cur.fetchone()[0])
        key = source_key(pg)
        scratch = Path(tempfile.mkdtemp(prefix="ingest-pg-", dir=settings.ensure_home()))
        with session(settings, row_group_size=LANDING_ROW_GROUP_SIZE) as duck:
            ensure_ingest_schema(duck)
            start = watermark = read_watermark(duck, key)
            reset = watermark > max_seq
            if reset:
                watermark = 0
            while watermark < max_seq:
                path = scratch / "batch.csv"
                with path.open("wb") as handle, pg.cursor() as cur:
                    cur.copy_expert(
                        f"COPY (SELECT seq, event_type, payload FROM {TABLE} "
                        f"WHERE seq > {int(watermark)} AND seq <= {int(max_seq)} "
                        f"ORDER BY seq LIMIT {int(batch_size)}) TO STDOUT WITH (FORMAT csv)",
                        handle,
                    )
                duck.execute(
                    f"""
                    CREATE OR REPLACE TEMP TABLE _ingest_pg AS
                    SELECT * FROM read_csv({lit(str(path))},
                        columns = {{'seq': 'BIGINT', 'event_type': 'VARCHAR', 'payload': 'VARCHAR'}},
                        header = false, quote = '"', escape = '"', auto_detect = false,
                        allow_quoted_nulls = false)
                    """
                )
                high = duck.execute("SELECT max(seq) FROM _ingest_pg").fetchone()[0]
                if high is None:
                    break
                duck.execute(
                    f"""
                    CREATE OR REPLACE TEMP VIEW _ingest_input AS
                    SELECT seq AS ord, payload AS raw_text,
                           {lit(TABLE + "/")} || seq AS source_ref, event_type AS stream
                    FROM _ingest_pg
                    """
                )
                now = utc_now()
                batch = land_batch(
                    duck,
                    "_ingest_input",
                    "postgres",
                    batch_id,
                    bookkeeping=[
                        f"DELETE FROM {RAW_SCHEMA}.ingest_watermarks WHERE source_key = {lit(key)}",
                        f"INSERT INTO {RAW_SCHEMA}.ingest_watermarks VALUES "
                        f"({lit(key)}, {int(high)}, {lit(batch_id)}, {lit(now)})",
                    ],
                    ingested_at=now,
                )
                add_counts(counts, batch)
                if after_commit is not None:
                    after_commit(batch)
                watermark = int(high)
                batches += 1
            duck.execute("DROP VIEW IF EXISTS _ingest_input")
            duck.execute("DROP TABLE IF EXISTS _ingest_pg")
    except psycopg2.Error as exc:
        raise ServiceUnavailable(
            f"PostgreSQL at {mask_url(url)} failed while ingesting: "
            f"{str(exc).strip().splitlines()[0]}; committed batches are kept, rerun to continue"
        ) from None
    finally:
        pg.close()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return {
        "batches": batches,
        "watermark_from": start,
        "watermark_to": watermark,
        "watermark_reset": reset,
    }
