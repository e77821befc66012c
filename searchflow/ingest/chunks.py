"""The one loop every reader runs: stage a chunk, land it, count it, then acknowledge it.

A reader (JSONL, Redis, Postgres) is a generator of :class:`Chunk`: it stages each chunk's lines as
a DuckDB relation, yields it, and drops the relation when it is resumed or closed. :func:`land_chunks`
lands each chunk in one transaction (:func:`~searchflow.ingest.land.land_chunk`) together with the
reader's bookkeeping and the ingestion batch's ledger row, adds up the counts and the parents, and
only after the commit calls ``after_commit`` (tests die there) and the chunk's ``acknowledge``
(Redis XACK). So the ledger row, the rows and the reader's record of what it consumed always move
together, and the source is told only about what is committed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from searchflow import ledger
from searchflow.ingest.land import OUTCOMES, add_counts, land_chunk
from searchflow.ingest.space import disk_full_error, is_disk_full
from searchflow.output import report_progress

INPUT = "_ingest_input"  # the relation a reader stages each chunk as
STAGE = "ingestion"


@dataclass(frozen=True)
class Chunk:
    """One landing transaction's input, staged by its reader as :data:`INPUT`."""

    size_bytes: int  # about how much text it holds (what a full disk error says it needs)
    parents: frozenset[str] = frozenset()  # generation batch ids of its lines
    bookkeeping: Sequence[str] = ()  # the reader's record of what it consumed
    ingested_at: datetime | None = None
    acknowledge: Callable[[], None] | None = None  # after the commit
    # lands this chunk instead of land_chunks' ``land`` (the JSONL reader's change records)
    land: Callable[..., dict[str, dict[str, int]]] | None = None


@dataclass
class Landing:
    """What the chunks of one ingestion batch added up to."""

    source: str
    batch_id: str
    counts: dict[str, dict[str, int]]
    parents: set[str] = field(default_factory=set)
    chunks: int = 0
    flow_run_id: str | None = None

    def ledger_counts(self, chunk: dict[str, dict[str, int]] | None = None) -> dict[str, Any]:
        """The batch's totals and per-type counts (with ``chunk`` not yet added in)."""
        per_type = {k: dict(v) for k, v in self.counts.items()}
        if chunk is not None:
            add_counts(per_type, chunk)
        per_type = {k: v for k, v in per_type.items() if v["read"]}
        totals = {key: sum(v[key] for v in per_type.values()) for key in ("read", *OUTCOMES)}
        return {**totals, "per_type": per_type}


def land_chunks(
    con: duckdb.DuckDBPyConnection,
    chunks: Iterator[Chunk],
    landing: Landing,
    *,
    folder: Path,
    after_commit: Callable[[dict[str, Any]], None] | None = None,
    land: Callable[..., dict[str, dict[str, int]]] = land_chunk,
) -> None:
    """Land every chunk a reader yields, each in its own transaction (see the module docstring).

    ``folder`` is where the warehouse writes, for the message of a full disk. ``land`` lands one
    chunk (:func:`~searchflow.ingest.land.land_chunk` for events; the application's records
    have their own, :func:`searchflow.ingest.app.land_records`); a chunk that names its own
    ``land`` is landed by that one.
    """
    with contextlib.closing(chunks):  # a failure closes the reader, which drops its relation
        for chunk in chunks:
            parents = landing.parents | chunk.parents

            def record(con: duckdb.DuckDBPyConnection, counts: dict, parents=parents) -> None:
                totals = landing.ledger_counts(counts)
                if not totals["landed"] and not totals["dead_letters"]:
                    return  # only duplicates so far: nothing new to record (or gate)
                ledger.record(
                    con,
                    landing.batch_id,
                    STAGE,
                    state="landed",
                    parents=sorted(parents),
                    source=landing.source,
                    counts=totals,
                    flow_run_id=landing.flow_run_id,
                )

            try:
                counts = (chunk.land or land)(
                    con,
                    INPUT,
                    landing.source,
                    landing.batch_id,
                    bookkeeping=chunk.bookkeeping,
                    ingested_at=chunk.ingested_at,
                    in_transaction=record,
                )
            except (duckdb.Error, OSError) as exc:
                if is_disk_full(exc):
                    raise disk_full_error(exc, folder, 2 * chunk.size_bytes) from None
                raise
            add_counts(landing.counts, counts)
            landing.parents = parents
            landing.chunks += 1
            report_progress(
                f"chunk {landing.chunks}: {landing.ledger_counts()['read']:,} lines read"
            )
            if after_commit is not None:
                after_commit(counts)
            if chunk.acknowledge is not None:
                chunk.acknowledge()
