"""Set-based landing: classify a chunk of raw lines, drop what is already there, write the rest.

A *chunk* is what one landing transaction writes; an ingestion *batch* (one run, one id, one
ledger row) is one or more chunks. Every reader (JSONL, Redis, Postgres) puts one chunk into a
DuckDB relation with the columns ``ord, raw_text, source_ref, stream, problem`` and
:mod:`searchflow.ingest.chunks` calls :func:`land_chunk`. It:

1. classifies every line (:mod:`searchflow.ingest.validate`) into a temp table, copying the text
   once (before the transaction: it depends on the input alone);

and then, in ONE transaction:

2. collects the few lines that are not new into a second temp table: ``duplicate`` (its
   event_id already in the table, or earlier in this chunk; or, for a malformed line, its dead
   letter already recorded). The rest are ``dead_letter`` (malformed) or ``landed``;
3. inserts the landed events with one INSERT per event type, and the new dead letters;
4. runs the reader's bookkeeping (files read, watermark) and the batch's ledger row, so they move
   with the rows, never apart.

Why an anti-join and not a PRIMARY KEY: DuckDB's ART index makes bulk loads several times slower
and ``INSERT OR IGNORE`` cannot tell a duplicate from a landed row in the counts; a hash anti-join
against the ``event_id`` column is cheap and gives the counts for free. Within a chunk the first
line (by ``ord``) of an event wins.

The dead_letter_id is a hash of (source, source_ref, raw text): a re-read of the same input (a
redelivered stream entry, a file read again) finds it and adds no second dead letter.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import duckdb

from searchflow.ingest.validate import classify_sql
from searchflow.warehouse import (
    EVENT_TYPES,
    RAW_SCHEMA,
    ensure_raw_schema,
    raw_table,
    zstd_strings,
)

OUTCOMES: tuple[str, ...] = ("landed", "duplicates", "dead_letters", "suppressed")
# A forgotten user's events are dropped, never landed nor dead-lettered (which would keep their
# id): searchflow.pii registers this function on the connection when anyone was forgotten.
SUPPRESSION_FUNCTION = "sf_suppressed"
# String codecs the landing INSERTs do not try, by whether the file's format has ZSTD strings. In
# the v1.0 format strings end up FSST anyway, so analysing the others is wasted work. In the
# newest format the payload is declared ZSTD and the ids and refs end up DICT_FSST; plain FSST is
# not tried.
SKIPPED_CODECS = {True: "fsst", False: "dictionary,dict_fsst,zstd"}
# Rows per row group the landing connection writes (a quarter of DuckDB's default). Parallel
# INSERTs leave each thread's last, partial row groups to be compressed at COMMIT, on one core:
# smaller row groups keep that single-threaded tail short, for a slightly larger file.
LANDING_ROW_GROUP_SIZE = 30_720
# Run inside a chunk's landing transaction, with the chunk's counts, just before its COMMIT.
InTransaction = Callable[[duckdb.DuckDBPyConnection, dict[str, dict[str, int]]], None]
OTHER = "other"  # bucket of lines whose type cannot be told from the line or where it came from

# Bookkeeping the readers keep beside the raw tables (additive to the raw layer contract).
INGEST_DDL: tuple[str, ...] = (
    f"""
    CREATE TABLE IF NOT EXISTS {RAW_SCHEMA}.ingest_files (
        path        VARCHAR   NOT NULL,  -- absolute path of a JSONL file
        size        BIGINT    NOT NULL,  -- bytes seen when it was last read
        mtime_ns    BIGINT    NOT NULL,
        lines       BIGINT    NOT NULL,  -- complete lines consumed so far
        batch_id    VARCHAR   NOT NULL,
        ingested_at TIMESTAMP NOT NULL
    )
    """,
    f"""
    CREATE TABLE IF NOT EXISTS {RAW_SCHEMA}.ingest_watermarks (
        source_key  VARCHAR   NOT NULL,  -- e.g. postgres:host:port/db:app.events
        last_seq    BIGINT    NOT NULL,  -- highest app.events.seq landed
        batch_id    VARCHAR   NOT NULL,
        updated_at  TIMESTAMP NOT NULL
    )
    """,
)


def ensure_ingest_schema(con: duckdb.DuckDBPyConnection) -> None:
    """The raw layer plus the readers' bookkeeping tables (idempotent)."""
    ensure_raw_schema(con)
    for statement in INGEST_DDL:
        con.execute(statement)


def new_batch_id(source: str) -> str:
    """One batch id per ingest run: readable (source and UTC time) and unique (random suffix)."""
    return f"ingest-{source}-{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


def lit(value: Any) -> str:
    """A SQL literal. Statements here inline their values: any bound parameter makes DuckDB's
    Python client import pandas, which costs seconds on a cold start of the command."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime):
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(lit(v) for v in value) + "]"
    return "'" + str(value).replace("'", "''") + "'"


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def empty_counts() -> dict[str, dict[str, int]]:
    return {t: {"read": 0, **dict.fromkeys(OUTCOMES, 0)} for t in EVENT_TYPES}


def add_counts(total: dict[str, dict[str, int]], chunk: dict[str, dict[str, int]]) -> None:
    """Add a chunk's per-type counts into a batch's."""
    for bucket, counts in chunk.items():
        mine = total.setdefault(bucket, {"read": 0, **dict.fromkeys(OUTCOMES, 0)})
        for key, value in counts.items():
            mine[key] += value


def _judge_sql(input_relation: str, source: str, suppression: bool = False) -> str:
    """``_ingest_judged``: every line classified, with its dead-letter id (malformed lines only).

    A pure function of the input: it is built before the landing transaction opens. Built inside
    it, the table would live in the transaction's local storage, which makes the INSERTs reading
    it much slower.
    """
    return f"""
        CREATE OR REPLACE TEMP TABLE _ingest_judged AS
        SELECT *,
               {_suppressed_sql(suppression)} AS suppressed,
               CASE WHEN reason IS NOT NULL
                    THEN md5({lit(source)} || chr(31) || coalesce(source_ref, '') || chr(31)
                             || coalesce(payload::VARCHAR, raw_text, ''))
               END AS dead_letter_id
        FROM ({classify_sql(input_relation)})
        """


def _suppressed_sql(suppression: bool) -> str:
    if not suppression:
        return "false"
    user = "json_extract_string(payload, '$.user_id')"
    return f"coalesce(payload IS NOT NULL AND {SUPPRESSION_FUNCTION}({user}), false)"


def _has_suppression(con: duckdb.DuckDBPyConnection) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM duckdb_functions() "
            f"WHERE function_name = {lit(SUPPRESSION_FUNCTION)}"
        ).fetchone()[0]
    )


def _repeats_sql() -> str:
    """``_ingest_repeats``: the ``ord`` of every judged line that is not new.

    Its event already in the raw table, its dead letter already recorded, or an earlier line of
    the chunk (by ``ord``) with the same key. Usually a handful of rows, so the outcome of a line
    is one anti-join away and the judged text is never copied a second time. It reads the raw
    tables, so it runs inside the landing transaction.
    """
    existing = "\n            UNION ALL\n".join(
        f"""            SELECT '{t}' AS event_type, event_id FROM {raw_table(t)}
            WHERE event_id IN (SELECT event_id FROM _ingest_judged
                               WHERE event_type = '{t}' AND reason IS NULL)"""
        for t in EVENT_TYPES
    )
    key = "hash(reason IS NULL, event_type, coalesce(dead_letter_id, event_id))"
    return f"""
        CREATE OR REPLACE TEMP TABLE _ingest_repeats AS
        WITH collide AS (
            -- keys (hashed) seen more than once in the chunk: few; confirmed exactly below
            SELECT {key} AS h FROM _ingest_judged GROUP BY h HAVING count(*) > 1
        ), repeated AS (
            SELECT ord, row_number() OVER (
                       PARTITION BY reason IS NULL, event_type,
                                    coalesce(dead_letter_id, event_id)
                       ORDER BY ord) AS nth
            FROM _ingest_judged
            WHERE {key} IN (SELECT h FROM collide)
        ), existing AS (
{existing}
        )
        SELECT ord FROM repeated WHERE nth > 1
        UNION
        SELECT j.ord FROM _ingest_judged j
        SEMI JOIN existing e ON e.event_type = j.event_type AND e.event_id = j.event_id
        WHERE j.reason IS NULL
        UNION
        SELECT ord FROM _ingest_judged
        WHERE dead_letter_id IN (
            SELECT dead_letter_id FROM {RAW_SCHEMA}.dead_letter_events
            WHERE dead_letter_id IN (SELECT dead_letter_id FROM _ingest_judged
                                     WHERE dead_letter_id IS NOT NULL))
        """


def _counts_sql() -> str:
    types = ", ".join(f"'{t}'" for t in EVENT_TYPES)
    return f"""
    SELECT coalesce(j.event_type, CASE WHEN j.stream IN ({types}) THEN j.stream END, '{OTHER}')
               AS bucket,
           CASE WHEN r.ord IS NOT NULL THEN 'duplicates'
                WHEN j.suppressed THEN 'suppressed'
                WHEN j.reason IS NOT NULL THEN 'dead_letters'
                ELSE 'landed' END AS outcome,
           count(*)
    FROM _ingest_judged j LEFT JOIN _ingest_repeats r USING (ord)
    GROUP BY ALL
    """


def _insert_sql(tag: str) -> list[str]:
    """The landing INSERTs: one per event type, then the new dead letters."""
    events = [
        f"""
        INSERT INTO {raw_table(t)}
            (event_id, event_time, payload, source, source_ref, batch_id, ingested_at)
        SELECT event_id, event_time, payload, {tag}
        FROM _ingest_judged j ANTI JOIN _ingest_repeats r USING (ord)
        WHERE j.reason IS NULL AND NOT j.suppressed AND j.event_type = '{t}'
        """
        for t in EVENT_TYPES
    ]
    dead_letters = f"""
        INSERT INTO {RAW_SCHEMA}.dead_letter_events
            (dead_letter_id, raw_text, reason, detail, event_type, source, source_ref,
             batch_id, ingested_at)
        SELECT dead_letter_id, coalesce(payload::VARCHAR, raw_text, ''), reason, detail,
               coalesce(declared_type, stream), {tag}
        FROM _ingest_judged j ANTI JOIN _ingest_repeats r USING (ord)
        WHERE j.reason IS NOT NULL AND NOT j.suppressed
        """
    return [*events, dead_letters]


def _as_counts(rows: list[tuple[str, str, int]]) -> dict[str, dict[str, int]]:
    counts = empty_counts()
    for bucket, outcome, n in rows:
        mine = counts.setdefault(bucket, {"read": 0, **dict.fromkeys(OUTCOMES, 0)})
        mine[outcome] += n
        mine["read"] += n
    return counts


def rollback_quietly(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back after a failure without hiding it.

    A failed COMMIT (a full disk) has already ended the transaction, and a fatal error invalidates
    the connection: a second error from ROLLBACK would replace the one that says what happened.
    """
    with contextlib.suppress(duckdb.Error):
        con.execute("ROLLBACK")


@contextmanager
def unordered(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Let DuckDB write without keeping the row order, then restore the default.

    What landing writes carries its order where it matters (``ord``), and row order in a raw
    table means nothing: without it DuckDB's threads each append their own rows (no ordered
    merge of their results, less held in memory).
    """
    con.execute("SET preserve_insertion_order = false")
    try:
        yield
    finally:
        with contextlib.suppress(duckdb.Error):  # an invalidated connection: the error says why
            con.execute("SET preserve_insertion_order = true")


def _land_judged(
    con: duckdb.DuckDBPyConnection,
    tag: str,
    bookkeeping: Sequence[str],
    in_transaction: InTransaction | None,
) -> dict[str, dict[str, int]]:
    """The landing transaction over ``_ingest_judged``; returns the chunk's per-type counts."""
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(_repeats_sql())
        # Row order inside a raw table means nothing either (land_chunk turned the order off).
        skipped = SKIPPED_CODECS[zstd_strings(con)]
        con.execute(f"SET disabled_compression_methods = {lit(skipped)}")
        for sql in _insert_sql(tag):
            con.execute(sql)
        for sql in bookkeeping:
            con.execute(sql)
        counts = _as_counts(con.execute(_counts_sql()).fetchall())
        if in_transaction is not None:
            in_transaction(con, counts)
        con.execute("COMMIT")
    except BaseException:
        rollback_quietly(con)
        raise
    finally:
        with contextlib.suppress(duckdb.Error):  # an invalidated connection: the error says why
            con.execute("RESET disabled_compression_methods")
    return counts


def land_chunk(
    con: duckdb.DuckDBPyConnection,
    input_relation: str,
    source: str,
    batch_id: str,
    bookkeeping: Sequence[str] = (),
    ingested_at: datetime | None = None,
    in_transaction: InTransaction | None = None,
) -> dict[str, dict[str, int]]:
    """Land one chunk in one transaction; returns per-type counts.

    ``bookkeeping`` are statements run inside the same transaction after the rows (the reader's
    record of what it consumed); ``in_transaction(con, counts)`` runs last, before the COMMIT,
    with the chunk's counts (the batch's ledger row). Any failure rolls everything back: no
    half-written table, and neither the bookkeeping nor the ledger moves.
    """
    stamp = lit(ingested_at or utc_now())
    tag = f"{lit(source)}, source_ref, {lit(batch_id)}, {stamp}"
    try:
        with unordered(con):
            con.execute(_judge_sql(input_relation, source, _has_suppression(con)))
            return _land_judged(con, tag, bookkeeping, in_transaction)
    finally:
        for name in ("_ingest_judged", "_ingest_repeats"):
            with contextlib.suppress(duckdb.Error):  # an invalidated connection: see the error
                con.execute(f"DROP TABLE IF EXISTS {name}")


def summarize(
    batch_id: str, source: str, counts: dict[str, dict[str, int]], seconds: float, **extra: Any
) -> dict[str, Any]:
    """The run's summary: totals first, then per type; totals reconcile by construction."""
    per_type = {k: v for k, v in counts.items() if k in EVENT_TYPES or v["read"]}
    totals = {key: sum(v[key] for v in per_type.values()) for key in ("read", *OUTCOMES)}
    summary: dict[str, Any] = {"batch_id": batch_id, "source": source, **totals}
    summary["nothing_new"] = totals["landed"] == 0
    summary.update(extra)
    summary["per_type"] = per_type
    summary["seconds"] = round(seconds, 3)
    return summary
