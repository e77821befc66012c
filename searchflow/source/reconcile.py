"""``searchflow source reconcile``: the application's tables against the warehouse, row by row.

For each table (``app.users``, ``app.bookings``) the source's rows are read in one read-only
transaction and compared in DuckDB with each warehouse level that holds them:

- ``raw``: the newest version of each key in ``raw.app_<type>`` (what ingestion landed; rows of
  discarded batches left out);
- ``staging``: the newest version in ``staging.stg_app_<type>`` (only published batches), on
  every column but the PII, which staging does not keep;
- ``restricted``: for users, the current version of the restricted model
  (``restricted.pii.user_contacts``, in the owner-only file beside the warehouse): the email,
  name, phone and consent;
- ``history``: the current version (``dbt_valid_to`` null) of the SCD2 model
  (``intermediate.int_user_profile_history`` / ``int_booking_status_history``), on the columns it
  keeps.

A source row matches a level when that level holds its key with every compared column equal.
Per table and per day of ``created_at`` the rows and amount sums of both sides are reported where
they differ, with the mismatching keys. The top-level ``accuracy`` is matching rows over source
rows across both tables at the least accurate level (a row wrong anywhere counts as wrong); the
goal is :data:`GOAL`. Levels not built yet (no transform run) are reported as missing and left out.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from searchflow import appdb, pii, restricted, warehouse
from searchflow.appdb import PII_COLUMNS, RECORDS, RecordTable
from searchflow.config import Settings
from searchflow.errors import SearchflowError

GOAL = 0.999
SHOWN_KEYS = 50  # mismatching keys listed per table and level (the count is always whole)
HISTORY = {
    "users": (
        "intermediate.int_user_profile_history",
        ("user_id", "home_city", "home_country", "loyalty_tier", "marketing_consent", "created_at"),
    ),
    "bookings": (
        "intermediate.int_booking_status_history",
        ("booking_id", "user_id", "status", "amount", "currency", "created_at"),
    ),
}
PUBLISHED = "batch_id IN (SELECT batch_id FROM ops.batches WHERE stage = 'ingestion' AND state = 'published')"
CONTACTS = ("user_id", "email", "full_name", "phone", "marketing_consent", "created_at")
NOT_DISCARDED = "batch_id NOT IN (SELECT batch_id FROM ops.batches WHERE state = 'discarded')"


def _only(spec: RecordTable, kept: tuple[str, ...]) -> RecordTable:
    narrow = replace(spec, columns={c: t for c, t in spec.columns.items() if c in kept})
    return narrow if spec.amount in kept else replace(narrow, amount=None)


def _levels(
    con: Any, spec: RecordTable, contacts: bool
) -> dict[str, tuple[RecordTable, str] | None]:
    """Each warehouse level's relation for ``spec`` (None when it does not exist yet)."""
    staging = f"staging.stg_app_{spec.record_type}"
    pii = PII_COLUMNS.get(spec.record_type, ())
    staged = _only(spec, tuple(c for c in spec.columns if c not in pii))
    history, kept = HISTORY[spec.record_type]
    narrow = _only(spec, kept)
    levels: dict[str, tuple[RecordTable, str] | None] = {
        "raw": (spec, appdb.latest_versions(spec, spec.raw_table, NOT_DISCARDED))
        if warehouse.table_exists(con, spec.raw_table)
        else None,
        "staging": (staged, appdb.latest_versions(staged, staging))
        if warehouse.table_exists(con, staging)
        else None,
        "history": (
            narrow,
            f"(SELECT {', '.join(narrow.columns)} FROM {history} WHERE dbt_valid_to IS NULL)",
        )
        if warehouse.table_exists(con, history)
        else None,
    }
    if pii:
        levels["restricted"] = (
            (
                _only(spec, CONTACTS),
                f"(SELECT {', '.join(CONTACTS)} FROM {restricted.CONTACTS} WHERE valid_to IS NULL)",
            )
            if contacts
            else None
        )
    return levels


def reconcile(settings: Settings) -> dict[str, Any]:
    """Compare the source's tables with the warehouse; see the module docstring."""
    started = time.perf_counter()
    if not settings.warehouse_exists:
        raise SearchflowError(
            f"no warehouse at {settings.warehouse_path}; run `searchflow ingest --source app` first"
        )
    with appdb.read_only(settings) as conn:
        appdb.begin_read_only(conn)
        exists = appdb.tables_exist(conn)
        missing = [RECORDS[t].table for t, ok in exists.items() if not ok]
        if missing:
            raise SearchflowError(
                f"the application database has no {', '.join(missing)}; "
                "point SEARCHFLOW_SOURCE_URL at it (or generate with --sink postgres)"
            )
        sources = {t: appdb.fetch(conn, spec, order=spec.key) for t, spec in RECORDS.items()}
    tables: dict[str, Any] = {}
    with warehouse.session(settings, read_only=True) as con:
        # the one read of the restricted file outside dbt and the email sync: it checks the PII
        contacts = restricted.attach(con, settings.warehouse_path) and restricted.has_contacts(con)
        # forgotten users stay in the source but must not be in the warehouse: left out
        suppressed = pii.register_suppression(con, settings)
        for record_type, spec in RECORDS.items():
            con.register("_source_rows", sources[record_type])
            try:
                tables[record_type] = _table(con, spec, contacts, suppressed)
            finally:
                con.unregister("_source_rows")
    levels = sorted({level for t in tables.values() for level in t["levels"]})
    by_level = {
        level: appdb.accuracy(
            {t: v["levels"][level] for t, v in tables.items() if level in v["levels"]}
        )
        for level in levels
    }
    worst = min(by_level, key=by_level.get) if by_level else None
    for detail in tables.values():
        detail["accuracy"] = min((lv["accuracy"] for lv in detail["levels"].values()), default=0.0)
        detail["matching_rows"] = min(
            (lv["matching_rows"] for lv in detail["levels"].values()), default=0
        )
    source_rows = sum(t["source_rows"] for t in tables.values())
    matching = sum(t["matching_rows"] for t in tables.values())
    accuracy = matching / source_rows if source_rows else 1.0
    return {
        "accuracy": round(accuracy, 6),
        "goal": GOAL,
        "ok": accuracy >= GOAL and bool(by_level),
        "source_rows": source_rows,
        "matching_rows": matching,
        "accuracy_by_level": {k: round(v, 6) for k, v in by_level.items()},
        "least_accurate_level": worst,
        "tables": tables,
        "seconds": round(time.perf_counter() - started, 3),
    }


def _table(con: Any, spec: RecordTable, contacts: bool, suppressed: bool) -> dict[str, Any]:
    levels: dict[str, Any] = {}
    not_built = []
    source_rows = 0
    kept = f"NOT coalesce({pii.SUPPRESSION_FUNCTION}(user_id), false)" if suppressed else "true"
    for level, found in _levels(con, spec, contacts).items():
        if found is None:
            not_built.append(level)
            continue
        narrow, relation = found
        source = f"(SELECT {', '.join(narrow.columns)} FROM _source_rows WHERE {kept})"
        result = appdb.compare(con, narrow, source, relation)
        source_rows = result["source_rows"]
        result["mismatching"] = len(result["mismatching_keys"])
        result["mismatching_keys"] = result["mismatching_keys"][:SHOWN_KEYS]
        levels[level] = result
    return {
        "table": spec.table,
        "source_rows": source_rows
        or int(con.execute(f"SELECT count(*) FROM _source_rows WHERE {kept}").fetchone()[0]),
        "levels": levels,
        "not_built": not_built,
    }
