"""Failed sync runs: which failures are worth another attempt, the line a person sees, and the
run's record in ``crm.sync_runs`` even when Postgres is what failed.

A run that fails leaves a ``failed`` row in ``crm.sync_runs``. When Postgres itself is down the row
cannot be written then, so it is kept as a JSON file under ``$SEARCHFLOW_HOME/sync/pending-runs/``
and written by the next run that reaches Postgres, in that run's own transaction (the files are
removed only after it commits); that run's report lists it under ``recorded_failures``.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path
from typing import Any

from searchflow.config import Settings
from searchflow.errors import SearchflowError, ServiceUnavailable
from searchflow.sync.connections import PgConnect, transaction
from searchflow.sync.report import SyncReport

PENDING_DIR = Path("sync") / "pending-runs"

# Connection failures that are a setting to fix, not a moment to wait out.
_CONFIG_ERRORS = (
    "authentication failed",
    "no pg_hba.conf entry",
    "does not exist",
    "invalid dsn",
    "invalid connection option",
    "permission denied",
)


def _config_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(marker in text for marker in _CONFIG_ERRORS)


def is_transient(exc: BaseException) -> bool:
    """True when another attempt may succeed: a server that did not answer, dropped the
    connection, timed out, was restarting or rolled the transaction back to break a deadlock.

    False for everything a retry cannot fix: wrong credentials or database, missing permissions,
    bad data, a refused command, a failed gate. Accepts what :func:`searchflow.sync.run_sync`
    raises (:class:`ServiceUnavailable` is transient unless its reason is a setting, such as a
    database that does not exist; any other :class:`SearchflowError` is not) as well as the
    drivers' own exceptions.
    """
    import psycopg2
    import redis

    if isinstance(exc, ServiceUnavailable):  # its line carries the driver's reason
        return not _config_error(exc)
    if isinstance(exc, SearchflowError):
        return False
    if isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError):
        return not _config_error(exc)
    if isinstance(exc, redis.AuthenticationError | redis.exceptions.AuthorizationError):
        return False
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        return True
    return isinstance(exc, ConnectionError | TimeoutError)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def user_error(name: str, exc: BaseException) -> SearchflowError:
    """The one line a person sees for a failure that survived the retries.

    A transient failure becomes :class:`ServiceUnavailable` (so callers that retry keep telling
    it apart), anything else a plain :class:`SearchflowError`.
    """
    import psycopg2
    import redis

    if isinstance(exc, SearchflowError):
        return exc
    if isinstance(exc, psycopg2.errors.InsufficientPrivilege):
        return SearchflowError(
            f"the {name} sync has no permission on the crm schema ({first_line(exc)}); grant the "
            "sync role the privileges in docs/reverse-etl.md, or run the first sync as the "
            "schema owner so the crm tables exist"
        )
    if isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError):
        if not is_transient(exc):
            return SearchflowError(
                f"PostgreSQL refused the {name} sync ({first_line(exc)}); nothing was written, "
                "fix SEARCHFLOW_POSTGRES_URL (user, password, database) and retry"
            )
        return ServiceUnavailable(
            f"PostgreSQL failed during the {name} sync ({first_line(exc)}); nothing was written, "
            "start the server or fix SEARCHFLOW_POSTGRES_URL and retry"
        )
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError | ConnectionError | TimeoutError):
        if not is_transient(exc):
            return SearchflowError(
                f"Redis refused the {name} sync ({first_line(exc)}); fix the user or password "
                "in SEARCHFLOW_REDIS_URL and retry"
            )
        return ServiceUnavailable(
            f"Redis failed during the {name} sync ({first_line(exc)}); start the server or fix "
            "SEARCHFLOW_REDIS_URL and retry (the next run completes any partial write)"
        )
    if isinstance(exc, psycopg2.Error):
        return SearchflowError(
            f"PostgreSQL rejected the {name} sync ({first_line(exc)}); the run was rolled back"
        )
    if isinstance(exc, redis.RedisError):
        return SearchflowError(f"Redis rejected the {name} sync ({first_line(exc)})")
    return SearchflowError(f"the {name} sync failed: {type(exc).__name__}: {first_line(exc)}")


def pending_dir(settings: Settings) -> Path:
    return settings.home_path / PENDING_DIR


def keep_pending(settings: Settings, report: SyncReport) -> Path:
    """Write a failed run's row to the pending folder (atomically: a whole file or none)."""
    folder = pending_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{report.run_id}.json"
    tmp = folder / f".{report.run_id}.{uuid.uuid4().hex}.tmp"
    tmp.write_text(json.dumps(report.to_dict(), default=str))
    os.replace(tmp, path)
    return path


def pending_runs(settings: Settings) -> list[tuple[Path, dict[str, Any]]]:
    """Failed runs waiting for Postgres, oldest first; unreadable files are left for a person."""
    folder = pending_dir(settings)
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob("*.json")):
        with suppress(OSError, ValueError):
            out.append((path, json.loads(path.read_text())))
    return sorted(out, key=lambda item: str(item[1].get("started_at")))


def flush_pending(cur, settings: Settings) -> tuple[list[dict[str, Any]], list[Path]]:
    """Record every pending failed run in ``crm.sync_runs`` in the caller's transaction.

    Returns what was recorded (for the report) and the files to remove once it commits
    (:func:`clear_pending`); a rollback leaves them for the next run.
    """
    from searchflow.sync import postgres_sync as pg

    recorded, paths = [], []
    for path, row in pending_runs(settings):
        pg.record_run(cur, {"mart_version": None, **row})
        recorded.append({k: row.get(k) for k in ("run_id", "sync", "started_at", "error")})
        paths.append(path)
    return recorded, paths


def clear_pending(paths: Iterable[Path]) -> None:
    for path in paths:
        with suppress(FileNotFoundError):
            path.unlink()


def record_failure(settings: Settings, pg_connect: PgConnect, report: SyncReport) -> Path | None:
    """The failed run's row in ``crm.sync_runs`` now, or kept pending when Postgres is what failed.

    Returns the pending file, or None when the row was written (or the crm schema does not exist
    yet: a run that never reached its tables has nothing to report there).
    """
    from searchflow.sync import postgres_sync as pg

    try:
        with transaction(pg_connect, report.sync) as (con, cur):
            cur.execute("SELECT to_regclass('crm.sync_runs')")
            if cur.fetchone()[0] is None:
                return None
            _, paths = flush_pending(cur, settings)
            pg.record_run(cur, report)
            con.commit()
        clear_pending(paths)
        return None
    except Exception as exc:
        if not is_transient(exc):
            return None  # Postgres answers but refuses the record: nothing later would do better
    try:
        return keep_pending(settings, report)
    except OSError:
        return None
