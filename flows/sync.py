"""The three sync flows: ``sync-user-segments``, ``sync-email-triggers``, ``sync-recommendations``.

Thin by design: the logic is :mod:`searchflow.sync`. Each flow runs one task with retries for
transient connection errors (a permission error or bad data fails at once), then the sync gate,
which emits ``searchflow.sync.validated`` or ``searchflow.sync.failed``.

Postgres credentials come from the ``searchflow-postgres`` SqlAlchemyConnector block (created from
the resolved SEARCHFLOW_POSTGRES_URL the first time), so production secrets live in Prefect blocks;
the bulk COPY uses that engine's psycopg2 connection. The warehouse slot is held only while the mart
is read, never during the destination writes.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, task

from flows.common import gate_and_signal, warehouse_slot

POSTGRES_BLOCK = "searchflow-postgres"


def _transient_failure(task_, task_run, state) -> bool:
    """Retry only when the servers did not answer (ServiceUnavailable), never on bad data."""
    from searchflow.errors import ServiceUnavailable

    exc = state.data if isinstance(state.data, BaseException) else None
    if exc is None:
        try:
            exc = state.result(raise_on_failure=False)
        except Exception:
            return True
    return isinstance(exc, ServiceUnavailable)


def sqlalchemy_url(url: str) -> str:
    """A libpq URL as SQLAlchemy's psycopg2 URL."""
    scheme, _, rest = url.partition("://")
    return f"postgresql+psycopg2://{rest}" if scheme in ("postgres", "postgresql") else url


def postgres_block(settings: Any):
    """The SqlAlchemyConnector block, created from the resolved Postgres URL when missing."""
    from prefect_sqlalchemy import SqlAlchemyConnector

    from searchflow.services import postgres_url

    try:
        return SqlAlchemyConnector.load(POSTGRES_BLOCK)
    except ValueError:  # no such block yet
        block = SqlAlchemyConnector(connection_info=sqlalchemy_url(postgres_url(settings)))
    try:
        block.save(POSTGRES_BLOCK, overwrite=False)
    except Exception:
        # The three syncs start together on one event: another run may have created the block
        # between our load and our save. Theirs is as good as ours; use it.
        return SqlAlchemyConnector.load(POSTGRES_BLOCK)
    return block


def block_connect(block):
    """Connections for the sync: pooled DB-API connections of the block's engine (psycopg2)."""
    engine = block.get_engine()
    return engine.raw_connection


@task(retries=3, retry_delay_seconds=[2, 10, 30], retry_condition_fn=_transient_failure)
def sync_task(name: str, dry_run: bool, full_resync: bool, batch_id: str | None) -> dict[str, Any]:
    from searchflow.config import get_settings
    from searchflow.sync import run_sync

    settings = get_settings()
    block = postgres_block(settings)
    try:
        return run_sync(
            settings,
            name,
            dry_run,
            full_resync,
            batch_id=batch_id,
            attempts=1,  # Prefect retries the task
            pg_connect=block_connect(block),
            warehouse_guard=warehouse_slot,
        )
    finally:
        engine = getattr(block, "_engine", None)
        if engine is not None:
            engine.dispose()


def _run(name: str, dry_run: bool, full_resync: bool, batch_id: str | None) -> dict[str, Any]:
    from searchflow.config import get_settings
    from searchflow.sync.report import SyncReport

    summary = sync_task(name, dry_run, full_resync, batch_id)
    fields = {k: v for k, v in summary.items() if k in SyncReport.__dataclass_fields__}
    print(SyncReport(**fields).human())
    if not dry_run:
        gate_and_signal("sync", get_settings(), summary)
    return summary


@flow(name="sync-user-segments", log_prints=True)
def sync_user_segments(
    dry_run: bool = False, full_resync: bool = False, batch_id: str | None = None
) -> dict[str, Any]:
    """marketing.mart_user_segments -> crm.user_segments (upsert, mirror deletes)."""
    return _run("user_segments", dry_run, full_resync, batch_id)


@flow(name="sync-email-triggers", log_prints=True)
def sync_email_triggers(
    dry_run: bool = False, full_resync: bool = False, batch_id: str | None = None
) -> dict[str, Any]:
    """marketing.mart_email_triggers -> crm.email_queue (insert-only)."""
    return _run("email_triggers", dry_run, full_resync, batch_id)


@flow(name="sync-recommendations", log_prints=True)
def sync_recommendations(
    dry_run: bool = False, full_resync: bool = False, batch_id: str | None = None
) -> dict[str, Any]:
    """marketing.mart_recommendations -> Redis reco:{user_id} (TTL 24 h)."""
    return _run("recommendations", dry_run, full_resync, batch_id)


FLOWS = {
    "user_segments": sync_user_segments,
    "email_triggers": sync_email_triggers,
    "recommendations": sync_recommendations,
}
