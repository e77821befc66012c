"""Stage 4, reverse ETL: the marts pushed to Postgres (CRM) and Redis (recommendations).

Three syncs, each read-only on the warehouse for the time of one scan:

| sync | mart | destination |
|---|---|---|
| ``user_segments`` | ``marketing.mart_user_segments`` | ``crm.user_segments``, upsert + mirror deletes |
| ``email_triggers`` | ``marketing.mart_email_triggers`` | ``crm.email_queue``, insert-only |
| ``recommendations`` | ``marketing.mart_recommendations`` | Redis ``reco:{user_id}``, TTL 24 h |

:func:`run_sync` is what the CLI, ``searchflow run`` and the Prefect flows call. Every run, real or
dry, goes through the same code: a Postgres transaction that stages, compares and writes, then
commits (a real run) or rolls back (a dry run, a failure). Each real run leaves a row in
``crm.sync_runs`` and its rejects in ``crm.sync_rejects``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from datetime import UTC, datetime
from typing import Any

from searchflow.config import Settings
from searchflow.errors import SearchflowError, ServiceUnavailable, UsageError
from searchflow.sync.report import SyncReport
from searchflow.sync.source import MartBatch, MartSpec, read_mart

SYNC_NAMES: tuple[str, ...] = ("user_segments", "email_triggers", "recommendations")

SPECS: dict[str, MartSpec] = {
    "user_segments": MartSpec(
        sync="user_segments",
        mart="marketing.mart_user_segments",
        key="user_id",
        columns=(
            "user_id",
            "segment",
            "total_searches",
            "total_clicks",
            "total_conversions",
            "lifetime_value",
            "first_seen_at",
            "last_seen_at",
            "as_of",
        ),
        required=("segment",),
    ),
    "email_triggers": MartSpec(
        sync="email_triggers",
        mart="marketing.mart_email_triggers",
        key="trigger_id",
        columns=(
            "trigger_id",
            "user_id",
            "session_id",
            "trigger_type",
            "destination",
            "searches_in_session",
            "session_started_at",
            "session_ended_at",
            "as_of",
        ),
        required=("user_id", "trigger_type"),
    ),
    "recommendations": MartSpec(
        sync="recommendations",
        mart="marketing.mart_recommendations",
        key="user_id",
        columns=(
            "user_id",
            "destination_1",
            "destination_2",
            "destination_3",
            "score",
            "generated_at",
        ),
        required=("destination_1", "score", "generated_at"),
    ),
}

PG_TABLES = {"user_segments": "user_segments", "email_triggers": "email_queue"}

DESTINATIONS = {
    "user_segments": "postgres crm.user_segments",
    "email_triggers": "postgres crm.email_queue",
    "recommendations": "redis reco:{user_id}",
}

PgConnect = Callable[[], Any]  # returns a DB-API (psycopg2) connection
WarehouseGuard = Callable[[], AbstractContextManager[Any]]  # held while the mart is read


def resolve_names(name: str) -> list[str]:
    """``all`` or one sync name; anything else is a usage error listing the choices."""
    if name == "all":
        return list(SYNC_NAMES)
    if name not in SYNC_NAMES:
        raise UsageError(f"unknown sync {name!r}; choose one of {', '.join(SYNC_NAMES)} or all")
    return [name]


def default_pg_connect(settings: Settings) -> PgConnect:
    """Connections from the resolved URL (local runs, tests); served runs pass a block's instead."""

    def connect():
        import psycopg2

        from searchflow.services import postgres_url

        return psycopg2.connect(postgres_url(settings), connect_timeout=10)

    return connect


@contextmanager
def _transaction(pg_connect: PgConnect, name: str):
    """One transaction on a fresh connection, serialised per sync, in UTC; caller commits."""
    con = pg_connect()
    try:
        con.autocommit = False
        cur = con.cursor()
        cur.execute("SET LOCAL TimeZone = 'UTC'")
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"searchflow.sync.{name}",))
        yield con, cur
    except BaseException:
        with suppress(Exception):  # the connection may be gone; the server rolls back on its own
            con.rollback()
        raise
    finally:
        with suppress(Exception):
            con.close()


def _reject_reasons(batch: MartBatch) -> dict[str, int]:
    if not batch.rejects.num_rows:
        return {}
    counts = batch.rejects["_reason"].value_counts().to_pylist()
    return {item["values"]: int(item["counts"]) for item in counts}


def _now() -> datetime:
    return datetime.now(UTC)


def _sync_once(
    settings: Settings,
    report: SyncReport,
    pg_connect: PgConnect,
    keep_removed: bool,
    warehouse_guard: WarehouseGuard = nullcontext,
) -> SyncReport:
    """One attempt: read the mart, then one Postgres transaction (and the Redis writes)."""
    import pyarrow as pa

    from searchflow.sync import postgres_sync as pg
    from searchflow.sync.postgres_ddl import ensure_crm_schema

    started = time.perf_counter()
    spec = SPECS[report.sync]
    with warehouse_guard():
        batch = read_mart(settings, spec)
    report.read, report.failed = batch.read, batch.rejects.num_rows
    report.reject_reasons = _reject_reasons(batch)
    good = batch.good.num_rows
    with _transaction(pg_connect, report.sync) as (con, cur):
        ensure_crm_schema(cur)
        if report.sync in PG_TABLES:
            target = pg.target_for(spec, PG_TABLES[report.sync])
            segments = report.sync == "user_segments"
            mirror = segments and not keep_removed
            pg_plan = pg.plan(
                cur, target, batch, report.full_resync, mirror=mirror, compare=segments
            )
            if mirror and good == 0 and pg_plan.existing and not report.full_resync:
                raise SearchflowError(
                    f"{spec.mart} is empty; refusing to delete all {pg_plan.existing:,} rows of "
                    f"{target.table} (run `searchflow transform`, or sync with "
                    "--full-resync to mirror an empty mart)"
                )
            inserted, leftover = pg.insert_new(cur, target, pg_plan.new)
            if segments:
                rows = pg_plan.changed
                if leftover.num_rows:
                    rows = pa.concat_tables([leftover, rows], promote_options="permissive")
                more, report.updated = pg.upsert(cur, target, rows, report.full_resync)
                report.deleted = pg.mirror_delete(cur, target, pg_plan.gone)
            else:
                more = pg.insert_missing(cur, target, leftover)
            report.inserted = inserted + more
        else:
            from searchflow.services import redis_client
            from searchflow.sync import redis_sync

            client = redis_client(settings, socket_timeout=30, socket_connect_timeout=10)
            try:
                ttl = None if report.dry_run else redis_sync.TTL_SECONDS
                plan = redis_sync.plan(client, batch.good, report.full_resync, ttl=ttl)
                report.inserted, report.updated = plan.inserted, plan.updated
                if report.dry_run:
                    report.deleted = len(plan.extra)
                else:
                    report.deleted, errors = redis_sync.apply(client, plan)
                    if errors:
                        raise SearchflowError(
                            f"Redis refused {len(errors)} of the recommendation writes "
                            f"(first: {errors[0]}); check the Redis user's ACL and memory limit"
                        )
            finally:
                client.close()
        report.unchanged = good - report.inserted - report.updated
        report.finished_at = _now()
        report.seconds = time.perf_counter() - started
        report.status = "dry_run" if report.dry_run else "succeeded"
        if report.dry_run:
            con.rollback()
        else:
            pg.record_rejects(cur, report, spec, batch)
            pg.record_run(cur, report)
            con.commit()
    return report


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _user_error(name: str, exc: BaseException) -> SearchflowError:
    """The one line a person sees for a failure that survived the retries."""
    import psycopg2
    import redis

    if isinstance(exc, SearchflowError):
        return exc
    if isinstance(exc, psycopg2.errors.InsufficientPrivilege):
        return SearchflowError(
            f"the {name} sync has no permission on the crm schema ({_first_line(exc)}); grant the "
            "sync role the privileges in docs/reverse-etl.md, or run the first sync as the "
            "schema owner so the crm tables exist"
        )
    if isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError):
        return ServiceUnavailable(
            f"PostgreSQL failed during the {name} sync ({_first_line(exc)}); nothing was written, "
            "start the server or fix SEARCHFLOW_POSTGRES_URL and retry"
        )
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError | ConnectionError):
        return ServiceUnavailable(
            f"Redis failed during the {name} sync ({_first_line(exc)}); start the server or fix "
            "SEARCHFLOW_REDIS_URL and retry (the next run completes any partial write)"
        )
    if isinstance(exc, psycopg2.Error):
        return SearchflowError(
            f"PostgreSQL rejected the {name} sync ({_first_line(exc)}); the run was rolled back"
        )
    if isinstance(exc, redis.RedisError):
        return SearchflowError(f"Redis rejected the {name} sync ({_first_line(exc)})")
    return SearchflowError(f"the {name} sync failed: {type(exc).__name__}: {_first_line(exc)}")


def _record_failure(pg_connect: PgConnect, report: SyncReport) -> None:
    """Best effort: a failed run's row in crm.sync_runs (the server may be the thing that failed)."""
    from searchflow.sync import postgres_sync as pg

    try:
        with _transaction(pg_connect, report.sync) as (con, cur):
            cur.execute("SELECT to_regclass('crm.sync_runs')")
            if cur.fetchone()[0] is None:
                return
            pg.record_run(cur, report)
            con.commit()
    except Exception:
        pass


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
) -> dict[str, Any]:
    """Run one sync and return its report as a dict (the fields of :class:`SyncReport`).

    ``attempts`` > 1 retries transient connection errors with backoff (the CLI path); flows pass 1
    and let Prefect's task retries do it. ``pg_connect`` supplies Postgres connections (a
    SqlAlchemyConnector block's in served runs); by default the resolved URL is used.
    ``warehouse_guard`` is held only while the mart is read (flows pass the warehouse slot). Raises
    :class:`SearchflowError` with one line; the destination is then as it was before the run.
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
        destination=DESTINATIONS[name],
        started_at=_now(),
        dry_run=dry_run,
        full_resync=full_resync,
    )
    wall = time.perf_counter()
    try:
        with_retries(
            lambda: _sync_once(
                settings, report, connect, settings.sync_keep_removed, warehouse_guard
            ),
            attempts=attempts,
        )
    except Exception as exc:
        error = _user_error(name, exc)
        if not dry_run:
            report.status, report.error = "failed", str(error)
            report.finished_at = _now()
            report.seconds = time.perf_counter() - wall
            report.inserted = report.updated = report.unchanged = report.deleted = 0
            _record_failure(connect, report)
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
        "seconds": round(time.perf_counter() - started, 3),
    }


def _reconcile_once(settings: Settings, name: str, pg_connect: PgConnect) -> dict[str, Any]:
    from searchflow.sync import postgres_sync as pg
    from searchflow.sync.postgres_ddl import ensure_crm_schema

    started = time.perf_counter()
    spec = SPECS[name]
    batch = read_mart(settings, spec)
    out: dict[str, Any] = {
        "sync": name,
        "destination": DESTINATIONS[name],
        "mart_rows": batch.read,
        "rejected": batch.rejects.num_rows,
    }
    if name in PG_TABLES:
        # Staging needs a transaction; it is rolled back, so reconcile never writes.
        with _transaction(pg_connect, f"reconcile.{name}") as (con, cur):
            ensure_crm_schema(cur)
            target = pg.target_for(spec, PG_TABLES[name])
            out.update(pg.diff(cur, target, batch))
            con.rollback()
    else:
        from searchflow.services import redis_client
        from searchflow.sync import redis_sync

        client = redis_client(settings, socket_timeout=30, socket_connect_timeout=10)
        try:
            plan = redis_sync.plan(client, batch.good)
        finally:
            client.close()
        out.update(
            missing=plan.inserted,
            missing_sample=plan.samples("insert"),
            extra=len(plan.extra),
            extra_sample=plan.extra_samples(),
            different=plan.updated,
            different_sample=plan.samples("update"),
        )
    out["in_sync"] = out["missing"] == out["extra"] == out["different"] == 0
    out["seconds"] = round(time.perf_counter() - started, 3)
    return out


def run_reconcile(
    settings: Settings, name: str, *, attempts: int = 3, pg_connect: PgConnect | None = None
) -> dict[str, Any]:
    """Compare one mart with its destination: counts and sample keys of missing, extra, different.

    ``extra`` for the email queue is expected over time (the queue keeps triggers the mart no
    longer shows); for user_segments with ``SEARCHFLOW_SYNC_KEEP_REMOVED`` too.
    """
    from searchflow.sync.retry import with_retries

    resolve_names(name)
    connect = pg_connect or default_pg_connect(settings)
    try:
        return with_retries(lambda: _reconcile_once(settings, name, connect), attempts=attempts)
    except Exception as exc:
        raise _user_error(name, exc) from None


__all__ = [
    "SPECS",
    "SYNC_NAMES",
    "SyncReport",
    "resolve_names",
    "run_reconcile",
    "run_sync",
    "run_syncs",
]
