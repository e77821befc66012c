"""Publication: making a gated candidate the served mart version, atomically, or rejecting it.

:func:`publish` does, in this order:

1. in ONE DuckDB transaction, repoint every published view (``analytics.fct_search_funnel``, ...)
   to the candidate's tables and append the ``ops.publish_log`` row
   (:func:`searchflow.ledger.record_publication`); a reader sees the previous version or the new
   one, never a mix;
2. run the segment snapshot and the views over it (``dbt build --select user_segments_snapshot+``)
   on the published marts, so a rejected candidate never reaches the snapshot;
3. write the published marts and the snapshot as Parquet under
   ``$SEARCHFLOW_HOME/published/<version>/`` and replace the pointer file ``published/CURRENT``
   last (:func:`searchflow.published.write_snapshot`), the snapshot included so the files match;
4. keep the newest two candidates (and the served one) and drop older ones.

Any error in 2-4 rolls the publication back whole: the views point to the previous version again,
the publish_log row goes, the segment snapshot is restored from the copy taken in step 1, and the
pointer file names the previous version. The candidate stays, to be published again or rejected.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import duckdb

from searchflow import ledger
from searchflow.config import Settings
from searchflow.errors import SearchflowError, UsageError
from searchflow.transform import candidate
from searchflow.transform.runner import AFTER_PUBLICATION, summarize
from searchflow.warehouse import (
    execute_in_place,
    native,
    native_rows,
    on_postgres,
    session,
    table_exists,
)

SNAPSHOT = "snapshots.user_segments_snapshot"
# The snapshot as it was before this publication's run, while the publication can still roll back.
SNAPSHOT_BEFORE = "snapshots.user_segments_snapshot__before_publish"
# Candidates kept besides the served one: the newest ones, for a look at what was rejected.
KEEP_CANDIDATES = 2

Invoker = Callable[..., tuple[list[Any], float]]


def _split(qualified: str) -> tuple[str, str]:
    schema, _, table = qualified.partition(".")
    return schema, table


def _view_sql(con: duckdb.DuckDBPyConnection, qualified: str) -> str | None:
    """The statement that recreates the published view as it is now (None: no view); in a
    PostgreSQL warehouse, PostgreSQL's own (run it with :func:`execute_in_place`)."""
    schema, table = _split(qualified)
    if on_postgres(con):
        rows = native_rows(
            con,
            "SELECT table_schema, table_name FROM information_schema.view_table_usage "
            f"WHERE view_schema = '{_literal(schema)}' AND view_name = '{_literal(table)}'",
        )
        if not rows:
            return None
        src_schema, src_table = rows[0]
        return _pg_view(schema, table, f'"{src_schema}"."{src_table}"')
    row = con.execute(
        "SELECT sql FROM duckdb_views() WHERE database_name = current_database() "
        "AND schema_name = ? AND view_name = ?",
        [schema, table],
    ).fetchone()
    if row is None:
        return None
    return row[0].replace("CREATE VIEW", "CREATE OR REPLACE VIEW", 1)


def _pg_view(schema: str, table: str, source: str) -> str:
    """PostgreSQL's statement pointing a view at ``source``: dropped and created (in the caller's
    transaction), since PostgreSQL replaces a view in place only when its columns stay the same."""
    return (
        f'CREATE SCHEMA IF NOT EXISTS "{schema}"; DROP VIEW IF EXISTS "{schema}"."{table}"; '
        f'CREATE VIEW "{schema}"."{table}" AS SELECT * FROM {source}'
    )


def _literal(text: str) -> str:
    return text.replace("'", "''")


def _is_table(con: duckdb.DuckDBPyConnection, qualified: str) -> bool:
    schema, table = _split(qualified)
    if on_postgres(con):  # DuckDB's catalog shows PostgreSQL views as tables
        return bool(
            native_rows(
                con,
                "SELECT 1 FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
                f"AND table_schema = '{_literal(schema)}' AND table_name = '{_literal(table)}'",
            )
        )
    row = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? "
        "AND table_name = ? AND table_type = 'BASE TABLE'",
        [schema, table],
    ).fetchone()
    return bool(row and row[0])


def repoint(con: duckdb.DuckDBPyConnection, targets: Mapping[str, str]) -> None:
    """Point each published view at its candidate table (inside the caller's transaction).

    A published name that is still a table (a warehouse built before publication existed) is
    replaced by the view. In a PostgreSQL warehouse the views are PostgreSQL's own, made there.
    """
    postgres = on_postgres(con)
    for published, source in targets.items():
        schema, table = _split(published)
        src_schema, src_table = _split(source)
        if postgres:
            drop = (
                f'DROP TABLE IF EXISTS "{schema}"."{table}"; ' if _is_table(con, published) else ""
            )
            native(con, drop + _pg_view(schema, table, f'"{src_schema}"."{src_table}"'))
            continue
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        if _is_table(con, published):
            con.execute(f'DROP TABLE "{schema}"."{table}"')
        con.execute(
            f'CREATE OR REPLACE VIEW "{schema}"."{table}" AS '
            f'SELECT * FROM "{src_schema}"."{src_table}"'
        )


def in_process(settings: Settings, command: str, **options: Any) -> tuple[list[Any], float]:
    """The default :data:`Invoker`: dbt in this process; returns (node results, seconds)."""
    from searchflow.transform.runner import invoke

    result, seconds = invoke(settings, command, **options)
    return list(getattr(result.result, "results", None) or []), seconds


def publish(
    settings: Settings,
    version: str,
    *,
    forced: bool = False,
    parents: Iterable[str] | None = None,
    invoke: Invoker | None = None,
) -> dict[str, Any]:
    """Make candidate ``version`` the served mart version; see the module docstring.

    ``parents``: the ingestion batches this version takes in (default: the ledger row of the
    version's transformation batch when there is one, else the published batches no publication
    has taken in yet). ``invoke`` runs dbt (default in-process; the Prefect flow passes prefect-dbt's).
    Returns the version, its schemas, parents, the snapshot step's node counts and the Parquet folder.
    """
    started = time.perf_counter()
    with session(settings) as con:
        ledger.ensure_ledger(con)
        lacking = candidate.missing(con, version)
        if lacking:
            raise SearchflowError(
                f"candidate {version} lacks {', '.join(lacking)}; build the marts in full "
                "(`searchflow transform` without --select) before publishing"
            )
        previous = ledger.published_version(con)
        targets = candidate.view_targets(con, version)
        before = {name: _view_sql(con, name) for name in targets}
        if parents is None:
            row = ledger.get(con, version)
            parents = row["parents"] if row else candidate.pending_parents(con)
        parents = sorted(set(parents))
        had_snapshot = table_exists(con, SNAPSHOT)
        con.execute("BEGIN TRANSACTION")
        try:
            repoint(con, targets)
            ledger.record_publication(
                con, version, parents=parents, schemas=candidate.schemas(version), forced=forced
            )
            if had_snapshot:
                copy = f"CREATE OR REPLACE TABLE {SNAPSHOT_BEFORE} AS SELECT * FROM {SNAPSHOT}"
                if on_postgres(con):  # a copy with PostgreSQL's own types, made there
                    native(con, f"DROP TABLE IF EXISTS {SNAPSHOT_BEFORE}")
                    copy = copy.replace("CREATE OR REPLACE TABLE", "CREATE TABLE")
                    native(con, copy)
                else:
                    con.execute(copy)
            con.execute("COMMIT")
        except Exception as exc:
            con.execute("ROLLBACK")
            raise SearchflowError(
                f"publishing mart version {version} failed, nothing changed: {exc}"
            ) from None
    try:
        nodes, seconds = (invoke or in_process)(
            settings, "build", select=AFTER_PUBLICATION, version=version
        )
        folder = _write_parquet(settings, version)
        with session(settings) as con:
            con.execute(f"DROP TABLE IF EXISTS {SNAPSHOT_BEFORE}")
            keep = [version] + ([str(previous["version"])] if previous else [])
            dropped = candidate.prune(con, keep, newest=KEEP_CANDIDATES)
    except Exception as exc:
        _roll_back(settings, version, before, had_snapshot, previous)
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SearchflowError(
            f"publishing mart version {version} failed and was rolled back "
            f"(version {previous['version'] if previous else 'none'} still served): {message}"
        ) from None
    return {
        "version": version,
        "published": True,
        "forced": forced,
        "schemas": candidate.schemas(version),
        "parents": parents,
        "previous": str(previous["version"]) if previous else None,
        "snapshot": summarize(nodes, seconds),
        "parquet": str(folder),
        "dropped_candidates": dropped,
        "seconds": round(time.perf_counter() - started, 3),
    }


def _write_parquet(settings: Settings, version: str) -> Path:
    from searchflow.published import write_snapshot

    with session(settings, read_only=True) as con:
        return write_snapshot(con, settings.home_path, version)


def _roll_back(
    settings: Settings,
    version: str,
    before: Mapping[str, str | None],
    had_snapshot: bool,
    previous: Mapping[str, Any] | None,
) -> None:
    """Undo a publication whose transaction committed but whose later steps failed."""
    with session(settings) as con:
        con.execute("BEGIN TRANSACTION")
        for name, statement in before.items():
            if statement is None:
                schema, table = _split(name)
                execute_in_place(con, f'DROP VIEW IF EXISTS "{schema}"."{table}"')
            else:
                execute_in_place(con, statement)
        con.execute(f"DELETE FROM {ledger.PUBLISH_LOG} WHERE version = ?", [version])
        if had_snapshot:
            con.execute(f"DELETE FROM {SNAPSHOT}")
            con.execute(f"INSERT INTO {SNAPSHOT} SELECT * FROM {SNAPSHOT_BEFORE}")
            con.execute(f"DROP TABLE {SNAPSHOT_BEFORE}")
        else:
            con.execute(f"DROP TABLE IF EXISTS {SNAPSHOT}")
        con.execute("COMMIT")
    _restore_pointer(settings.home_path, version, str(previous["version"]) if previous else None)


def _restore_pointer(home: Path, version: str, previous: str | None) -> None:
    from searchflow.published import POINTER, current_version, published_root

    root = published_root(home)
    if current_version(home) == version:
        pointer = root / POINTER
        if previous is None:
            pointer.unlink(missing_ok=True)
        else:
            tmp = root / f".{POINTER}.{uuid.uuid4().hex}.tmp"
            tmp.write_text(previous + "\n", encoding="utf-8")
            os.replace(tmp, pointer)
    shutil.rmtree(root / version, ignore_errors=True)


def reject(settings: Settings, version: str) -> dict[str, Any]:
    """Drop a candidate the gate failed; the served version cannot be rejected."""
    with session(settings) as con:
        ledger.ensure_ledger(con)
        served = ledger.published_version(con)
        if served is not None and str(served["version"]) == version:
            raise UsageError(f"mart version {version} is the served one; it cannot be rejected")
        known = version in candidate.candidates(con)
        candidate.drop(con, version)
    return {"version": version, "dropped": known}
