"""What the API reads instead of the warehouse: the published Parquet snapshot and the ledger export.

DuckDB lets one process write its file and nobody else open it meanwhile, so an API holding the
warehouse would make every stage fail. Publication writes the served marts as Parquet and every
ledger change rewrites ``published/ops/*.parquet`` (:mod:`searchflow.published`); this module
queries those files on short-lived in-memory DuckDB connections and keeps one in-memory index of
users per mart version, so ``GET /users/{id}`` is a dictionary lookup.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq

from searchflow import ledger, published

USERS_MART = "marketing.mart_user_segments"

# Empty stand-ins for exports not written yet (before the first ingestion), so queries still run.
_EMPTY: dict[str, str] = {
    "dead_letters": (
        "CREATE TABLE ops.dead_letters (ingested_date DATE, source VARCHAR, reason VARCHAR, "
        "event_type VARCHAR, dead_letters BIGINT)"
    ),
    "dead_letter_log": (
        "CREATE TABLE ops.dead_letter_log (dead_letter_id VARCHAR, reason VARCHAR, "
        "detail VARCHAR, event_type VARCHAR, source VARCHAR, source_ref VARCHAR, "
        "batch_id VARCHAR, ingested_at TIMESTAMP, raw_text VARCHAR, raw_chars BIGINT)"
    ),
    "freshness": (
        "CREATE TABLE ops.freshness (source VARCHAR, event_type VARCHAR, events BIGINT, "
        "latest_event_time TIMESTAMP, latest_ingested_at TIMESTAMP)"
    ),
}


def _quote(path: Path) -> str:
    return str(path).replace("'", "''")


@dataclass(frozen=True)
class _UserIndex:
    version: str
    stamp: int  # the file's mtime: a rewrite in place (searchflow forget) replaces the index
    columns: dict[str, list[Any]]
    rows: dict[str, int]


class PublishedData:
    """The published snapshot and the ledger export under one ``$SEARCHFLOW_HOME``."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home)
        # Resolved once: resolving a path costs a system call per folder, on every request.
        self._root = published.published_root(self.home)
        self._pointer = self._root / published.POINTER
        self._version: tuple[tuple[int, int], str | None] | None = None
        self._users: _UserIndex | None = None
        self._lock = threading.Lock()

    def version(self) -> str | None:
        """The served mart version: the pointer file, read again whenever it changed (publishing
        renames a new file over it, so its inode and mtime change; one stat per call)."""
        try:
            st = self._pointer.stat()
        except FileNotFoundError:
            return None
        stamp = (st.st_ino, st.st_mtime_ns)
        cached = self._version
        if cached is not None and cached[0] == stamp:
            return cached[1]
        version = published.current_version(self.home)
        self._version = (stamp, version)
        return version

    def ops_file(self, table: str) -> Path:
        return published.ops_path(self.home, table)

    def ledger(self) -> duckdb.DuckDBPyConnection:
        """A fresh in-memory DuckDB whose ``ops.*`` views read the ledger export; tables not
        exported yet are empty. The caller closes it (one connection per request: DuckDB
        connections are not shared between threads)."""
        con = duckdb.connect(":memory:", config={"threads": 1})
        con.execute("CREATE SCHEMA ops")
        for table in published.OPS_TABLES:
            path = self.ops_file(table)
            if path.exists():
                con.execute(
                    f"CREATE VIEW ops.{table} AS SELECT * FROM read_parquet('{_quote(path)}')"
                )
            elif table in _EMPTY:
                con.execute(_EMPTY[table])
        ledger.ensure_ledger(con)  # creates ops.batches / ops.publish_log only when not exported
        return con

    def user(self, user_id: str) -> tuple[str | None, dict[str, Any] | None]:
        """(served version, the user's row of the segments mart or None)."""
        index = self._user_index()
        if index is None:
            return None, None
        row = index.rows.get(user_id)
        if row is None:
            return index.version, None
        return index.version, {name: values[row] for name, values in index.columns.items()}

    def _served(self) -> tuple[str, Path, int] | None:
        """(version, users file, its mtime) of the served version; None before a publish."""
        version = self.version()
        if version is None:
            return None
        path = self._root / version / f"{USERS_MART}.parquet"  # published.mart_path, unresolved
        try:
            return version, path, path.stat().st_mtime_ns
        except FileNotFoundError:
            return None

    def users_ready(self) -> bool:
        """Whether :meth:`user` answers from memory (no Parquet to read): cheap enough to ask on
        the event loop, so only a reload goes to a thread."""
        served = self._served()
        current = self._users
        return served is None or (
            current is not None and (current.version, current.stamp) == (served[0], served[2])
        )

    def _user_index(self) -> _UserIndex | None:
        served = self._served()
        if served is None:
            return None
        version, path, stamp = served
        current = self._users
        if current is not None and (current.version, current.stamp) == (version, stamp):
            return current
        with self._lock:
            current = self._users
            if current is not None and (current.version, current.stamp) == (version, stamp):
                return current
            table = pq.read_table(path)
            columns = {name: table.column(name).to_pylist() for name in table.column_names}
            rows = {user: i for i, user in enumerate(columns["user_id"])}
            self._users = _UserIndex(version, stamp, columns, rows)
            return self._users
