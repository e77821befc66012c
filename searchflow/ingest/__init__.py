"""Stage 2: land events in the DuckDB raw layer, exactly once, from JSONL, Redis or Postgres.

:func:`run_ingestion` is the stage function (the command and the flow call it). Each source has a
reader module that turns its input into batches of raw lines; :mod:`~searchflow.ingest.land` lands
a batch (validation, dedup, dead letters, bookkeeping) in one DuckDB transaction.

The summary's counts reconcile per event type and in total: ``read = landed + duplicates +
dead_letters``, where duplicates are events already in the raw table or repeated in the batch
(and malformed lines whose dead letter was already recorded, i.e. a re-read).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from searchflow.config import Settings
from searchflow.errors import UsageError
from searchflow.ingest.land import (
    LANDING_ROW_GROUP_SIZE,
    add_counts,
    empty_counts,
    ensure_ingest_schema,
    new_batch_id,
    summarize,
    utc_now,
)
from searchflow.warehouse import session

SOURCES: tuple[str, ...] = ("jsonl", "redis", "postgres")
GROUP = "searchflow-ingest"
REDIS_BATCH = 50_000  # entries per landing transaction (~20 MB of text)
POSTGRES_BATCH = 200_000
CLAIM_IDLE_MS = 60_000


def default_events_dir(settings: Settings) -> Path:
    """Where the generator's JSONL sink writes by default."""
    return settings.home_path / "events"


def run_ingestion(
    settings: Settings,
    source: str,
    path: Path | str | None = None,
    *,
    consumer: str | None = None,
    batch_size: int | None = None,
    claim_idle_ms: int = CLAIM_IDLE_MS,
    after_commit: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Ingest everything new from ``source`` and return the summary.

    ``path``: the JSONL folder (default ``$SEARCHFLOW_HOME/events``); JSONL only.
    ``consumer``: the Redis consumer name (default: this host's name, so a restarted ingest finds
    its own pending entries). ``after_commit`` is called after each batch's DuckDB commit and
    before its acknowledgement (tests use it to die at the worst moment).
    """
    if source not in SOURCES:
        raise UsageError(f"unknown source {source!r}; use one of {', '.join(SOURCES)}")
    if path is not None and source != "jsonl":
        raise UsageError("--path applies to --source jsonl only; drop it for redis or postgres")
    started = time.perf_counter()
    settings.ensure_home()
    batch_id = new_batch_id(source)
    counts = empty_counts()
    extra: dict[str, Any] = {}
    if source == "jsonl":
        from searchflow.ingest import jsonl

        root = Path(path) if path is not None else default_events_dir(settings)
        files = jsonl.find_files(root)  # a missing path fails before the warehouse is opened
        with session(settings, row_group_size=LANDING_ROW_GROUP_SIZE) as con:
            ensure_ingest_schema(con)
            extra = _ingest_jsonl(con, root, batch_id, counts, after_commit)
        extra["files_found"] = len(files)
    elif source == "redis":
        from searchflow.ingest import redis_stream

        extra = redis_stream.ingest(
            settings,
            batch_id,
            counts,
            consumer=consumer,
            batch_size=batch_size or REDIS_BATCH,
            claim_idle_ms=claim_idle_ms,
            after_commit=after_commit,
        )
    else:
        from searchflow.ingest import postgres

        extra = postgres.ingest(
            settings,
            batch_id,
            counts,
            batch_size=batch_size or POSTGRES_BATCH,
            after_commit=after_commit,
        )
    return summarize(batch_id, source, counts, time.perf_counter() - started, **extra)


def _ingest_jsonl(con, root: Path, batch_id: str, counts, after_commit) -> dict[str, Any]:
    from searchflow.ingest import jsonl
    from searchflow.ingest.land import land_batch

    files = jsonl.plan_files(con, root)
    if not files:
        return {"files_read": 0}
    try:
        jsonl.stage_lines(con, files)
        batch = land_batch(
            con,
            "_ingest_input",
            "jsonl",
            batch_id,
            bookkeeping=jsonl.bookkeeping(files, batch_id, utc_now()),
        )
    finally:
        jsonl.drop_stage(con)
    add_counts(counts, batch)
    if after_commit is not None:
        after_commit(batch)
    return {"files_read": len(files)}
