"""Stage 4, reverse ETL: the published marts pushed to Postgres (CRM) and Redis (recommendations).

Three syncs, each read-only on the warehouse for the time of one scan:

| sync | mart | destination |
|---|---|---|
| ``user_segments`` | ``marketing.mart_user_segments`` | ``crm.user_segments``, upsert + mirror deletes |
| ``email_triggers`` | ``marketing.mart_email_triggers`` | ``crm.email_queue``, insert-only |
| ``recommendations`` | ``marketing.mart_recommendations`` | Redis ``<prefix>{user_id}``, TTL 24 h |

One module per job: :mod:`~searchflow.sync.registry` (which syncs exist),
:mod:`~searchflow.sync.run` (running them), :mod:`~searchflow.sync.failures` (transient or not,
the one-line errors, failed runs recorded even when Postgres was down) and
:mod:`~searchflow.sync.reconcile` (drift). The destinations' own code is in ``postgres_sync``,
``postgres_ddl`` and ``redis_sync``; reading a mart in ``source``.

:func:`run_sync` is what the CLI, ``searchflow run`` and the Prefect flows call. Each real run
leaves a row in ``crm.sync_runs`` (with the mart version it synced) and its rejects in
``crm.sync_rejects``.
"""

from __future__ import annotations

from searchflow.contract import SYNC_NAMES
from searchflow.sync.connections import PgConnect, WarehouseGuard, default_pg_connect
from searchflow.sync.failures import is_transient, pending_runs, user_error
from searchflow.sync.reconcile import run_reconcile
from searchflow.sync.registry import DESTINATIONS, PG_TABLES, SPECS, destination, resolve_names
from searchflow.sync.report import SyncReport
from searchflow.sync.run import run_sync, run_syncs

__all__ = [
    "DESTINATIONS",
    "PG_TABLES",
    "SPECS",
    "SYNC_NAMES",
    "PgConnect",
    "SyncReport",
    "WarehouseGuard",
    "default_pg_connect",
    "destination",
    "is_transient",
    "pending_runs",
    "resolve_names",
    "run_reconcile",
    "run_sync",
    "run_syncs",
    "user_error",
]
