"""The Postgres side of the syncs: COPY into a staging table, then one set-based statement.

Everything happens in the caller's transaction: staging, the upsert or insert, the mirror delete, the
run record and the rejects. Commit makes the run visible at once; rollback (a failure, or a dry run)
leaves the destination exactly as it was. The staging table is a temporary table dropped at commit.

Change detection is a join against the destination with ``IS DISTINCT FROM`` on the compared
columns, so an unchanged row is neither locked nor rewritten, and a second sync of an unchanged mart
writes nothing. ``as_of`` (the mart's build time) is stored but not compared: new events move it for
every user, and rewriting every row for that would make each sync a full rewrite.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.csv as pacsv

from searchflow.sync.postgres_ddl import SCHEMA
from searchflow.sync.report import SyncReport
from searchflow.sync.source import MartBatch, MartSpec

SAMPLE = 5  # sample keys shown per kind of drift


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


def target_for(spec: MartSpec, table: str) -> PgTarget:
    compared = tuple(c for c in spec.columns if c not in (spec.key, "as_of"))
    return PgTarget(f"{SCHEMA}.{table}", spec.key, spec.columns, compared)


def copy_arrow(cur, table: pa.Table, target: str, columns: tuple[str, ...]) -> None:
    """COPY an Arrow table into ``target`` as CSV (NULL unquoted empty, strings always quoted)."""
    buf = io.BytesIO()
    if table.num_rows:
        pacsv.write_csv(table, buf, pacsv.WriteOptions(include_header=False))
    buf.seek(0)
    cur.copy_expert(f"COPY {target} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)", buf)


def stage(cur, target: PgTarget, batch: MartBatch) -> None:
    """Load the mart's good rows into a temp table shaped like the destination, plus held keys.

    Held keys are the non-NULL keys of rejected rows (duplicates): the mirror delete leaves their
    destination rows alone, since the mart says nothing reliable about them.
    """
    cols = ", ".join(target.columns)
    cur.execute(
        f"CREATE TEMP TABLE {target.stage} ON COMMIT DROP AS "
        f"SELECT {cols} FROM {target.table} WITH NO DATA"
    )
    copy_arrow(cur, batch.good.select(list(target.columns)), target.stage, target.columns)
    cur.execute(f"ANALYZE {target.stage}")
    cur.execute(f"CREATE TEMP TABLE {target.stage}_held (key text) ON COMMIT DROP")
    held = batch.rejects.select([target.key]).drop_null().rename_columns(["key"])
    copy_arrow(cur, held, f"{target.stage}_held", ("key",))


def _distinct(target: PgTarget, left: str, right: str) -> str:
    a = ", ".join(f"{left}.{c}" for c in target.compared)
    b = ", ".join(f"{right}.{c}" for c in target.compared)
    return f"ROW({a}) IS DISTINCT FROM ROW({b})"


def upsert(cur, target: PgTarget, full_resync: bool) -> tuple[int, int]:
    """Insert new keys and update changed ones in one statement; (inserted, updated)."""
    cols = ", ".join(target.columns)
    s_cols = ", ".join(f"s.{c}" for c in target.columns)
    changed = "TRUE" if full_resync else f"t.{target.key} IS NULL OR {_distinct(target, 's', 't')}"
    sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in target.columns if c != target.key)
    cur.execute(
        f"""
        WITH up AS (
            INSERT INTO {target.table} AS d ({cols}, synced_at)
            SELECT {s_cols}, now()
            FROM {target.stage} s LEFT JOIN {target.table} t ON t.{target.key} = s.{target.key}
            WHERE {changed}
            ON CONFLICT ({target.key}) DO UPDATE SET {sets}, synced_at = EXCLUDED.synced_at
            RETURNING (xmax = 0) AS inserted
        )
        SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up
        """
    )
    inserted, updated = cur.fetchone()
    return int(inserted), int(updated)


def insert_new(cur, target: PgTarget) -> int:
    """Insert only keys the destination has never had; an existing row is never touched."""
    cols = ", ".join(target.columns)
    cur.execute(
        f"""
        INSERT INTO {target.table} ({cols})
        SELECT {cols} FROM {target.stage} s
        WHERE NOT EXISTS (SELECT 1 FROM {target.table} t WHERE t.{target.key} = s.{target.key})
        ON CONFLICT ({target.key}) DO NOTHING
        """
    )
    return int(cur.rowcount)


def destination_count(cur, target: PgTarget) -> int:
    cur.execute(f"SELECT count(*) FROM {target.table}")
    return int(cur.fetchone()[0])


def mirror_delete(cur, target: PgTarget) -> int:
    """Delete destination rows whose key left the mart (held keys stay)."""
    cur.execute(
        f"""
        DELETE FROM {target.table} t
        WHERE NOT EXISTS (SELECT 1 FROM {target.stage} s WHERE s.{target.key} = t.{target.key})
          AND NOT EXISTS (SELECT 1 FROM {target.stage}_held h WHERE h.key = t.{target.key})
        """
    )
    return int(cur.rowcount)


def diff(cur, target: PgTarget) -> dict[str, object]:
    """Drift between the staged mart and the destination: missing, extra, different, with samples."""
    key = target.key
    queries = {
        "missing": f"""SELECT s.{key} FROM {target.stage} s
            WHERE NOT EXISTS (SELECT 1 FROM {target.table} t WHERE t.{key} = s.{key})""",
        "extra": f"""SELECT t.{key} FROM {target.table} t
            WHERE NOT EXISTS (SELECT 1 FROM {target.stage} s WHERE s.{key} = t.{key})""",
        "different": f"""SELECT s.{key} FROM {target.stage} s
            JOIN {target.table} t ON t.{key} = s.{key} WHERE {_distinct(target, "s", "t")}""",
    }
    out: dict[str, object] = {}
    for kind, query in queries.items():
        cur.execute(
            f"SELECT count(*), (array_agg(k ORDER BY k))[1:{SAMPLE}] FROM ({query}) AS q(k)"
        )
        count, sample = cur.fetchone()
        out[kind] = int(count)
        out[f"{kind}_sample"] = list(sample or [])
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


def record_run(cur, report: SyncReport) -> None:
    """The run's row in ``crm.sync_runs`` (same transaction as the writes it describes)."""
    cur.execute(
        f"""
        INSERT INTO {SCHEMA}.sync_runs (run_id, sync, batch_id, started_at, finished_at, status,
            full_resync, read, inserted, updated, unchanged, deleted, failed, seconds, error)
        VALUES (%(run_id)s, %(sync)s, %(batch_id)s, %(started_at)s, %(finished_at)s, %(status)s,
            %(full_resync)s, %(read)s, %(inserted)s, %(updated)s, %(unchanged)s, %(deleted)s,
            %(failed)s, %(seconds)s, %(error)s)
        ON CONFLICT (run_id) DO UPDATE SET finished_at = EXCLUDED.finished_at,
            status = EXCLUDED.status, error = EXCLUDED.error, seconds = EXCLUDED.seconds
        """,
        report.to_dict(),
    )
