"""Application reader: ``app.users`` and ``app.bookings``, incrementally, read-only.

Extraction is incremental on ``(updated_at, key)``: each table is read in key-set pages ordered by
both, from the newest ``updated_at`` already landed minus :data:`LOOKBACK`, so a row updated late
(its ``updated_at`` a little before what was last seen) is still caught, and rows sharing one
``updated_at`` are never skipped at a page boundary. Every version seen lands once in
``raw.app_<type>`` (a change-record history keyed by ``(key, updated_at)``): a re-read is a
duplicate, never a second row. A row that breaks the contract (no key, an unknown status or tier,
a negative amount, ...) is dead-lettered with its reason in ``raw.dead_letter_events``. A row of
a forgotten user (on the suppression list, ``searchflow forget``) is neither landed nor
dead-lettered: it is counted as ``suppressed``, so the user does not come back from the source.

The whole extraction is one read-only, repeatable-read transaction on the source
(:func:`searchflow.appdb.read_only`): one consistent picture, and nothing can be written.
``full`` re-extracts from the beginning; ``since`` / ``until`` backfill a range of ``updated_at``.
After the chunks, the reader compares the source with the raw layer's newest versions and
reports ``source_accuracy`` for the ingestion gate.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa

from searchflow import appdb
from searchflow.appdb import RECORDS, STATUSES, TIERS, RecordTable
from searchflow.config import Settings
from searchflow.ingest.chunks import INPUT, Chunk
from searchflow.ingest.land import (
    OUTCOMES,
    SUPPRESSION_FUNCTION,
    lit,
    rollback_quietly,
    unordered,
    utc_now,
)

LOOKBACK = timedelta(days=1)
SOURCE = "app"
META = """,
    source      VARCHAR   NOT NULL,
    source_ref  VARCHAR,              -- key@updated_at in the source
    batch_id    VARCHAR   NOT NULL,
    ingested_at TIMESTAMP NOT NULL"""
DUCK_TYPES = {"string": "VARCHAR", "bool": "BOOLEAN", "timestamp[us]": "TIMESTAMP"}


def _duck_type(kind: pa.DataType) -> str:
    if pa.types.is_decimal(kind):
        return f"DECIMAL({kind.precision}, {kind.scale})"
    return DUCK_TYPES[str(kind)]


def raw_ddl(spec: RecordTable) -> str:
    columns = ",\n    ".join(f"{n} {_duck_type(t)}" for n, t in spec.columns.items())
    return f"CREATE TABLE IF NOT EXISTS {spec.raw_table} (\n    {columns}{META}\n)"


def ensure_app_schema(con: duckdb.DuckDBPyConnection) -> None:
    """``raw.app_users`` and ``raw.app_bookings`` (idempotent)."""
    con.execute("CREATE SCHEMA IF NOT EXISTS raw")
    for spec in RECORDS.values():
        con.execute(raw_ddl(spec))


# --- validation --------------------------------------------------------------------------------

_RULES: dict[str, tuple[tuple[str, str], ...]] = {
    "users": (
        ("user_id IS NULL OR user_id = ''", "no user_id"),
        ("updated_at IS NULL OR created_at IS NULL", "no created_at/updated_at"),
        ("email IS NULL OR email NOT LIKE '%_@_%'", "email missing or not an address"),
        (f"loyalty_tier IS NULL OR loyalty_tier NOT IN {tuple(TIERS)}", "unknown loyalty_tier"),
        ("marketing_consent IS NULL", "marketing_consent unknown"),
        ("updated_at < created_at", "updated_at before created_at"),
    ),
    "bookings": (
        ("booking_id IS NULL OR booking_id = ''", "no booking_id"),
        ("updated_at IS NULL OR created_at IS NULL", "no created_at/updated_at"),
        (f"status IS NULL OR status NOT IN {tuple(STATUSES)}", "unknown status"),
        ("amount IS NULL OR amount < 0", "amount missing or negative"),
        ("currency IS NULL OR length(currency) <> 3", "currency not a 3-letter code"),
        ("updated_at < created_at", "updated_at before created_at"),
    ),
}


def _reason_sql(record_type: str) -> str:
    cases = " ".join(f"WHEN {cond} THEN '{why}'" for cond, why in _RULES[record_type])
    return f"CASE {cases} END"


def _suppressed_sql(con: duckdb.DuckDBPyConnection, alias: str = "j") -> str:
    """TRUE for a forgotten user's row (``user_id`` on the suppression list; see
    :func:`searchflow.pii.register_suppression`), ``false`` when nobody was forgotten."""
    registered = con.execute(
        f"SELECT count(*) FROM duckdb_functions() WHERE function_name = {lit(SUPPRESSION_FUNCTION)}"
    ).fetchone()[0]
    if not registered:
        return "false"
    return f"coalesce({SUPPRESSION_FUNCTION}({alias}.user_id), false)"


def _spec_of(con: duckdb.DuckDBPyConnection, relation: str) -> RecordTable:
    names = {row[0] for row in con.execute(f"DESCRIBE {relation}").fetchall()}
    return RECORDS["bookings" if "booking_id" in names else "users"]


def outcome_table(spec: RecordTable) -> str:
    """The temp table :func:`judge_records` fills for one record type."""
    return f"_app_outcome_{spec.record_type}"


def drop_outcomes(con: duckdb.DuckDBPyConnection, specs: Sequence[RecordTable]) -> None:
    """Drop the judged temp tables of ``specs`` (cleanup: a failure to drop is not the story)."""
    for spec in specs:
        with contextlib.suppress(duckdb.Error):
            con.execute(f"DROP TABLE IF EXISTS {outcome_table(spec)}")


def judge_records(
    con: duckdb.DuckDBPyConnection,
    spec: RecordTable,
    relation: str,
    source: str,
    *,
    lines: bool = False,
) -> str:
    """Classify one record type's rows into a temp table (before the landing transaction).

    ``relation`` has the spec's columns. With ``lines`` (records read from text, the JSONL
    sink's ``users/`` and ``bookings/`` folders) it also has ``ord``, ``source_ref``,
    ``raw_text`` and ``problem`` (why a line could not be read as a record at all): the
    dead letter keeps the line as it was, and points at its file and line. Otherwise (rows
    read from the application database) the reference is ``key@updated_at`` and the text is
    the row as JSON.

    Each row's ``outcome``: ``suppressed`` (a forgotten user's, checked first so that not even a
    dead letter keeps it), ``dead_letters`` (breaks the contract; ``duplicates`` when that dead
    letter is already recorded or repeated in the chunk), ``duplicates`` (a ``(key,
    updated_at)`` version already landed or earlier in the chunk), else ``landed``. Returns the
    table's name (:func:`outcome_table`).
    """
    columns = ", ".join(spec.columns)
    key = spec.key
    rules = _reason_sql(spec.record_type)
    if lines:
        reason = f"CASE WHEN problem IS NOT NULL THEN problem ELSE {rules} END"
        kind = "CASE WHEN problem IS NOT NULL THEN 'unparsable' ELSE 'invalid_record' END"
        ref, text, order = "source_ref", "raw_text", "ORDER BY ord"
        extra = ", ord"
    else:
        reason, kind = rules, "'invalid_record'"
        ref = f"coalesce({key}, '') || '@' || coalesce(updated_at::VARCHAR, '')"
        # the row as JSON is a dead letter's text only: not built for the rows that land
        text = f"CASE WHEN {rules} IS NOT NULL THEN to_json(struct_pack({columns}))::VARCHAR END"
        order = ""
        extra = ""
    judged = f"_app_judged_{spec.record_type}"
    table = outcome_table(spec)
    # The dead letter's id is hashed only for rows that break a rule; a version is told by its
    # key and time themselves (no text built per row).
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {judged} AS
        SELECT *,
               row_number() OVER (
                   PARTITION BY reason IS NULL,
                                CASE WHEN reason IS NULL THEN {key} END,
                                CASE WHEN reason IS NULL THEN updated_at END,
                                dead_letter_id
                   {order}) AS nth
        FROM (SELECT *, CASE WHEN reason IS NOT NULL
                             THEN md5({lit(source)} || source_ref || raw_text) END
                            AS dead_letter_id
              FROM (SELECT {columns}, {reason} AS reason, {kind} AS dead_reason,
                           {ref} AS source_ref, {text} AS raw_text{extra}
                    FROM {relation}))
        """
    )
    try:
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE {table} AS
            SELECT j.*,
                   CASE WHEN {_suppressed_sql(con)} THEN 'suppressed'
                        WHEN j.nth > 1 THEN 'duplicates'
                        WHEN j.reason IS NOT NULL THEN
                            CASE WHEN j.dead_letter_id IN
                                 (SELECT dead_letter_id FROM raw.dead_letter_events)
                                 THEN 'duplicates' ELSE 'dead_letters' END
                        WHEN EXISTS (SELECT 1 FROM {spec.raw_table} r
                                     WHERE r.{key} = j.{key} AND r.updated_at = j.updated_at)
                            THEN 'duplicates'
                        ELSE 'landed' END AS outcome
            FROM {judged} j
            """
        )
    finally:
        with contextlib.suppress(duckdb.Error):
            con.execute(f"DROP TABLE IF EXISTS {judged}")
    return table


def land_judged(
    con: duckdb.DuckDBPyConnection,
    specs: Sequence[RecordTable],
    source: str,
    batch_id: str,
    bookkeeping: Sequence[str] = (),
    ingested_at: datetime | None = None,
    in_transaction: Any = None,
) -> dict[str, dict[str, int]]:
    """Write what :func:`judge_records` decided for ``specs``, in one transaction with the
    reader's ``bookkeeping`` and ``in_transaction`` (the batch's ledger row); drops the temp
    tables. Counts per ``app_<type>``: read = landed + duplicates + dead_letters + suppressed.
    """
    stamp = lit(ingested_at or utc_now())
    counts: dict[str, dict[str, int]] = {}
    con.execute("BEGIN TRANSACTION")
    try:
        for spec in specs:
            table, bucket = outcome_table(spec), f"app_{spec.record_type}"
            con.execute(
                f"INSERT INTO {spec.raw_table} SELECT {', '.join(spec.columns)}, {lit(source)}, "
                f"source_ref, {lit(batch_id)}, {stamp} FROM {table} WHERE outcome = 'landed'"
            )
            con.execute(
                "INSERT INTO raw.dead_letter_events (dead_letter_id, raw_text, reason, detail, "
                "event_type, source, source_ref, batch_id, ingested_at) "
                f"SELECT dead_letter_id, raw_text, dead_reason, reason, {lit(bucket)}, "
                f"{lit(source)}, source_ref, {lit(batch_id)}, {stamp} "
                f"FROM {table} WHERE outcome = 'dead_letters'"
            )
            mine = counts.setdefault(bucket, {"read": 0, **dict.fromkeys(OUTCOMES, 0)})
            for outcome, n in con.execute(
                f"SELECT outcome, count(*) FROM {table} GROUP BY outcome"
            ).fetchall():
                mine[outcome] += n
                mine["read"] += n
        for sql in bookkeeping:
            con.execute(sql)
        if in_transaction is not None:
            in_transaction(con, counts)
        con.execute("COMMIT")
    except BaseException:
        rollback_quietly(con)
        raise
    finally:
        drop_outcomes(con, specs)
    return counts


def land_records(
    con: duckdb.DuckDBPyConnection,
    input_relation: str,
    source: str,
    batch_id: str,
    bookkeeping: Sequence[str] = (),
    ingested_at: datetime | None = None,
    in_transaction: Any = None,
) -> dict[str, dict[str, int]]:
    """Land one chunk of source rows (one record type) in one transaction (the chunk loop's
    ``land`` for the app source): :func:`judge_records`, then :func:`land_judged`."""
    spec = _spec_of(con, input_relation)
    with unordered(con):
        try:
            judge_records(con, spec, input_relation, source)
        except BaseException:
            drop_outcomes(con, [spec])
            raise
        return land_judged(con, [spec], source, batch_id, bookkeeping, ingested_at, in_transaction)


# --- the reader --------------------------------------------------------------------------------


def watermark(con: duckdb.DuckDBPyConnection, spec: RecordTable) -> datetime | None:
    """The newest ``updated_at`` landed (any batch) minus :data:`LOOKBACK`; None when empty."""
    newest = con.execute(f"SELECT max(updated_at) FROM {spec.raw_table}").fetchone()[0]
    return None if newest is None else newest - LOOKBACK


def _pages(
    conn: Any, spec: RecordTable, lower: datetime | None, until: datetime | None, size: int
) -> Iterator[pa.Table]:
    """The table's rows from ``lower`` (inclusive) up to ``until`` (exclusive), in key-set pages
    on ``(updated_at, key)``."""
    after: tuple[datetime, str] | None = None
    while True:
        conditions, params = [], []
        if lower is not None:
            conditions.append("updated_at >= %s::timestamp AT TIME ZONE 'UTC'")
            params.append(lower)
        if until is not None:
            conditions.append("updated_at < %s::timestamp AT TIME ZONE 'UTC'")
            params.append(until)
        if after is not None:
            conditions.append(f"(updated_at, {spec.key}) > (%s::timestamp AT TIME ZONE 'UTC', %s)")
            params.extend(after)
        page = appdb.fetch(
            conn, spec, " AND ".join(conditions) or "true", tuple(params), limit=size
        )
        if page.num_rows:
            yield page
        if page.num_rows < size:
            return
        last = page.slice(page.num_rows - 1).to_pylist()[0]
        after = (last["updated_at"], last[spec.key])


@contextmanager
def reader(
    settings: Settings,
    *,
    chunk_size: int,
    full: bool = False,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Iterator[Any]:
    """The app source's ``chunks(con, stats)`` for the chunk loop, inside one read-only
    transaction on the source."""
    with appdb.read_only(settings) as conn:
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)

        def chunks(con: duckdb.DuckDBPyConnection, stats: dict[str, Any]) -> Iterator[Chunk]:
            ensure_app_schema(con)
            appdb.begin_read_only(conn)
            exists = appdb.tables_exist(conn)
            missing = [RECORDS[t].table for t, ok in exists.items() if not ok]
            if missing:
                stats["missing_tables"] = missing
            stats["extracted_from"] = {}
            for record_type, spec in RECORDS.items():
                if not exists[record_type]:
                    continue
                lower = since if (full or since) else watermark(con, spec)
                stats["extracted_from"][record_type] = None if lower is None else str(lower)
                for page in _pages(conn, spec, lower, until, chunk_size):
                    con.register(INPUT, page)
                    try:
                        yield Chunk(size_bytes=page.nbytes)
                    finally:
                        con.unregister(INPUT)
            stats["source_accuracy"], stats["source_check"] = raw_accuracy(con, conn, exists)

        yield chunks


def raw_accuracy(
    con: duckdb.DuckDBPyConnection, conn: Any, exists: dict[str, bool]
) -> tuple[float, dict[str, Any]]:
    """The source against the raw layer's newest version of each key (rows of discarded batches
    left out): the figure the ingestion gate holds an ``app`` batch to."""
    results = {}
    for record_type, spec in RECORDS.items():
        if not exists[record_type]:
            continue
        source = appdb.fetch(conn, spec, order=spec.key)
        con.register("_app_source", source)
        try:
            warehouse = appdb.latest_versions(
                spec,
                spec.raw_table,
                "batch_id NOT IN (SELECT batch_id FROM ops.batches WHERE state = 'discarded')",
            )
            kept = f"(SELECT * FROM _app_source AS s WHERE NOT {_suppressed_sql(con, 's')})"
            found = appdb.compare(con, spec, kept, warehouse)
        finally:
            con.unregister("_app_source")
        results[record_type] = {
            "source_rows": found["source_rows"],
            "matching_rows": found["matching_rows"],
            "mismatching": len(found["mismatching_keys"]),
        }
    return appdb.accuracy(results), results
