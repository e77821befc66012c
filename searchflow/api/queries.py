"""The pipeline's figures as set-based SQL: over the ledger export (DuckDB in memory) and over the
sync history (``crm.sync_runs`` in Postgres). ``/stats`` and the ``/metrics`` collector both read
them here, so the two never disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import duckdb

from searchflow import ledger
from searchflow.contract import SYNCS
from searchflow.events import EVENT_TYPES

# The dbt sources' freshness thresholds (dbt/models/staging/*sources.yml): warn, then error.
FRESHNESS_WARN_SECONDS = 24 * 3600
FRESHNESS_ERROR_SECONDS = 72 * 3600

# Histogram bucket bounds (seconds) for stage and sync durations.
DURATION_BUCKETS: tuple[float, ...] = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)

DESTINATIONS: dict[str, str] = {spec.name: spec.destination for spec in SYNCS}

# An ingestion batch's landed events; discarded batches' rows are gone from the warehouse. A batch
# lands the site's user and booking records beside its events (ingest: per_type app_users,
# app_bookings), so its events are the sum over the event types; a summary without per_type
# counts is all events.
_LANDED = (
    "CASE WHEN json_extract(counts, '$.per_type') IS NULL "
    "THEN coalesce(try_cast(json_extract_string(counts, '$.landed') AS BIGINT), 0) ELSE "
    + " + ".join(
        f"coalesce(try_cast(json_extract_string(counts, '$.per_type.{kind}.landed') AS BIGINT), 0)"
        for kind in EVENT_TYPES
    )
    + " END"
)


def utcnow() -> datetime:
    """Now in UTC as a naive timestamp, the ledger's convention."""
    return datetime.now(UTC).replace(tzinfo=None)


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
    return con.execute(sql, list(params)).fetchall()


def event_totals(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Events landed by ingestion batches still in the warehouse, split by the batch's state."""
    row = _rows(
        con,
        f"""
        SELECT coalesce(sum({_LANDED}), 0),
               coalesce(sum({_LANDED}) FILTER (WHERE state = 'published'), 0),
               coalesce(sum({_LANDED}) FILTER (WHERE state = 'held'), 0),
               coalesce(sum({_LANDED}) FILTER (WHERE state = 'landed'), 0)
        FROM ops.batches WHERE stage = 'ingestion' AND state <> 'discarded'
        """,
    )[0]
    return {"landed": row[0], "published": row[1], "held": row[2], "pending": row[3]}


def landed_by_source(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return dict(
        _rows(
            con,
            f"""SELECT coalesce(source, 'unknown'), sum({_LANDED}) FROM ops.batches
            WHERE stage = 'ingestion' AND state <> 'discarded' GROUP BY ALL ORDER BY 1""",
        )
    )


def landed_rate(con: duckdb.DuckDBPyConnection, now: datetime) -> dict[str, Any]:
    """Events landed over the last hour and day (by the batch's landing time), and per minute."""
    hour, day = _rows(
        con,
        f"""
        SELECT coalesce(sum({_LANDED}) FILTER (WHERE created_at >= ?::TIMESTAMP - INTERVAL 1 HOUR), 0),
               coalesce(sum({_LANDED}) FILTER (WHERE created_at >= ?::TIMESTAMP - INTERVAL 1 DAY), 0)
        FROM ops.batches WHERE stage = 'ingestion' AND state <> 'discarded'
        """,
        [now, now],
    )[0]
    return {
        "last_hour": hour,
        "last_day": day,
        "per_minute_last_hour": round(hour / 60, 3),
        "per_minute_last_day": round(day / 1440, 3),
    }


def batches_by_state(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for stage, state, count in _rows(
        con, "SELECT stage, state, count(*) FROM ops.batches GROUP BY ALL ORDER BY ALL"
    ):
        out.setdefault(stage, {})[state] = count
    return out


def gate_outcomes(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, Any]]:
    """Per stage: batches by gate outcome, and the pass rate (passed over gated batches)."""
    out: dict[str, dict[str, Any]] = {}
    for stage, outcome, count in _rows(
        con,
        "SELECT stage, gate_outcome, count(*) FROM ops.batches "
        "WHERE gate_outcome IS NOT NULL GROUP BY ALL ORDER BY ALL",
    ):
        out.setdefault(stage, {"outcomes": {}})["outcomes"][outcome] = count
    for stats in out.values():
        gated = sum(stats["outcomes"].values())
        stats["pass_rate"] = round(stats["outcomes"].get("passed", 0) / gated, 4) if gated else None
    return out


def dead_letters_by_reason(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return dict(
        _rows(
            con,
            "SELECT reason, sum(dead_letters)::BIGINT FROM ops.dead_letters "
            "GROUP BY ALL ORDER BY 2 DESC, 1",
        )
    )


def freshness(con: duckdb.DuckDBPyConnection, now: datetime) -> list[dict[str, Any]]:
    """Per source: the latest published ingestion batch, when it landed and how long ago."""
    rows = _rows(
        con,
        """
        SELECT source, arg_max(batch_id, created_at), max(created_at)
        FROM ops.batches
        WHERE stage = 'ingestion' AND state = 'published' AND source IS NOT NULL
        GROUP BY ALL ORDER BY 1
        """,
    )
    out = []
    for source, batch_id, landed_at in rows:
        seconds = max((now - landed_at).total_seconds(), 0.0)
        status = (
            "error"
            if seconds >= FRESHNESS_ERROR_SECONDS
            else "warn"
            if seconds >= FRESHNESS_WARN_SECONDS
            else "fresh"
        )
        out.append(
            {
                "source": source,
                "batch_id": batch_id,
                "landed_at": landed_at,
                "seconds": round(seconds, 3),
                "status": status,
            }
        )
    return out


def publication(con: duckdb.DuckDBPyConnection) -> dict[str, Any] | None:
    """The latest row of the publish log."""
    row = ledger.published_version(con)
    if row is None:
        return None
    return {"version": row["version"], "published_at": row["published_at"], "forced": row["forced"]}


def _bucket_sql(column: str) -> str:
    return ", ".join(f"count(*) FILTER (WHERE {column} <= {bound})" for bound in DURATION_BUCKETS)


def stage_durations(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, Any]]:
    """Per stage: cumulative bucket counts, count and sum of the batches' run seconds."""
    seconds = "try_cast(counts->>'seconds' AS DOUBLE)"
    out: dict[str, dict[str, Any]] = {}
    for row in _rows(
        con,
        f"""
        SELECT stage, {_bucket_sql(seconds)}, count(*), coalesce(sum({seconds}), 0)
        FROM ops.batches WHERE {seconds} IS NOT NULL GROUP BY ALL ORDER BY 1
        """,
    ):
        out[row[0]] = {"buckets": list(row[1:-2]), "count": row[-2], "sum": float(row[-1])}
    return out


# crm.sync_runs, aggregated in Postgres.
SYNC_SUMMARY_SQL = f"""
SELECT sync,
       count(*) AS runs,
       count(*) FILTER (WHERE status = 'failed') AS failed_runs,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) FILTER (WHERE status <> 'failed'),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY seconds) FILTER (WHERE status <> 'failed'),
       (array_agg(mart_version ORDER BY finished_at DESC NULLS LAST))[1],
       max(finished_at),
       {_bucket_sql("seconds")},
       count(seconds),
       coalesce(sum(seconds), 0),
       sum(inserted), sum(updated), sum(unchanged), sum(deleted), sum(failed)
FROM crm.sync_runs
GROUP BY sync ORDER BY sync
"""
ROW_OUTCOMES: tuple[str, ...] = ("inserted", "updated", "unchanged", "deleted", "failed")


def sync_summary(cur: Any) -> dict[str, dict[str, Any]]:
    """Per sync: runs, failures, latency p50/p95, last version, durations and rows by outcome."""
    cur.execute("SELECT to_regclass('crm.sync_runs') IS NOT NULL")
    if not cur.fetchone()[0]:
        return {}
    cur.execute(SYNC_SUMMARY_SQL)
    out: dict[str, dict[str, Any]] = {}
    n = len(DURATION_BUCKETS)
    for row in cur.fetchall():
        sync, runs, failed_runs, p50, p95, version, finished = row[:7]
        buckets = [int(v) for v in row[7 : 7 + n]]
        count, total = row[7 + n], row[8 + n]
        rows = dict(zip(ROW_OUTCOMES, (int(v or 0) for v in row[9 + n :]), strict=True))
        out[sync] = {
            "destination": DESTINATIONS.get(sync, sync),
            "runs": runs,
            "failed_runs": failed_runs,
            "error_rate": round(failed_runs / runs, 4) if runs else None,
            "latency_p50_seconds": None if p50 is None else round(float(p50), 4),
            "latency_p95_seconds": None if p95 is None else round(float(p95), 4),
            "last_mart_version": version,
            "last_finished_at": finished,
            "durations": {"buckets": buckets, "count": int(count), "sum": float(total)},
            "rows": rows,
        }
    return out


def sync_error_rate(syncs: dict[str, dict[str, Any]]) -> float | None:
    runs = sum(s["runs"] for s in syncs.values())
    return round(sum(s["failed_runs"] for s in syncs.values()) / runs, 4) if runs else None
