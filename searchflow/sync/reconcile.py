"""Reconcile: drift between a mart and its destination, without writing anything."""

from __future__ import annotations

import time
from typing import Any

from searchflow.config import Settings
from searchflow.sync.connections import PgConnect, default_pg_connect, transaction
from searchflow.sync.failures import user_error
from searchflow.sync.registry import PG_TABLES, SPECS, destination, resolve_names
from searchflow.sync.source import MartBatch, read_mart


def _postgres_drift(name: str, batch: MartBatch, pg_connect: PgConnect) -> dict[str, Any]:
    from searchflow.sync import postgres_sync as pg
    from searchflow.sync.postgres_ddl import ensure_crm_schema

    # Staging needs a transaction; it is rolled back, so reconcile never writes.
    with transaction(pg_connect, f"reconcile.{name}") as (con, cur):
        ensure_crm_schema(cur)
        drift = pg.diff(cur, pg.target_for(SPECS[name], PG_TABLES[name]), batch)
        con.rollback()
    return drift


def _redis_drift(settings: Settings, batch: MartBatch) -> dict[str, Any]:
    from searchflow.services import redis_client
    from searchflow.sync import redis_sync

    client = redis_client(settings, socket_timeout=30, socket_connect_timeout=10)
    try:
        plan = redis_sync.plan(client, batch.good, prefix=settings.reco_prefix)
    finally:
        client.close()
    return {
        "missing": plan.inserted,
        "missing_sample": plan.samples("insert"),
        "extra": len(plan.extra),
        "extra_sample": plan.extra_samples(),
        "different": plan.updated,
        "different_sample": plan.samples("update"),
    }


def _synced_by(name: str, version: str | None, pg_connect: PgConnect) -> str | None:
    """The sync run that delivered ``version`` (every sync records its runs in Postgres)."""
    from searchflow.sync import postgres_sync as pg
    from searchflow.sync.postgres_ddl import ensure_crm_schema

    if not version:
        return None
    with transaction(pg_connect, f"reconcile.{name}") as (con, cur):
        ensure_crm_schema(cur)
        run_id = pg.synced_by(cur, name, version)
        con.rollback()
    return run_id


def _reconcile_once(settings: Settings, name: str, pg_connect: PgConnect) -> dict[str, Any]:
    started = time.perf_counter()
    batch = read_mart(settings, SPECS[name])
    out: dict[str, Any] = {
        "sync": name,
        "destination": destination(settings, name),
        "mart_version": batch.version,
        # None while the published version waits for its sync: a difference is then the
        # chain on its way, not drift (the scheduled reconcile says "pending").
        "synced_by": _synced_by(name, batch.version, pg_connect),
        "mart_rows": batch.read,
        "rejected": batch.rejects.num_rows,
    }
    if name in PG_TABLES:
        out.update(_postgres_drift(name, batch, pg_connect))
    else:
        out.update(_redis_drift(settings, batch))
    out["in_sync"] = out["missing"] == out["extra"] == out["different"] == 0
    out["seconds"] = round(time.perf_counter() - started, 3)
    return out


def run_reconcile(
    settings: Settings, name: str, *, attempts: int = 3, pg_connect: PgConnect | None = None
) -> dict[str, Any]:
    """Compare one mart with its destination: counts and sample keys of missing, extra, different.

    ``extra`` for the email queue is expected over time (the queue keeps triggers the mart no
    longer shows); for user_segments with ``SEARCHFLOW_SYNC_KEEP_REMOVED`` too. For Redis,
    ``extra`` counts only keys the sync wrote (another application's keys are none of its
    business).
    """
    from searchflow.sync.retry import with_retries

    resolve_names(name)
    connect = pg_connect or default_pg_connect(settings)
    try:
        return with_retries(lambda: _reconcile_once(settings, name, connect), attempts=attempts)
    except Exception as exc:
        raise user_error(name, exc) from None
