"""The application's change records read from text: the JSONL sink's ``users/`` and ``bookings/``.

The generator's JSONL sink writes, beside the events, one change record per version of a user
profile or a booking (``<events>/users/<batch>.jsonl``, ``<events>/bookings/<batch>.jsonl``), so
that a pipeline fed by files knows consent and booking status as one fed by the application
database does. The JSONL reader stages these lines like event lines (same files ledger, same
line numbers); :func:`land_record_lines` turns them into typed rows with DuckDB's JSON functions
and lands them with the app extraction's own rules (:func:`searchflow.ingest.app.judge_records`
and :func:`~searchflow.ingest.app.land_judged`): ``raw.app_users`` / ``raw.app_bookings``, a
version already landed is a duplicate, a contract violation or a line that is no JSON object is
dead-lettered with its reason, a forgotten user's record is suppressed.

Lines rather than ``read_json``: a file read as JSON fails as a whole on one broken line (or, with
``ignore_errors``, drops it silently); as text, each line is judged on its own and a broken one
is a dead letter that names its file and line.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa

from searchflow.appdb import RECORDS, RecordTable
from searchflow.contract import RECORD_TYPES
from searchflow.ingest.app import (
    drop_outcomes,
    ensure_app_schema,
    judge_records,
    land_judged,
    outcome_table,
)
from searchflow.ingest.land import unordered

TYPED = "_ingest_records"  # one record type's lines, typed


def _field_sql(index: int, kind: pa.DataType) -> str:
    """Column ``index`` (from 1) of the line's texts ``v``, its JSON kind being ``k[index + 1]``
    (``k[1]`` is the root's): NULL when absent or of the wrong JSON type (the contract's rules
    then name what is missing)."""
    text, json_type = f"v[{index}]", f"k[{index + 1}]"
    if pa.types.is_boolean(kind):
        return f"CASE WHEN {json_type} = 'BOOLEAN' THEN {text}::BOOLEAN END"
    if pa.types.is_timestamp(kind):
        return f"CASE WHEN {json_type} = 'VARCHAR' THEN TRY_CAST({text} AS TIMESTAMP) END"
    if pa.types.is_decimal(kind):
        numeric = "('BIGINT', 'UBIGINT', 'DOUBLE')"
        cast = f"TRY_CAST({text} AS DECIMAL({kind.precision}, {kind.scale}))"
        return f"CASE WHEN {json_type} IN {numeric} THEN {cast} END"
    return f"CASE WHEN {json_type} = 'VARCHAR' THEN {text} END"


def typed_sql(spec: RecordTable, input_relation: str) -> str:
    """The lines of ``spec``'s stream as rows of its columns, plus ``ord``, ``source_ref``,
    ``raw_text`` and ``problem`` (set when the line is not a JSON object).

    Each line is parsed three times and no more, whatever the number of columns (parsing is
    most of the cost): the cast that tells valid JSON, one ``json_type`` over the list of the
    root and every column's path, one ``json_extract_string`` over the columns' paths.
    """
    paths = ", ".join(f"'$.{n}'" for n in spec.columns)
    fields = ",\n               ".join(
        f"{_field_sql(i + 1, k)} AS {n}" for i, (n, k) in enumerate(spec.columns.items())
    )
    return f"""
        SELECT {fields},
               ord, source_ref, raw_text,
               CASE WHEN problem IS NOT NULL THEN problem
                    WHEN j IS NULL OR k[1] <> 'OBJECT' THEN 'not a JSON object'
               END AS problem
        FROM (SELECT *, json_type(j, ['$', {paths}]) AS k,
                     json_extract_string(j, [{paths}]) AS v
              FROM (SELECT *, CASE WHEN problem IS NULL THEN TRY_CAST(raw_text AS JSON) END AS j
                    FROM {input_relation} WHERE stream = '{spec.record_type}'))
        """


def land_record_lines(
    con: duckdb.DuckDBPyConnection,
    input_relation: str,
    source: str,
    batch_id: str,
    bookkeeping: Sequence[str] = (),
    ingested_at: datetime | None = None,
    in_transaction: Any = None,
) -> dict[str, dict[str, int]]:
    """Land one chunk of change-record lines (``stream`` = ``users`` or ``bookings``), both
    types in one transaction with the reader's bookkeeping and the batch's ledger row.

    ``_ingest_judged`` (``source_ref``, ``reason``) is left for the bookkeeping, which does not
    count a half-written last line as consumed: a line that is no JSON object has reason
    ``unparsable`` there, as an event line would.
    """
    ensure_app_schema(con)
    specs = [RECORDS[t] for t in RECORD_TYPES]
    with unordered(con):
        return _land_record_lines(
            con, specs, input_relation, source, batch_id, bookkeeping, ingested_at, in_transaction
        )


def _land_record_lines(
    con: duckdb.DuckDBPyConnection,
    specs: Sequence[RecordTable],
    input_relation: str,
    source: str,
    batch_id: str,
    bookkeeping: Sequence[str],
    ingested_at: datetime | None,
    in_transaction: Any,
) -> dict[str, dict[str, int]]:
    try:
        for spec in specs:
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {TYPED} AS {typed_sql(spec, input_relation)}"
            )
            judge_records(con, spec, TYPED, source, lines=True)
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _ingest_judged AS "
            + " UNION ALL ".join(
                f"SELECT source_ref, CASE WHEN dead_reason = 'unparsable' THEN 'unparsable' "
                f"ELSE reason END AS reason FROM {outcome_table(s)}"
                for s in specs
            )
        )
    except BaseException:
        drop_outcomes(con, specs)
        raise
    finally:
        with contextlib.suppress(duckdb.Error):
            con.execute(f"DROP TABLE IF EXISTS {TYPED}")
    try:
        return land_judged(con, specs, source, batch_id, bookkeeping, ingested_at, in_transaction)
    finally:
        with contextlib.suppress(duckdb.Error):
            con.execute("DROP TABLE IF EXISTS _ingest_judged")
