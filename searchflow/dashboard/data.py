"""The one place the dashboards read data: the published Parquet snapshot and the sync history.

Every query runs on a fresh in-memory DuckDB connection whose views (``analytics.fct_search_funnel``,
``ops.batches``, ...) point at the Parquet files of one published version, so page SQL names the
marts exactly as the warehouse does. Results are cached per version: a new publication changes the
version, and with it every cache key, so nothing stale is served and nothing is recomputed twice.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd
import streamlit as st

from searchflow import published
from searchflow.config import get_settings
from searchflow.services import local_postgres_url, mask_url

# How long a cached result may be served: the version in its key already makes it exact, so this
# only bounds memory and the sync history's staleness.
CACHE_SECONDS = 300
SYNC_HISTORY_SECONDS = 15
SYNC_HISTORY_LIMIT = 500


def home() -> Path:
    """The data folder the app serves (``SEARCHFLOW_HOME``)."""
    return get_settings().home_path


def version() -> str | None:
    """The served mart version, read from the pointer file on every rerun (a cheap file read)."""
    return published.current_version(home())


def ops_stamp() -> str:
    """Changes whenever the ledger export is rewritten: the cache key of the ops queries."""
    stamps = []
    for table in published.OPS_TABLES:
        path = published.ops_path(home(), table)
        stamps.append(f"{table}:{path.stat().st_mtime_ns if path.exists() else 0}")
    return ",".join(stamps)


def _quote(path: Path) -> str:
    return str(path).replace("'", "''")


def _connect(root: Path, version: str | None, sql: str) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with a view per published file of ``version`` (and of ``ops``) that
    ``sql`` names; binding a view reads its file's footer, so unused files are left alone."""
    con = duckdb.connect(":memory:", config={"threads": 2})
    names: list[tuple[str, Path]] = []
    if version is not None:
        for name in published.PUBLISHED_RELATIONS:
            names.append((name, published.mart_path(root, name, version)))
    for table in published.OPS_TABLES:
        names.append((f"ops.{table}", published.ops_path(root, table)))
    for name, path in names:
        if name in sql and path.exists():
            schema = name.split(".")[0]
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{_quote(path)}')")
    return con


def available(version: str | None, name: str) -> bool:
    """Whether the published ``version`` (or ops) holds relation ``name``."""
    root = home()
    if name.startswith("ops."):
        return published.ops_path(root, name.split(".", 1)[1]).exists()
    return version is not None and published.mart_path(root, name, version).exists()


def query(version: str | None, stamp: str, sql: str, params: tuple = ()) -> pd.DataFrame:
    """Run ``sql`` (with ``?`` parameters) over published ``version``; ``stamp`` is
    :func:`ops_stamp` for ledger queries and '' otherwise. Both are cache keys only."""
    return _query(str(home()), version, stamp, sql, tuple(params))


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False, max_entries=512)
def _query(root: str, version: str | None, stamp: str, sql: str, params: tuple) -> pd.DataFrame:
    con = _connect(Path(root), version, sql)
    try:
        return con.execute(sql, list(params)).df()
    finally:
        con.close()


def postgres_url() -> str:
    """The configured PostgreSQL, else the one on localhost; the app never starts one."""
    return get_settings().postgres_url or local_postgres_url()


@st.cache_data(ttl=SYNC_HISTORY_SECONDS, show_spinner=False)
def sync_runs(url: str, since: datetime | None = None) -> tuple[pd.DataFrame | None, str | None]:
    """The latest runs in ``crm.sync_runs`` as (frame, None), or (None, why not) when the server
    or the table is missing. The connection is open for one query only."""
    import psycopg2

    try:
        conn = psycopg2.connect(url, connect_timeout=3)
    except psycopg2.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return None, f"cannot reach PostgreSQL at {mask_url(url)} ({reason})"
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT to_regclass('crm.sync_runs') IS NOT NULL")
            if not cur.fetchone()[0]:
                return None, f"no crm.sync_runs in {mask_url(url)}: no sync has run there yet"
            cur.execute(
                """
                SELECT run_id, sync, batch_id, started_at, finished_at, status, read, inserted,
                       updated, unchanged, deleted, failed, seconds, error
                FROM crm.sync_runs
                WHERE started_at >= coalesce(%s, '-infinity'::timestamptz)
                ORDER BY started_at DESC
                LIMIT %s
                """,
                (since, SYNC_HISTORY_LIMIT),
            )
            columns = [d[0] for d in cur.description]
            frame = pd.DataFrame(cur.fetchall(), columns=columns)
    finally:
        conn.close()
    for column in ("started_at", "finished_at"):
        # naive UTC, like the warehouse: charts then show UTC clock times in any browser
        frame[column] = pd.to_datetime(frame[column], utc=True).dt.tz_convert(None)
    return frame, None


def now() -> datetime:
    """UTC now, naive like the warehouse's timestamps."""
    return datetime.now(UTC).replace(tzinfo=None)
