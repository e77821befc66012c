"""The published snapshot: what dashboards and the API read instead of the warehouse file.

DuckDB allows one writer and no other process beside it, so a reader holding the warehouse open
would make ingestion and transformation fail. Publication therefore also writes the served marts
as Parquet, one folder per mart version, and a pointer file naming the served one::

    $SEARCHFLOW_HOME/published/<version>/<schema>.<table>.parquet
    $SEARCHFLOW_HOME/published/CURRENT          (text: the version)
    $SEARCHFLOW_HOME/published/ops/<table>.parquet   (the ledger and what monitoring needs)

Every file is written under a temporary name and renamed into place, so a reader sees either the
previous file or the next one, never half of one. Readers open the files for the length of one
query and hold nothing between queries.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from searchflow.contract import MARTS
from searchflow.errors import SearchflowError

PUBLISHED_DIR = "published"
POINTER = "CURRENT"
OPS_DIR = "ops"
# The segment history published beside the marts.
SNAPSHOT = "snapshots.user_segments_snapshot"
# Every relation a publication writes.
PUBLISHED_RELATIONS: tuple[str, ...] = (*MARTS, SNAPSHOT)
# Versions kept on disk: the served one and the one before (a reader may still be on it).
KEEP_VERSIONS = 2

# The ledger export and the monitoring tables derived with it, by file name.
OPS_TABLES: tuple[str, ...] = (
    "batches",
    "publish_log",
    "dead_letters",
    "freshness",
    "dead_letter_log",
)
# The newest dead letters the API lists one by one, and how much of each raw line the export keeps.
DEAD_LETTER_LOG_ROWS = 10_000
DEAD_LETTER_TEXT_CHARS = 65_536


def published_root(home: Path) -> Path:
    """``$SEARCHFLOW_HOME/published``."""
    return Path(home).expanduser().resolve() / PUBLISHED_DIR


def current_version(home: Path) -> str | None:
    """The served mart version, or None before the first publication."""
    pointer = published_root(home) / POINTER
    try:
        version = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return version or None


def mart_path(home: Path, name: str, version: str | None = None) -> Path:
    """The Parquet file of one published relation (``schema.table``) in ``version``
    (default: the served one)."""
    if name not in PUBLISHED_RELATIONS:
        raise SearchflowError(
            f"{name!r} is not a published mart; expected one of {', '.join(PUBLISHED_RELATIONS)}"
        )
    version = version or current_version(home)
    if version is None:
        raise SearchflowError(
            f"nothing is published yet under {published_root(home)}; run `searchflow run` or "
            "`searchflow transform` first"
        )
    return published_root(home) / version / f"{name}.parquet"


def read_mart(home: Path, name: str, version: str | None = None) -> pa.Table:
    """One published relation as an Arrow table."""
    path = mart_path(home, name, version)
    if not path.exists():
        raise SearchflowError(f"published version {path.parent.name} has no {name} ({path})")
    return pq.read_table(path)


def ops_path(home: Path, table: str) -> Path:
    """``published/ops/<table>.parquet``."""
    if table not in OPS_TABLES:
        raise SearchflowError(
            f"unknown ops export {table!r}; expected one of {', '.join(OPS_TABLES)}"
        )
    return published_root(home) / OPS_DIR / f"{table}.parquet"


def _copy(con: duckdb.DuckDBPyConnection, query: str, target: Path) -> None:
    """COPY ``query`` to ``target`` through a temporary file in the same folder, then rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    path = str(tmp).replace("'", "''")
    try:
        con.execute(f"COPY ({query}) TO '{path}' (FORMAT parquet, COMPRESSION zstd)")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _relation_exists(con: duckdb.DuckDBPyConnection, qualified: str) -> bool:
    schema, _, table = qualified.partition(".")
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_schema = ? AND table_name = ?",
            [schema, table],
        ).fetchone()[0]
    )


def _write_pointer(root: Path, version: str) -> None:
    tmp = root / f".{POINTER}.{uuid.uuid4().hex}.tmp"
    tmp.write_text(version + "\n", encoding="utf-8")
    os.replace(tmp, root / POINTER)


def write_snapshot(
    con: duckdb.DuckDBPyConnection,
    home: Path,
    version: str,
    relations: Mapping[str, str] | Iterable[str] = PUBLISHED_RELATIONS,
    *,
    keep: int = KEEP_VERSIONS,
) -> Path:
    """Write the published relations of ``version`` as Parquet, then point CURRENT at it.

    ``relations``: published names, or a mapping published name -> the relation to read it from
    (for example a candidate schema's table). A relation missing from the warehouse is skipped:
    the segment snapshot does not exist before its first run. The version folder is written under
    a temporary name and renamed whole, so readers never see a partial version; older versions
    beyond ``keep`` are removed afterwards.
    """
    sources = dict(relations) if isinstance(relations, Mapping) else {n: n for n in relations}
    root = published_root(home)
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".{version}.{uuid.uuid4().hex}.tmp"
    staging.mkdir()
    try:
        for name, source in sources.items():
            if _relation_exists(con, source):
                _copy(con, f"SELECT * FROM {source}", staging / f"{name}.parquet")
        final = root / version
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    _write_pointer(root, version)
    prune(home, keep=keep)
    return final


def versions(home: Path) -> list[str]:
    """Published version folders, oldest first (by modification time)."""
    root = published_root(home)
    if not root.exists():
        return []
    folders = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    folders = [p for p in folders if p.name != OPS_DIR]
    return [p.name for p in sorted(folders, key=lambda p: (p.stat().st_mtime, p.name))]


def prune(home: Path, keep: int = KEEP_VERSIONS) -> list[str]:
    """Remove all but the newest ``keep`` versions, never the served one; returns what went."""
    served = current_version(home)
    old = [v for v in versions(home) if v != served]
    doomed = old[: max(len(old) - max(keep - 1, 0), 0)]
    for version in doomed:
        shutil.rmtree(published_root(home) / version, ignore_errors=True)
    return doomed


# What monitoring reads, as SQL over the warehouse. Dead letters and freshness are aggregates, so
# the export stays small however large the raw layer grows.
_OPS_QUERIES: dict[str, tuple[tuple[str, ...], str]] = {
    "batches": (("ops.batches",), "SELECT * FROM ops.batches"),
    "publish_log": (("ops.publish_log",), "SELECT * FROM ops.publish_log"),
    "dead_letters": (
        ("raw.dead_letter_events",),
        """
        SELECT cast(ingested_at AS date) AS ingested_date, source, reason, event_type,
               count(*) AS dead_letters
        FROM raw.dead_letter_events
        GROUP BY ALL
        """,
    ),
    "dead_letter_log": (
        ("raw.dead_letter_events",),
        f"""
        SELECT dead_letter_id, reason, detail, event_type, source, source_ref, batch_id,
               ingested_at, left(raw_text, {DEAD_LETTER_TEXT_CHARS}) AS raw_text,
               length(raw_text) AS raw_chars
        FROM raw.dead_letter_events
        ORDER BY ingested_at DESC, dead_letter_id
        LIMIT {DEAD_LETTER_LOG_ROWS}
        """,
    ),
    "freshness": (
        ("raw.search_events", "raw.click_events", "raw.conversion_events"),
        """
        SELECT source, event_type, count(*) AS events, max(event_time) AS latest_event_time,
               max(ingested_at) AS latest_ingested_at
        FROM (
            SELECT source, 'search' AS event_type, event_time, ingested_at FROM raw.search_events
            UNION ALL
            SELECT source, 'click', event_time, ingested_at FROM raw.click_events
            UNION ALL
            SELECT source, 'conversion', event_time, ingested_at FROM raw.conversion_events
        )
        GROUP BY ALL
        """,
    ),
}


def export_ops(con: duckdb.DuckDBPyConnection, home: Path) -> dict[str, Path]:
    """Write the ledger (``ops.batches``, ``ops.publish_log``), dead letters by reason and the
    freshness of each source under ``published/ops/``, for readers that must not open the
    warehouse. Call it after every ledger change; tables not created yet are skipped."""
    written: dict[str, Path] = {}
    for table, (needs, query) in _OPS_QUERIES.items():
        if all(_relation_exists(con, name) for name in needs):
            target = ops_path(home, table)
            _copy(con, query, target)
            written[table] = target
    return written
