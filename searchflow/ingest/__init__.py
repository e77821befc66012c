"""Stage 2: land events in the DuckDB raw layer, exactly once, from JSONL, Redis or Postgres.

:func:`run_ingestion` is the stage function (the gated stage in ``flows/gated.py`` calls it). One
run is one ingestion *batch* (one id, one ``ops.batches`` row); each source has a reader module
that turns its input into *chunks* of raw lines, and :func:`~searchflow.ingest.chunks.land_chunks`
lands each chunk (validation, dedup, dead letters, bookkeeping, the ledger row) in one DuckDB
transaction.

The summary's counts reconcile per event type and in total: ``read = landed + duplicates +
dead_letters``, where duplicates are events already in the raw table or repeated in the batch
(and malformed lines whose dead letter was already recorded, i.e. a re-read).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from searchflow.config import Settings
from searchflow.contract import (
    APP_READ_BATCH,
    APP_SOURCE,
    POSTGRES_READ_BATCH,
    RECORD_TYPES,
    REDIS_READ_BATCH,
    SOURCES,
)
from searchflow.errors import UsageError
from searchflow.ingest.chunks import Chunk, Landing, land_chunks
from searchflow.ingest.discard import discard_ingestion_batch
from searchflow.ingest.land import (
    LANDING_ROW_GROUP_SIZE,
    OUTCOMES,
    empty_counts,
    ensure_ingest_schema,
    land_chunk,
    new_batch_id,
    summarize,
)
from searchflow.ingest.postgres import remove_stale_scratch
from searchflow.ingest.redis_stream import CLAIM_IDLE_MS, GROUP
from searchflow.pii import register_suppression
from searchflow.warehouse import session

__all__ = [
    "CLAIM_IDLE_MS",
    "GROUP",
    "SOURCES",
    "default_events_dir",
    "discard_ingestion_batch",
    "run_ingestion",
]

Reader = Callable[[duckdb.DuckDBPyConnection, dict[str, Any]], Iterator[Chunk]]


def default_events_dir(settings: Settings) -> Path:
    """Where the generator's JSONL sink writes by default."""
    return settings.home_path / "events"


@contextmanager
def _jsonl_reader(
    settings: Settings, path: Path | str | None, batch_id: str, chunk_lines: int | None = None
) -> Iterator[Reader]:
    from searchflow.ingest import jsonl

    root = Path(path) if path is not None else default_events_dir(settings)
    jsonl.find_files(root)  # a missing path fails before the warehouse is opened
    folder = settings.warehouse_path.parent
    yield lambda con, stats: jsonl.chunks(
        con, root, batch_id, stats, folder=folder, chunk_lines=chunk_lines
    )


def _reader(
    settings: Settings,
    source: str,
    path: Path | str | None,
    batch_id: str,
    *,
    consumer: str | None,
    chunk_size: int | None,
    claim_idle_ms: int,
    extract: dict[str, Any] | None = None,
):
    """The source's reader, a context manager yielding ``chunks(con, stats)``."""
    if source == "jsonl":
        return _jsonl_reader(settings, path, batch_id, chunk_size)
    if source == APP_SOURCE:
        from searchflow.ingest import app

        return app.reader(settings, chunk_size=chunk_size or APP_READ_BATCH, **(extract or {}))
    if source == "redis":
        from searchflow.ingest import redis_stream

        return redis_stream.reader(
            settings,
            consumer=consumer,
            chunk_size=chunk_size or REDIS_READ_BATCH,
            claim_idle_ms=claim_idle_ms,
        )
    from searchflow.ingest import postgres

    return postgres.reader(settings, batch_id, chunk_size=chunk_size or POSTGRES_READ_BATCH)


def run_ingestion(
    settings: Settings,
    source: str,
    path: Path | str | None = None,
    *,
    consumer: str | None = None,
    chunk_size: int | None = None,
    claim_idle_ms: int = CLAIM_IDLE_MS,
    after_commit: Callable[[dict[str, Any]], None] | None = None,
    flow_run_id: str | None = None,
    full: bool = False,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    """Ingest everything new from ``source`` as one batch and return its summary.

    ``source="app"`` extracts the application's users and bookings (:mod:`searchflow.ingest.app`):
    ``full`` re-extracts everything, ``since`` / ``until`` backfill a range of ``updated_at``
    (UTC); the other sources refuse these options.

    ``path``: the JSONL folder (default ``$SEARCHFLOW_HOME/events``); JSONL only.
    ``consumer``: the Redis consumer name (default: this host's name, so a restarted ingest finds
    its own pending entries). ``chunk_size``: entries (Redis), rows (Postgres) or staged lines (JSONL) per landing
    transaction. ``after_commit`` is called after each chunk's DuckDB commit and before its
    acknowledgement (tests use it to die at the worst moment). The batch's ``ops.batches`` row
    (state ``landed``) is written in the transaction of its first chunk that lands or
    dead-letters something; gating it is the caller's job.
    """
    if source not in SOURCES:
        raise UsageError(f"unknown source {source!r}; use one of {', '.join(SOURCES)}")
    if path is not None and source != "jsonl":
        raise UsageError("--path applies to --source jsonl only; drop it for redis or postgres")
    if (full or since or until) and source != APP_SOURCE:
        raise UsageError("--full, --since and --until apply to --source app only; drop them")
    if since and until and since >= until:
        raise UsageError(f"--since ({since}) must be before --until ({until})")
    started = time.perf_counter()
    home = settings.ensure_home()
    counts = (
        {f"app_{t}": {"read": 0, **dict.fromkeys(OUTCOMES, 0)} for t in RECORD_TYPES}
        if source == APP_SOURCE
        else empty_counts()
    )
    landing = Landing(source, new_batch_id(source), counts, flow_run_id=flow_run_id)
    stats: dict[str, Any] = {}
    reader = _reader(
        settings,
        source,
        path,
        landing.batch_id,
        consumer=consumer,
        chunk_size=chunk_size,
        claim_idle_ms=claim_idle_ms,
        extract={"full": full, "since": since, "until": until},
    )
    land = land_chunk
    if source == APP_SOURCE:
        from searchflow.ingest.app import ensure_app_schema, land_records

        land = land_records
    with reader as chunks, session(settings, row_group_size=LANDING_ROW_GROUP_SIZE) as con:
        ensure_ingest_schema(con)
        if source == APP_SOURCE:
            ensure_app_schema(con)
        remove_stale_scratch(home)  # the warehouse is held: no other ingest is running
        register_suppression(con, settings)  # forgotten users' events are dropped, counted
        land_chunks(
            con,
            chunks(con, stats),
            landing,
            folder=settings.warehouse_path.parent,
            after_commit=after_commit,
            land=land,
        )
    return summarize(
        landing.batch_id,
        source,
        landing.counts,
        time.perf_counter() - started,
        **stats,
        chunks=landing.chunks,
        parents=sorted(landing.parents),
    )
