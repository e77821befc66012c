"""Running a sync: read the published mart, write what changed, record the run.

Every run, real or dry, goes through the same code: the mart is read (read-only, briefly), then one
Postgres transaction ensures the crm schema, writes the Postgres destination or drives the Redis
writes, and records the run; it commits (a real run) or rolls back (a dry run, a failure). A mart
version this sync already delivered is not written again.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from contextlib import nullcontext
from datetime import UTC, datetime
from typing import Any

from searchflow.config import Settings
from searchflow.errors import SearchflowError, UsageError
from searchflow.sync.connections import PgConnect, WarehouseGuard, default_pg_connect, transaction
from searchflow.sync.failures import clear_pending, flush_pending, record_failure, user_error
from searchflow.sync.registry import PG_TABLES, SPECS, destination, resolve_names
from searchflow.sync.report import SyncReport
from searchflow.sync.source import MartBatch, read_mart


def _now() -> datetime:
    return datetime.now(UTC)


def _reject_reasons(batch: MartBatch) -> dict[str, int]:
    if not batch.rejects.num_rows:
        return {}
    counts = batch.rejects["_reason"].value_counts().to_pylist()
    return {item["values"]: int(item["counts"]) for item in counts}


def _write_postgres(cur, report: SyncReport, batch: MartBatch, keep_removed: bool) -> None:
    """The Postgres syncs: new rows COPYed, changed rows upserted, gone rows deleted (segments),
    or insert-only (the email queue); the counts go into ``report``."""
    import pyarrow as pa

    from searchflow.sync import postgres_sync as pg

    spec = SPECS[report.sync]
    target = pg.target_for(spec, PG_TABLES[report.sync])
    segments = report.sync == "user_segments"
    mirror = segments and not keep_removed
    plan = pg.plan(cur, target, batch, report.full_resync, mirror=mirror, compare=segments)
    if mirror and batch.good.num_rows == 0 and plan.existing and not report.full_resync:
        raise SearchflowError(
            f"{spec.mart} is empty; refusing to delete all {plan.existing:,} rows of "
            f"{target.table} (run `searchflow transform`, or sync with "
            "--full-resync to mirror an empty mart)"
        )
    inserted, leftover = pg.insert_new(cur, target, plan.new, report.run_id)
    if segments:
        rows = plan.changed
        if leftover.num_rows:
            rows = pa.concat_tables([leftover, rows], promote_options="permissive")
        more, report.updated = pg.upsert(cur, target, rows, report.full_resync, report.run_id)
        report.deleted = pg.mirror_delete(cur, target, plan.gone)
    else:
        more = pg.insert_missing(cur, target, leftover, report.run_id)
    report.inserted = inserted + more


def _write_redis(settings: Settings, report: SyncReport, batch: MartBatch) -> None:
    """The recommendations: planned against what Redis holds, applied unless a dry run."""
    from searchflow.services import redis_client
    from searchflow.sync import redis_sync

    client = redis_client(settings, socket_timeout=30, socket_connect_timeout=10)
    try:
        ttl = None if report.dry_run else redis_sync.TTL_SECONDS
        plan = redis_sync.plan(
            client,
            batch.good,
            report.full_resync,
            ttl=ttl,
            prefix=settings.reco_prefix,
            run_id=report.run_id,
        )
        report.inserted, report.updated = plan.inserted, plan.updated
        if report.dry_run:
            report.deleted = len(plan.extra)
            return
        report.deleted, errors = redis_sync.apply(client, plan)
        if errors:
            raise SearchflowError(
                f"Redis refused {len(errors)} of the recommendation writes "
                f"(first: {errors[0]}); check the Redis user's ACL and memory limit"
            )
    finally:
        client.close()


def _nothing_new(report: SyncReport, synced_by: str) -> None:
    report.nothing_new, report.synced_by, report.status = True, synced_by, "nothing_new"
    report.read = report.failed = 0
    report.reject_reasons = {}


def _sync_once(
    settings: Settings,
    report: SyncReport,
    pg_connect: PgConnect,
    warehouse_guard: WarehouseGuard,
    skip_synced: bool,
) -> SyncReport:
    """One attempt: read the mart, then one Postgres transaction (and the Redis writes)."""
    from searchflow.sync import postgres_sync as pg
    from searchflow.sync.postgres_ddl import ensure_crm_schema

    started = time.perf_counter()
    with warehouse_guard():
        batch = read_mart(settings, SPECS[report.sync])
    report.mart_version = batch.version
    report.read, report.failed = batch.read, batch.rejects.num_rows
    report.reject_reasons = _reject_reasons(batch)
    with transaction(pg_connect, report.sync) as (con, cur):
        ensure_crm_schema(cur)
        done = None
        if skip_synced and batch.version and not report.full_resync:
            done = pg.synced_by(cur, report.sync, batch.version)
        if done:
            _nothing_new(report, done)
        elif report.sync in PG_TABLES:
            _write_postgres(cur, report, batch, settings.sync_keep_removed)
        else:
            _write_redis(settings, report, batch)
        if not done:
            report.unchanged = batch.good.num_rows - report.inserted - report.updated
            report.status = "dry_run" if report.dry_run else "succeeded"
        report.finished_at = _now()
        report.seconds = time.perf_counter() - started
        if report.dry_run or done:
            con.rollback()
            return report
        report.recorded_failures, pending = flush_pending(cur, settings)
        pg.record_rejects(cur, report, SPECS[report.sync], batch)
        pg.record_run(cur, report)
        con.commit()
    clear_pending(pending)
    return report


def run_sync(
    settings: Settings,
    name: str,
    dry_run: bool = False,
    full_resync: bool = False,
    *,
    batch_id: str | None = None,
    attempts: int = 3,
    pg_connect: PgConnect | None = None,
    warehouse_guard: WarehouseGuard = nullcontext,
    skip_synced: bool = True,
) -> dict[str, Any]:
    """Run one sync and return its report as a dict (the fields of :class:`SyncReport`).

    ``attempts`` > 1 retries transient failures with backoff (the CLI path); flows pass 1 and let
    Prefect's retries do it (:func:`searchflow.sync.is_transient` tells which). ``pg_connect``
    supplies Postgres connections (a SqlAlchemyConnector block's in served runs); by default the
    resolved URL is used. ``warehouse_guard`` is held only while the mart is read (flows pass the
    warehouse slot). With ``skip_synced`` a published mart version this sync already delivered is
    not written again (the report says ``nothing_new``); ``full_resync`` always writes.

    Raises :class:`SearchflowError` with one line; the Postgres destination is then as it was
    before the run, and a re-run completes any partial Redis write. A failed real run is recorded
    in ``crm.sync_runs``, later if Postgres is what failed (see :mod:`searchflow.sync.failures`).
    """
    from searchflow.sync.retry import with_retries

    resolve_names(name)
    if name == "all":
        raise UsageError("run_sync takes one sync; use run_syncs for all")
    run_id = uuid.uuid4().hex
    connect = pg_connect or default_pg_connect(settings)
    report = SyncReport(
        sync=name,
        run_id=run_id,
        batch_id=batch_id or run_id,
        destination=destination(settings, name),
        started_at=_now(),
        dry_run=dry_run,
        full_resync=full_resync,
    )
    wall = time.perf_counter()
    try:
        with_retries(
            lambda: _sync_once(settings, report, connect, warehouse_guard, skip_synced),
            attempts=attempts,
        )
    except Exception as exc:
        error = user_error(name, exc)
        if not dry_run:
            report.status, report.error = "failed", str(error)
            report.finished_at = _now()
            report.seconds = time.perf_counter() - wall
            report.inserted = report.updated = report.unchanged = report.deleted = 0
            report.recorded_failures = []
            kept = record_failure(settings, connect, report)
            if kept is not None:
                error = type(error)(
                    f"{error} (the failed run is kept in {kept} and recorded in crm.sync_runs "
                    "by the next sync that reaches PostgreSQL)"
                )
        raise error from None
    return report.to_dict()


def run_syncs(
    settings: Settings,
    names: Iterable[str],
    dry_run: bool = False,
    full_resync: bool = False,
    *,
    batch_id: str | None = None,
    attempts: int = 3,
) -> dict[str, Any]:
    """Several syncs in order; the summary has one entry per sync and the totals."""
    started = time.perf_counter()
    reports = {
        n: run_sync(settings, n, dry_run, full_resync, batch_id=batch_id, attempts=attempts)
        for n in names
    }
    totals = {
        k: sum(r[k] for r in reports.values())
        for k in ("read", "inserted", "updated", "unchanged", "deleted", "failed")
    }
    return {
        "dry_run": dry_run,
        "full_resync": full_resync,
        "syncs": reports,
        **totals,
        "written": totals["inserted"] + totals["updated"] + totals["deleted"],
        "nothing_new": all(r["nothing_new"] for r in reports.values()),
        "seconds": round(time.perf_counter() - started, 3),
    }
