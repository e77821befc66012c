"""The batch ledger: one row per stage run, in the warehouse's ``ops`` schema.

Write-audit-publish needs one place that says which batches exist, where each came from, and
whether its gate let it through. Every stage records its batch here when it lands (``landed``),
the gate's verdict moves it to ``published`` or ``held``, and a person can ``discard`` it later.
dbt reads only rows of published ingestion batches, so this table is what holds data back, not
only runs. ``ops.publish_log`` records each mart publication; its latest row is the served version.

Everything here is plain SQL on an open DuckDB connection: no Prefect, no settings, so the gated
functions, the command line and a plain ``dbt build`` (through the raw layer's DDL) share it. The
SQL stays within what DuckDB's PostgreSQL extension can write to an attached PostgreSQL warehouse
(no ``ON CONFLICT ... DO UPDATE``, no ``RETURNING`` on updates, no list-valued defaults): an upsert
reads the row first and then inserts or updates it, in the caller's connection.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import duckdb

from searchflow.compat import duckdb_postgres
from searchflow.contract import STAGES
from searchflow.errors import SearchflowError

SCHEMA = "ops"
BATCHES = f"{SCHEMA}.batches"
PUBLISH_LOG = f"{SCHEMA}.publish_log"

STATES: tuple[str, ...] = ("landed", "published", "held", "discarded")
GATE_OUTCOMES: tuple[str, ...] = ("passed", "failed", "errored", "forced")
# A verdict that lets the batch through; the others hold it.
_PUBLISHING = frozenset({"passed", "forced"})

_DDL: tuple[str, ...] = (
    f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
    f"""
    CREATE TABLE IF NOT EXISTS {BATCHES} (
        batch_id      VARCHAR PRIMARY KEY,
        stage         VARCHAR NOT NULL,   -- generation | ingestion | transformation | sync
        parents       VARCHAR[] NOT NULL,
        state         VARCHAR NOT NULL,   -- landed | published | held | discarded
        source        VARCHAR,            -- ingestion: source; generation: sink; sync: sync name
        counts        JSON,               -- the stage summary's numbers
        gate_outcome  VARCHAR,            -- passed | failed | errored | forced | NULL
        gate_reasons  JSON,               -- list of one-line reasons
        forced        BOOLEAN NOT NULL DEFAULT false,
        flow_run_id   VARCHAR,
        created_at    TIMESTAMP NOT NULL, -- UTC
        updated_at    TIMESTAMP NOT NULL,
        published_at  TIMESTAMP,
        discarded_at  TIMESTAMP
    )
    """,
    f"""
    CREATE TABLE IF NOT EXISTS {PUBLISH_LOG} (
        version       VARCHAR PRIMARY KEY,
        published_at  TIMESTAMP NOT NULL,  -- UTC
        parents       VARCHAR[] NOT NULL,
        schemas       JSON,                -- schema -> candidate schema of this version
        forced        BOOLEAN NOT NULL DEFAULT false
    )
    """,
)

_COLUMNS = (
    "batch_id, stage, parents, state, source, counts, gate_outcome, gate_reasons, forced, "
    "flow_run_id, created_at, updated_at, published_at, discarded_at"
)


def _now() -> datetime:
    """UTC as a naive timestamp, the warehouse's convention."""
    return datetime.now(UTC).replace(tzinfo=None)


def _json(value: object) -> str | None:
    return None if value is None else json.dumps(value, default=str, sort_keys=True)


def _check(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; expected one of {', '.join(allowed)}")


def ensure_ledger(con: duckdb.DuckDBPyConnection) -> None:
    """Create ``ops.batches`` and ``ops.publish_log`` if missing (idempotent).

    In a PostgreSQL warehouse the JSON columns are text: DuckDB's extension updates a row through
    a staging table of VARCHAR columns, which PostgreSQL refuses to assign to ``json``. The values
    are the same JSON text either way (:func:`_rows` decodes both).
    """
    postgres = duckdb_postgres.in_use(con)
    for statement in _DDL:
        con.execute(statement.replace(" JSON,", " VARCHAR,") if postgres else statement)


def record(
    con: duckdb.DuckDBPyConnection,
    batch_id: str,
    stage: str,
    *,
    state: str = "landed",
    parents: Iterable[str] = (),
    source: str | None = None,
    counts: Mapping[str, Any] | None = None,
    flow_run_id: str | None = None,
) -> None:
    """Insert one batch, or update the one already recorded under this id.

    An update keeps what the new call does not know: parents are merged (a crash-recovered batch
    keeps the parents of its first run), counts, source and flow run id are kept when not given.
    """
    _check("stage", stage, STAGES)
    _check("state", state, STATES)
    now = _now()
    counted = _json(dict(counts) if counts is not None else None)
    known = con.execute(f"SELECT parents FROM {BATCHES} WHERE batch_id = ?", [batch_id]).fetchone()
    if known is None:
        con.execute(
            f"""
            INSERT INTO {BATCHES} (batch_id, stage, parents, state, source, counts, flow_run_id,
                                   created_at, updated_at)
            VALUES (?, ?, ?::VARCHAR[], ?, ?, ?::JSON, ?, ?, ?)
            """,
            [batch_id, stage, sorted(set(parents)), state, source, counted, flow_run_id, now, now],
        )
        return
    con.execute(
        f"""
        UPDATE {BATCHES} SET
            parents = ?::VARCHAR[],
            state = ?,
            source = coalesce(?, source),
            counts = coalesce(?::JSON, counts),
            flow_run_id = coalesce(?, flow_run_id),
            updated_at = ?
        WHERE batch_id = ?
        """,
        [
            sorted({*(known[0] or ()), *parents}),
            state,
            source,
            counted,
            flow_run_id,
            now,
            batch_id,
        ],
    )


def judge(
    con: duckdb.DuckDBPyConnection,
    batch_id: str,
    outcome: str,
    reasons: Iterable[str] = (),
    *,
    forced: bool = False,
) -> dict[str, Any]:
    """Write a gate's verdict: passed or forced publishes the batch, failed or errored holds it.

    ``forced=True`` (or outcome ``forced``) publishes whatever the gate said and records that it
    was forced; the reasons kept are the ones that were overridden. Returns the updated row.
    """
    _check("gate outcome", outcome, GATE_OUTCOMES)
    forced = forced or outcome == "forced"
    verdict = "forced" if forced else outcome
    publishing = verdict in _PUBLISHING
    now = _now()
    if get(con, batch_id) is None:
        raise _unknown(batch_id)
    con.execute(
        f"""
        UPDATE {BATCHES} SET
            gate_outcome = ?,
            gate_reasons = ?::JSON,
            forced = forced OR ?,
            state = ?,
            published_at = CASE WHEN ? THEN ? ELSE published_at END,
            updated_at = ?
        WHERE batch_id = ?
        """,
        [
            verdict,
            _json(list(reasons)),
            forced,
            "published" if publishing else "held",
            publishing,
            now,
            now,
            batch_id,
        ],
    )
    return get(con, batch_id) or {}


def discard(con: duckdb.DuckDBPyConnection, batch_id: str) -> dict[str, Any]:
    """Mark a batch discarded; deleting its rows is the caller's job. Returns the updated row."""
    now = _now()
    if get(con, batch_id) is None:
        raise _unknown(batch_id)
    con.execute(
        f"UPDATE {BATCHES} SET state = 'discarded', discarded_at = ?, updated_at = ? "
        "WHERE batch_id = ?",
        [now, now, batch_id],
    )
    return get(con, batch_id) or {}


def _unknown(batch_id: str) -> SearchflowError:
    return SearchflowError(
        f"no batch {batch_id!r} in the ledger; `searchflow batches list` shows the known ones"
    )


def _rows(cursor: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description or ()]
    out = []
    for values in cursor.fetchall():
        row = dict(zip(names, values, strict=True))
        for key in ("counts", "gate_reasons", "schemas"):
            if isinstance(row.get(key), str):
                row[key] = json.loads(row[key])
        if "parents" in row:
            row["parents"] = list(row["parents"] or [])
        out.append(row)
    return out


def get(con: duckdb.DuckDBPyConnection, batch_id: str) -> dict[str, Any] | None:
    """One batch's row, JSON columns decoded; None when unknown."""
    rows = _rows(con.execute(f"SELECT {_COLUMNS} FROM {BATCHES} WHERE batch_id = ?", [batch_id]))
    return rows[0] if rows else None


def list_batches(
    con: duckdb.DuckDBPyConnection,
    state: str | None = None,
    stage: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Batches, newest first, optionally of one state and/or stage."""
    if state is not None:
        _check("state", state, STATES)
    if stage is not None:
        _check("stage", stage, STAGES)
    sql = (
        f"SELECT {_COLUMNS} FROM {BATCHES} WHERE (? IS NULL OR state = ?) "
        "AND (? IS NULL OR stage = ?) ORDER BY created_at DESC, batch_id DESC"
    )
    params: list[object] = [state, state, stage, stage]
    if limit is not None:
        sql += " LIMIT ?"
        params.append(int(limit))
    return _rows(con.execute(sql, params))


def lineage(con: duckdb.DuckDBPyConnection, batch_id: str) -> list[dict[str, Any]]:
    """The batch with its ancestors and descendants, in stage order (oldest first within a stage).

    Ancestors follow ``parents`` up; descendants are the batches that name this one (or one of its
    descendants) as a parent. Siblings (another generation batch read by the same ingestion) are
    not part of a batch's story and are left out.
    """
    order = " ".join(f"WHEN '{s}' THEN {i}" for i, s in enumerate(STAGES))
    return _rows(
        con.execute(
            f"""
            WITH RECURSIVE
            up(batch_id) AS (
                SELECT ?::VARCHAR
                UNION
                SELECT unnest(b.parents) FROM {BATCHES} b JOIN up ON b.batch_id = up.batch_id
            ),
            down(batch_id) AS (
                SELECT ?::VARCHAR
                UNION
                SELECT b.batch_id FROM {BATCHES} b JOIN down ON list_contains(b.parents, down.batch_id)
            )
            SELECT {_COLUMNS} FROM {BATCHES}
            WHERE batch_id IN (SELECT batch_id FROM up UNION SELECT batch_id FROM down)
            ORDER BY CASE stage {order} END, created_at, batch_id
            """,
            [batch_id, batch_id],
        )
    )


def record_publication(
    con: duckdb.DuckDBPyConnection,
    version: str,
    *,
    parents: Iterable[str] = (),
    schemas: Mapping[str, str] | None = None,
    forced: bool = False,
    published_at: datetime | None = None,
) -> None:
    """Append a mart publication; the caller runs it in the transaction that repoints the views."""
    con.execute(
        f"INSERT INTO {PUBLISH_LOG} (version, published_at, parents, schemas, forced) "
        "VALUES (?, ?, ?::VARCHAR[], ?::JSON, ?)",
        [
            version,
            published_at or _now(),
            sorted(set(parents)),
            _json(dict(schemas) if schemas is not None else None),
            forced,
        ],
    )


def published_version(con: duckdb.DuckDBPyConnection) -> dict[str, Any] | None:
    """The served mart version (the latest publication), or None before the first one."""
    rows = _rows(
        con.execute(
            f"SELECT version, published_at, parents, schemas, forced FROM {PUBLISH_LOG} "
            "ORDER BY published_at DESC, version DESC LIMIT 1"
        )
    )
    return rows[0] if rows else None
