"""The three sync flows: ``sync-user-segments``, ``sync-email-triggers``, ``sync-recommendations``.

Thin by design: the write-audit-publish is :func:`flows.gated.gated_sync` (the logic is
:mod:`searchflow.sync`). Each flow runs one task, retried on transient connection errors (a
permission error, bad data or a failed gate fails at once); the task syncs the published mart
version, gates the destination and records it in the ledger with its parent (the mart version from
the triggering event). The flow then emits ``searchflow.sync.validated`` or ``searchflow.sync.failed``.

Postgres credentials come from the ``searchflow-postgres`` SqlAlchemyConnector block (created from
the resolved SEARCHFLOW_POSTGRES_URL the first time), so production secrets live in Prefect blocks;
the bulk COPY uses that engine's psycopg2 connection. The warehouse slot is held only while the mart
is read, never during the destination writes.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.common import current_flow_run_id, run_and_signal, stage_task, warehouse_slot
from searchflow.contract import SYNCS

POSTGRES_BLOCK = "searchflow-postgres"


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


def _sync(
    name: str, dry_run: bool, full_resync: bool, parent_batch_id: str, flow_run_id: str | None
) -> dict[str, Any]:
    from flows.gated import gated_sync
    from flows.reports import publish_gate_artifact
    from searchflow.config import get_settings

    settings = get_settings()
    engine = postgres_block(settings).get_engine()
    try:
        return gated_sync(
            settings,
            name,
            flow_run_id=flow_run_id,
            dry_run=dry_run,
            full_resync=full_resync,
            parent_batch_id=parent_batch_id,
            warehouse_guard=warehouse_slot,
            on_gate=publish_gate_artifact,
            attempts=1,  # Prefect retries the task
            pg_connect=engine.raw_connection,
        )
    finally:
        engine.dispose()


def _run(name: str, dry_run: bool, full_resync: bool, parent_batch_id: str) -> dict[str, Any]:
    from searchflow.sync.report import SyncReport

    flow_run_id = current_flow_run_id()
    sync = stage_task("sync", _sync, f"sync-{name.replace('_', '-')}")
    run = lambda: sync(name, dry_run, full_resync, parent_batch_id, flow_run_id)  # noqa: E731
    summary = run() if dry_run else run_and_signal("sync", run)
    if summary.get("nothing_new"):
        print(f"{name}: nothing new to publish (mart version {summary['mart_version']})")
        return summary
    fields = {k: v for k, v in summary.items() if k in SyncReport.__dataclass_fields__}
    print(SyncReport(**fields).human())
    return summary


@flow(name="sync-user-segments", log_prints=True)
def sync_user_segments(
    dry_run: bool = False, full_resync: bool = False, parent_batch_id: str = ""
) -> dict[str, Any]:
    """marketing.mart_user_segments -> crm.user_segments (upsert, mirror deletes).

    ``parent_batch_id``: the mart version whose event woke this run (for the record)."""
    return _run("user_segments", dry_run, full_resync, parent_batch_id)


@flow(name="sync-email-triggers", log_prints=True)
def sync_email_triggers(
    dry_run: bool = False, full_resync: bool = False, parent_batch_id: str = ""
) -> dict[str, Any]:
    """marketing.mart_email_triggers -> crm.email_queue (insert-only)."""
    return _run("email_triggers", dry_run, full_resync, parent_batch_id)


@flow(name="sync-recommendations", log_prints=True)
def sync_recommendations(
    dry_run: bool = False, full_resync: bool = False, parent_batch_id: str = ""
) -> dict[str, Any]:
    """marketing.mart_recommendations -> Redis reco:{user_id} (TTL 24 h)."""
    return _run("recommendations", dry_run, full_resync, parent_batch_id)


# by sync name, in the contract's order
FLOWS = {spec.name: globals()[spec.flow] for spec in SYNCS}
