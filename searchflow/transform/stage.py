"""Stage 3's entry points: build a candidate, build and publish, docs, and forgetting a batch.

- :func:`build_candidate` runs ``dbt build`` into a new candidate (``analytics__<version>``, ...)
  and never publishes; the gated path (``flows/gated.py``) gates it, then calls
  :func:`searchflow.transform.publish.publish` or :func:`~searchflow.transform.publish.reject`;
- :func:`run_transform` builds and publishes without a gate (tests, benches, the Postgres target);
- :func:`discard_from_models` takes a discarded ingestion batch out of the models, so the next
  build has it nowhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import duckdb

from searchflow import ledger
from searchflow.config import Settings
from searchflow.errors import SearchflowError
from searchflow.transform import candidate
from searchflow.transform.freshness import source_freshness
from searchflow.transform.publish import Invoker, in_process, publish
from searchflow.transform.runner import (
    AFTER_PUBLICATION,
    log_dir,
    resolve_target,
    summarize,
    target_dir,
)
from searchflow.warehouse import ensure_raw_schema, session, table_exists

STAGING_TABLES: tuple[str, ...] = (
    "staging.stg_search_events",
    "staging.stg_click_events",
    "staging.stg_conversion_events",
)


def check_raw(settings: Settings) -> None:
    """Fail early, in one line, when there is nothing to transform."""
    if not settings.warehouse_exists:
        raise SearchflowError(
            f"the warehouse {settings.warehouse_path} does not exist yet; "
            "run `searchflow ingest` first"
        )
    with session(settings, read_only=True) as con:
        if not table_exists(con, "raw.search_events"):
            raise SearchflowError(
                f"the warehouse {settings.warehouse_name} has no raw tables; "
                "run `searchflow ingest` first"
            )


def prepare(
    settings: Settings, version: str, *, full_refresh: bool = False, select: str | None = None
) -> dict[str, Any]:
    """Before dbt runs: the ledger in place, the candidate seeded, the build's parents named.

    A partial build (``select``) starts from a copy of every published mart, so the models it
    does not build (and unit tests reading their columns) find them in the candidate.
    """
    check_raw(settings)
    with session(settings) as con:
        ensure_raw_schema(con)
        seeded = candidate.seed(con, version, full_refresh=full_refresh)
        copied = candidate.complete(con, version) if select else []
        parents = candidate.pending_parents(con)
    return {"seeded": seeded, "copied": copied, "parents": parents}


def describe(settings: Settings, version: str) -> dict[str, Any]:
    """After dbt ran: marts a partial build lacks copied in, and what the summary reports."""
    with session(settings) as con:
        copied = candidate.complete(con, version)
        lacking = candidate.missing(con, version)
        row = con.execute(
            "SELECT batch_id FROM ops.batches WHERE stage = 'ingestion' AND state = 'published' "
            "ORDER BY published_at DESC, batch_id DESC LIMIT 1"
        ).fetchone()
        as_of = None
        if table_exists(con, "intermediate.int_as_of"):
            found = con.execute("SELECT as_of FROM intermediate.int_as_of").fetchone()
            as_of = found[0].isoformat() if found and found[0] else None
    return {
        "batch_id": row[0] if row else "",
        "as_of": as_of or "",
        "copied": copied,
        "complete": not lacking,
    }


def build_candidate(
    settings: Settings,
    *,
    full_refresh: bool = False,
    select: str | None = None,
    version: str | None = None,
    invoke: Invoker | None = None,
) -> dict[str, Any]:
    """``dbt build`` into a new candidate; never publishes. Returns the stage summary.

    The summary has the node counts (nodes, passed, warned, failed, skipped, by_type), seconds,
    ``as_of``, ``batch_id`` (the latest published ingestion batch), ``version``, ``schemas``
    ({"analytics": "analytics__<v>", ...}), ``parents`` (the published ingestion batches no
    publication has taken in yet), ``complete`` (the candidate holds every mart) and
    ``freshness`` (``dbt source freshness`` of the raw sources, see
    :mod:`searchflow.transform.freshness`). A failed build drops its candidate and raises one line.
    """
    version = version or candidate.new_version()
    prepared = prepare(settings, version, full_refresh=full_refresh, select=select)
    try:
        nodes, seconds = (invoke or in_process)(
            settings,
            "build",
            full_refresh=full_refresh,
            select=select,
            exclude=AFTER_PUBLICATION,
            version=version,
        )
    except BaseException:
        with session(settings) as con:
            candidate.drop(con, version)
        raise
    described = describe(settings, version)
    # Stale raw data is reported (summary, ledger row), never a failed build; a partial build skips it.
    freshness = None if select else source_freshness(settings)
    return {
        "stage": "transformation",
        "target": resolve_target(settings)[0],
        "full_refresh": full_refresh,
        "select": select or "",
        **described,
        **summarize(nodes, seconds),
        "copied": sorted({*prepared["copied"], *described["copied"]}),
        "version": version,
        "schemas": candidate.schemas(version),
        "parents": prepared["parents"],
        "seeded": prepared["seeded"],
        "freshness": freshness,
    }


def merge_counts(first: Mapping[str, Any], second: Mapping[str, Any]) -> dict[str, Any]:
    """Node counts of two dbt invocations as one (pure)."""
    merged = dict(first)
    for key in ("nodes", "passed", "warned", "failed", "skipped"):
        merged[key] = int(first.get(key, 0)) + int(second.get(key, 0))
    by_type = {kind: dict(counts) for kind, counts in first.get("by_type", {}).items()}
    for kind, counts in second.get("by_type", {}).items():
        into = by_type.setdefault(kind, {"run": 0, "passed": 0, "failed": 0, "skipped": 0})
        for key, value in counts.items():
            into[key] = into.get(key, 0) + value
    merged["by_type"] = by_type
    merged["seconds"] = round(float(first.get("seconds", 0)) + float(second.get("seconds", 0)), 3)
    return merged


def run_transform(
    settings: Settings,
    full_refresh: bool = False,
    select: str | None = None,
    target: str = "dev",
    postgres_url: str | None = None,
) -> dict[str, Any]:
    """Build a candidate and publish it, without a gate; returns the stage summary.

    The counts include the snapshot step of the publication. A candidate that cannot be
    complete (a partial build before anything is published) is built but not published
    (``published`` false). On the Postgres target the candidate is built only: publication and
    the ledger live in the DuckDB warehouse.
    """
    if target != "dev":
        return _build_elsewhere(settings, target, postgres_url, full_refresh, select)
    summary = build_candidate(settings, full_refresh=full_refresh, select=select)
    if not summary["complete"]:
        return {**summary, "published": False}
    published = publish(settings, summary["version"], parents=summary["parents"])
    merged = merge_counts(summary, published["snapshot"])
    return {**merged, "published": True, "parquet": published["parquet"]}


def _build_elsewhere(
    settings: Settings,
    target: str,
    postgres_url: str | None,
    full_refresh: bool,
    select: str | None,
) -> dict[str, Any]:
    version = candidate.new_version()
    nodes, seconds = in_process(
        settings,
        "build",
        target=target,
        postgres_url=postgres_url,
        full_refresh=full_refresh,
        select=select,
        exclude=AFTER_PUBLICATION,
        version=version,
    )
    return {
        "stage": "transformation",
        "target": target,
        "full_refresh": full_refresh,
        "select": select or "",
        "batch_id": "",
        "as_of": "",
        **summarize(nodes, seconds),
        "version": version,
        "schemas": candidate.schemas(version),
        "parents": [],
        "published": False,
    }


def generate_docs(settings: Settings, target: str = "dev") -> Path:
    """``dbt docs generate`` for the served version; returns the index.html to open."""
    version = None
    if target == "dev":
        check_raw(settings)
        with session(settings, read_only=True) as con:
            if table_exists(con, ledger.PUBLISH_LOG):
                served = ledger.published_version(con)
                version = str(served["version"]) if served else None
    in_process(settings, "docs generate", target=target, version=version)
    index = target_dir(settings, target) / "index.html"
    if not index.exists():
        raise SearchflowError(f"dbt docs generate wrote no {index}; see {log_dir(settings)}")
    return index


def discard_from_models(con: duckdb.DuckDBPyConnection, batch_id: str) -> dict[str, Any]:
    """Take an ingestion batch's events out of the models (call it when discarding the batch).

    Deletes the batch's staging rows and drops the incremental intermediates, so the next build
    recomputes them from what is left and builds the funnel in full instead of continuing from the
    published version (a day that lost its every event would otherwise keep its old row). The
    published marts keep serving until that build is published. Runs in the caller's transaction.
    """
    removed: dict[str, int] = {}
    for table in STAGING_TABLES:
        if table_exists(con, table):
            # counted, then deleted: a PostgreSQL warehouse's tables take no DELETE ... RETURNING
            found = con.execute(f"SELECT count(*) FROM {table} WHERE batch_id = ?", [batch_id])
            removed[table] = int(found.fetchone()[0])  # type: ignore[index]
            if removed[table]:
                con.execute(f"DELETE FROM {table} WHERE batch_id = ?", [batch_id])
    dropped = []
    if any(removed.values()):
        for table in candidate.INCREMENTAL_INTERMEDIATES:
            if table_exists(con, table):
                con.execute(f"DROP TABLE {table}")
                dropped.append(table)
    return {"batch_id": batch_id, "staging_rows": removed, "dropped": dropped}
