"""The Postgres side of the syncs: diff against the destination's real values, write only changes.

Plan: the destination's key and compared columns are read with one ``COPY (SELECT ...) TO STDOUT``
(Postgres' fastest way out, compact CSV), parsed by Arrow into the mart's own column
types, and compared with the mart in an in-memory DuckDB (a hash join, ``IS DISTINCT FROM`` per
column). Only then is anything sent to Postgres:

- new keys are COPYed straight into the destination table (no staging, no second statement);
- changed rows (and, with ``--full-resync``, every existing row) go through a temporary staging
  table and one ``INSERT ... ON CONFLICT DO UPDATE`` that re-checks ``IS DISTINCT FROM``;
- keys that left the mart are COPYed into a temporary table and deleted in one statement.

So an unchanged re-sync moves the destination's columns out once and writes nothing, and a first load
is one COPY. No hash is stored anywhere: every run compares the values the destination holds at that
moment, so a row edited behind the sync's back (any compared column) is always found and repaired.

Everything happens in the caller's transaction: the writes, the run record and the rejects. Commit
makes the run visible at once; rollback (a failure, or a dry run) leaves the destination exactly as
it was. ``as_of`` (the mart's build time) is stored but not compared: new events move it for every
user, and rewriting every row for that would make each sync a full rewrite. ``sync_run_id`` (the
run that last wrote a row, for audit) is set on every row written and never compared either, so an
unchanged row keeps the id of the run that wrote it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from searchflow.sync.postgres_ddl import SCHEMA
from searchflow.sync.report import SyncReport
from searchflow.sync.source import MartBatch, MartSpec

SAMPLE = 5  # sample keys shown per kind of drift
RUN_COLUMN = "sync_run_id"  # the run that last wrote a destination row (audit, not compared)


@dataclass(frozen=True)
class PgTarget:
    """A Postgres destination table of a sync and how rows are compared."""

    table: str  # crm.<name>
    key: str
    columns: tuple[str, ...]  # copied from the mart
    compared: tuple[str, ...]  # a difference in one of these is a change

    @property
    def stage(self) -> str:
        return "_sf_stage_" + self.table.split(".")[-1]


@dataclass
class PgPlan:
    """What a sync will write: new rows, rows to upsert (changed), keys to delete (Arrow tables)."""

    new: pa.Table
    changed: pa.Table
    gone: pa.Table  # one column: the key
    existing: int  # destination rows before the run


def target_for(spec: MartSpec, table: str) -> PgTarget:
    compared = tuple(c for c in spec.columns if c not in (spec.key, "as_of"))
    return PgTarget(f"{SCHEMA}.{table}", spec.key, spec.columns, compared)


COPY_BATCH = 32_768  # rows Arrow encodes as CSV per chunk handed to COPY
COPY_READ = 1 << 20  # bytes psycopg2 asks for (and sends) at a time


class _CsvStream(io.RawIOBase):
    """An Arrow table as CSV, encoded a batch at a time as COPY reads it.

    Postgres parses and inserts one chunk while Arrow encodes the next, instead of waiting for
    the whole table to be encoded first.
    """

    def __init__(self, table: pa.Table) -> None:
        self._batches = iter(table.to_batches(COPY_BATCH))
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            batch = next(self._batches, None)
            if batch is None:
                return 0
            sink = io.BytesIO()
            pacsv.write_csv(batch, sink, pacsv.WriteOptions(include_header=False))
            self._pending = sink.getbuffer()
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def copy_arrow(cur, table: pa.Table, target: str, columns: tuple[str, ...]) -> None:
    """COPY an Arrow table into ``target`` as CSV (NULL unquoted empty, strings always quoted)."""
    cur.copy_expert(
        f"COPY {target} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)",
        _CsvStream(table),
        size=COPY_READ,
    )


def snapshot(cur, target: PgTarget, columns: tuple[str, ...], schema: pa.Schema) -> pa.Table:
    """The destination's ``columns`` now, as Arrow in the mart's types (one COPY TO, no hashes).

    timestamptz columns leave Postgres as UTC wall time, the form the marts' naive UTC timestamps
    have; numbers and text keep Postgres' canonical text form, which Arrow parses exactly.
    """
    exprs = []
    types: dict[str, pa.DataType] = {}
    for col in columns:
        kind = schema.field(col).type
        if pa.types.is_timestamp(kind):
            exprs.append(f"({col} AT TIME ZONE 'UTC') AS {col}")
            kind = pa.timestamp(kind.unit)
        else:
            exprs.append(col)
        types[col] = kind
    buf = io.BytesIO()
    cur.copy_expert(
        f"COPY (SELECT {', '.join(exprs)} FROM {target.table}) TO STDOUT WITH (FORMAT csv)", buf
    )
    if not buf.tell():
        return pa.schema([(c, types[c]) for c in columns]).empty_table()
    buf.seek(0)
    return pacsv.read_csv(
        buf,
        read_options=pacsv.ReadOptions(column_names=list(columns), block_size=8 << 20),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types=types, strings_can_be_null=True, quoted_strings_can_be_null=False
        ),
    )


def _differs(target: PgTarget, left: str, right: str) -> str:
    return " OR ".join(f"{left}.{c} IS DISTINCT FROM {right}.{c}" for c in target.compared)


def _diff_db(batch: MartBatch, dest: pa.Table, key: str) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with ``m`` (the mart's good rows), ``d`` (destination), ``h`` (held)."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("m", batch.good)
    con.register("d", dest)
    con.register("h", batch.rejects.select([key]).drop_null())
    return con


def plan(
    cur, target: PgTarget, batch: MartBatch, full_resync: bool, mirror: bool, compare: bool = True
) -> PgPlan:
    """Compare the mart with the destination's current values; nothing is written here.

    ``compare=False`` (the insert-only queue) reads only the destination's keys. Held keys, the
    non-NULL keys of rejected rows (duplicates), are never deleted: the mart says nothing reliable
    about them.
    """
    cols = (target.key, *target.compared) if compare else (target.key,)
    dest = snapshot(cur, target, cols, batch.good.schema)
    key = target.key
    changed_if = "FALSE"
    if compare:
        changed_if = "TRUE" if full_resync else _differs(target, "m", "d")
    gone_if = f"d.{key} NOT IN (SELECT {key} FROM h)" if mirror else "FALSE"
    # One full outer join classifies every key; only rows with something to do come back.
    con = _diff_db(batch, dest, key)
    try:
        todo = con.execute(
            f"""
            SELECT op, * EXCLUDE (op) FROM (
                SELECT CASE WHEN d.{key} IS NULL THEN 'new'
                            WHEN m.{key} IS NULL THEN CASE WHEN {gone_if} THEN 'gone' END
                            WHEN {changed_if} THEN 'changed'
                       END AS op,
                       m.*, d.{key} AS _dest_key
                FROM m FULL OUTER JOIN d ON d.{key} = m.{key}
            ) WHERE op IS NOT NULL
            """
        ).to_arrow_table()
    finally:
        con.close()
    rows = todo.drop_columns(["op", "_dest_key"])
    new = rows.filter(pc.equal(todo["op"], "new"))
    changed = rows.filter(pc.equal(todo["op"], "changed"))
    gone = todo.filter(pc.equal(todo["op"], "gone")).select(["_dest_key"]).rename_columns([key])
    return PgPlan(new=new, changed=changed, gone=gone, existing=dest.num_rows)


def in_key_order(rows: pa.Table, target: PgTarget) -> pa.Table:
    """The target's columns, rows sorted by key.

    Postgres' B-tree appends keys that arrive in order on its rightmost page without a descent,
    so a first load in key order is cheaper than one in the mart's order (docs/reverse-etl.md,
    "Speed", has the measurement). Arrow sorts by bytes, which is the order of C and C.UTF-8 collations;
    under others most keys still arrive in order.
    """
    return rows.select(list(target.columns)).sort_by(target.key)


def with_run_id(rows: pa.Table, target: PgTarget, run_id: str) -> pa.Table:
    """The target's columns in key order plus the writing run's id (the COPY's shape)."""
    ordered = in_key_order(rows, target)
    return ordered.append_column(RUN_COLUMN, pa.array([run_id] * ordered.num_rows, pa.string()))


def insert_new(cur, target: PgTarget, rows: pa.Table, run_id: str) -> tuple[int, pa.Table]:
    """COPY new rows straight into the destination; (inserted, rows left for the upsert path).

    Inside a savepoint: if a row with one of these keys appeared since the plan (someone else wrote
    it), the COPY is undone and the rows go through the staged ``ON CONFLICT`` path instead.
    """
    import psycopg2

    if not rows.num_rows:
        return 0, rows
    cur.execute("SAVEPOINT sf_copy_new")
    try:
        copy_arrow(
            cur, with_run_id(rows, target, run_id), target.table, (*target.columns, RUN_COLUMN)
        )
    except psycopg2.errors.UniqueViolation:
        cur.execute("ROLLBACK TO SAVEPOINT sf_copy_new")
        return 0, rows
    cur.execute("RELEASE SAVEPOINT sf_copy_new")
    return rows.num_rows, rows.schema.empty_table()


def stage(cur, target: PgTarget, rows: pa.Table) -> None:
    """Load rows into a temp table shaped like the destination (dropped at commit)."""
    cols = ", ".join(target.columns)
    cur.execute(
        f"CREATE TEMP TABLE {target.stage} ON COMMIT DROP AS "
        f"SELECT {cols} FROM {target.table} WITH NO DATA"
    )
    copy_arrow(cur, in_key_order(rows, target), target.stage, target.columns)


def upsert(
    cur, target: PgTarget, rows: pa.Table, full_resync: bool, run_id: str
) -> tuple[int, int]:
    """Insert or update the staged rows in one statement; (inserted, updated).

    The ``IS DISTINCT FROM`` re-check keeps a row that already holds the mart's values untouched
    (it may have been repaired by someone else since the plan).
    """
    if not rows.num_rows:
        return 0, 0
    stage(cur, target, rows)
    cols = ", ".join(target.columns)
    s_cols = ", ".join(f"s.{c}" for c in target.columns)
    changed = "TRUE" if full_resync else f"t.{target.key} IS NULL OR ({_differs(target, 's', 't')})"
    sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in target.columns if c != target.key)
    cur.execute(
        f"""
        WITH up AS (
            INSERT INTO {target.table} AS d ({cols}, synced_at, {RUN_COLUMN})
            SELECT {s_cols}, now(), %s
            FROM {target.stage} s LEFT JOIN {target.table} t ON t.{target.key} = s.{target.key}
            WHERE {changed}
            ON CONFLICT ({target.key}) DO UPDATE SET {sets}, synced_at = EXCLUDED.synced_at,
                {RUN_COLUMN} = EXCLUDED.{RUN_COLUMN}
            RETURNING (xmax = 0) AS inserted
        )
        SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up
        """,
        (run_id,),
    )
    inserted, updated = cur.fetchone()
    return int(inserted), int(updated)


def insert_missing(cur, target: PgTarget, rows: pa.Table, run_id: str) -> int:
    """Insert-only fallback: staged rows whose key the destination has never had."""
    if not rows.num_rows:
        return 0
    stage(cur, target, rows)
    cols = ", ".join(target.columns)
    cur.execute(
        f"INSERT INTO {target.table} ({cols}, {RUN_COLUMN}) SELECT {cols}, %s "
        f"FROM {target.stage} ON CONFLICT ({target.key}) DO NOTHING",
        (run_id,),
    )
    return int(cur.rowcount)


def mirror_delete(cur, target: PgTarget, gone: pa.Table) -> int:
    """Delete the destination rows whose key left the mart, in one statement."""
    if not gone.num_rows:
        return 0
    key = target.key
    cur.execute(f"CREATE TEMP TABLE {target.stage}_gone ({key} text) ON COMMIT DROP")
    copy_arrow(cur, gone, f"{target.stage}_gone", (key,))
    cur.execute(f"DELETE FROM {target.table} t USING {target.stage}_gone g WHERE t.{key} = g.{key}")
    return int(cur.rowcount)


def diff(cur, target: PgTarget, batch: MartBatch) -> dict[str, object]:
    """Drift between the mart and the destination: missing, extra, different, with samples.

    The destination's real values are compared (no stored hash), like a sync does.
    """
    dest = snapshot(cur, target, (target.key, *target.compared), batch.good.schema)
    key = target.key
    queries = {
        "missing": f"SELECT m.{key} FROM m ANTI JOIN d ON d.{key} = m.{key}",
        "extra": f"SELECT d.{key} FROM d ANTI JOIN m ON m.{key} = d.{key}",
        "different": f"SELECT m.{key} FROM m JOIN d ON d.{key} = m.{key} "
        f"WHERE {_differs(target, 'm', 'd')}",
    }
    out: dict[str, object] = {}
    con = _diff_db(batch, dest, key)
    try:
        for kind, query in queries.items():
            count, sample = con.execute(
                f"SELECT count(*), list(k ORDER BY k)[1:{SAMPLE}] FROM ({query}) AS q(k)"
            ).fetchone()
            out[kind] = int(count)
            out[f"{kind}_sample"] = list(sample or [])
    finally:
        con.close()
    return out


def record_rejects(cur, report: SyncReport, spec: MartSpec, batch: MartBatch) -> None:
    """One ``crm.sync_rejects`` row per rejected mart row, with its reason and the row as JSON."""
    rejects = batch.rejects
    if not rejects.num_rows:
        return
    n = rejects.num_rows
    table = pa.Table.from_pydict(
        {
            "run_id": pa.array([report.run_id] * n),
            "sync": pa.array([report.sync] * n),
            "key": rejects[spec.key].cast(pa.string()),
            "reason": rejects["_reason"],
            "row_data": rejects["_row"],
        }
    )
    copy_arrow(cur, table, f"{SCHEMA}.sync_rejects", tuple(table.column_names))


def record_run(cur, report: SyncReport | dict) -> None:
    """The run's row in ``crm.sync_runs`` (same transaction as the writes it describes)."""
    row = report.to_dict() if isinstance(report, SyncReport) else report
    cur.execute(
        f"""
        INSERT INTO {SCHEMA}.sync_runs (run_id, sync, batch_id, started_at, finished_at, status,
            full_resync, read, inserted, updated, unchanged, deleted, failed, seconds, error,
            mart_version)
        VALUES (%(run_id)s, %(sync)s, %(batch_id)s, %(started_at)s, %(finished_at)s, %(status)s,
            %(full_resync)s, %(read)s, %(inserted)s, %(updated)s, %(unchanged)s, %(deleted)s,
            %(failed)s, %(seconds)s, %(error)s, %(mart_version)s)
        ON CONFLICT (run_id) DO UPDATE SET finished_at = EXCLUDED.finished_at,
            status = EXCLUDED.status, error = EXCLUDED.error, seconds = EXCLUDED.seconds
        """,
        row,
    )


def synced_by(cur, sync: str, mart_version: str) -> str | None:
    """The run of ``sync`` that already delivered ``mart_version`` successfully, if any."""
    cur.execute(
        f"SELECT run_id FROM {SCHEMA}.sync_runs WHERE sync = %s AND mart_version = %s "
        "AND status = 'succeeded' ORDER BY finished_at DESC LIMIT 1",
        (sync, mart_version),
    )
    row = cur.fetchone()
    return row[0] if row else None
