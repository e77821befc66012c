"""The retention policy: what the warehouse keeps, and for how long.

Ages are measured against the latest event time in the raw layer (the marts' as-of time), never
the wall clock: a warehouse of simulated or replayed history is not wiped because today is later
than its events. Raw events age by their event time; dead letters and quarantined rows (which
have none) by when they were landed or quarantined. Deletes are set-based, one statement per
table, in one transaction with the audit row that records what they removed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import duckdb

from searchflow import audit
from searchflow.config import Settings
from searchflow.events import EVENT_TYPES


@dataclass(frozen=True)
class Rule:
    """One table the policy trims: rows whose ``column`` is older than ``days`` before as-of."""

    table: str
    column: str
    days: int
    setting: str


def rules(settings: Settings) -> list[Rule]:
    raw = [
        Rule(f"raw.{t}_events", "event_time", settings.retention_raw_days, "retention_raw_days")
        for t in EVENT_TYPES
    ]
    return [
        *raw,
        Rule(
            "raw.dead_letter_events",
            "ingested_at",
            settings.retention_dead_letter_days,
            "retention_dead_letter_days",
        ),
        Rule(
            "quality.quarantine",
            "quarantined_at",
            settings.retention_quality_days,
            "retention_quality_days",
        ),
    ]


def _exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    schema, name = table.split(".")
    return bool(
        con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
            [schema, name],
        ).fetchone()[0]
    )


def as_of(con: duckdb.DuckDBPyConnection) -> datetime | None:
    """The latest event time in the raw layer (None: no events, nothing has an age)."""
    parts = [f"SELECT max(event_time) AS t FROM raw.{t}_events" for t in EVENT_TYPES]
    tables = [f"raw.{t}_events" for t in EVENT_TYPES]
    parts = [p for p, t in zip(parts, tables, strict=True) if _exists(con, t)]
    if not parts:
        return None
    return con.execute(f"SELECT max(t) FROM ({' UNION ALL '.join(parts)})").fetchone()[0]


def apply(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    *,
    dry_run: bool = False,
    flow_run_id: str | None = None,
) -> dict[str, Any]:
    """Delete what the policy no longer keeps (count only with ``dry_run``); audited when real.

    Returns ``as_of``, per table the cutoff, the days and the rows removed (or that would be),
    and ``removed`` in total.
    """
    reference = as_of(con)
    tables: dict[str, Any] = {}
    if reference is not None:
        con.execute("BEGIN")
        try:
            for rule in rules(settings):
                if not _exists(con, rule.table):
                    continue
                cutoff = reference - timedelta(days=rule.days)
                where = f"WHERE {rule.column} < ?"
                count = con.execute(
                    f"SELECT count(*) FROM {rule.table} {where}", [cutoff]
                ).fetchone()[0]
                if count and not dry_run:
                    con.execute(f"DELETE FROM {rule.table} {where}", [cutoff])
                tables[rule.table] = {
                    "days": rule.days,
                    "cutoff": cutoff.isoformat(sep=" "),
                    "removed": int(count),
                }
            if not dry_run:
                audit.record(
                    con,
                    "retention",
                    touched={t: v["removed"] for t, v in tables.items()},
                    flow_run_id=flow_run_id,
                )
            con.execute("ROLLBACK" if dry_run else "COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return {
        "dry_run": dry_run,
        "as_of": reference.isoformat(sep=" ") if reference else None,
        "tables": tables,
        "removed": sum(t["removed"] for t in tables.values()),
    }
