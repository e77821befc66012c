"""The ``crm`` schema SearchFlow owns in PostgreSQL, created and evolved idempotently.

Each table is declared once as (column, type) pairs. :func:`ensure_crm_schema` creates what is
missing with ``CREATE ... IF NOT EXISTS`` and ``ADD COLUMN IF NOT EXISTS``, so adding a column here is
the whole migration. It first reads the catalog and runs no DDL when everything is there: a
least-privilege sync role (docs/reverse-etl.md) can write the tables but not alter them, and must not
need to.
"""

from __future__ import annotations

SCHEMA = "crm"

# Timestamps are timestamptz; sessions set TimeZone=UTC, so the marts' naive UTC times load as UTC.
TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "user_segments": (
        ("user_id", "text PRIMARY KEY"),
        ("segment", "text NOT NULL"),
        ("total_searches", "bigint"),
        ("total_clicks", "bigint"),
        ("total_conversions", "bigint"),
        ("lifetime_value", "numeric(14,2)"),
        ("first_seen_at", "timestamptz"),
        ("last_seen_at", "timestamptz"),
        ("as_of", "timestamptz"),
        ("engagement_score", "bigint"),
        ("primary_platform", "text"),
        ("primary_country", "text"),
        ("synced_at", "timestamptz NOT NULL DEFAULT now()"),
        # The crm.sync_runs run that last wrote the row (audit; never compared).
        ("sync_run_id", "text"),
    ),
    "email_queue": (
        ("trigger_id", "text PRIMARY KEY"),
        ("user_id", "text NOT NULL"),
        ("session_id", "text"),
        ("trigger_type", "text NOT NULL"),
        ("destination", "text"),
        ("searches_in_session", "bigint"),
        ("session_started_at", "timestamptz"),
        ("session_ended_at", "timestamptz"),
        ("as_of", "timestamptz"),
        # The address at sync time, from the restricted store, for consented users only.
        ("email", "text"),
        # Owned by the email sender: the sync inserts 'queued' and never touches a row again.
        ("status", "text NOT NULL DEFAULT 'queued'"),
        ("queued_at", "timestamptz NOT NULL DEFAULT now()"),
        ("sent_at", "timestamptz"),
        # The crm.sync_runs run that inserted the row (audit).
        ("sync_run_id", "text"),
    ),
    "sync_runs": (
        ("run_id", "text PRIMARY KEY"),
        ("sync", "text NOT NULL"),
        ("batch_id", "text"),
        ("started_at", "timestamptz NOT NULL"),
        ("finished_at", "timestamptz"),
        ("status", "text NOT NULL"),
        ("full_resync", "boolean NOT NULL DEFAULT false"),
        ("read", "bigint NOT NULL DEFAULT 0"),
        ("inserted", "bigint NOT NULL DEFAULT 0"),
        ("updated", "bigint NOT NULL DEFAULT 0"),
        ("unchanged", "bigint NOT NULL DEFAULT 0"),
        ("deleted", "bigint NOT NULL DEFAULT 0"),
        ("failed", "bigint NOT NULL DEFAULT 0"),
        ("seconds", "double precision"),
        ("error", "text"),
        # The published mart version the run read (the transform run that published it).
        ("mart_version", "text"),
    ),
    "sync_rejects": (
        ("reject_id", "bigserial PRIMARY KEY"),
        ("run_id", "text NOT NULL"),
        ("sync", "text NOT NULL"),
        ("key", "text"),
        ("reason", "text NOT NULL"),
        ("row_data", "jsonb"),
        ("rejected_at", "timestamptz NOT NULL DEFAULT now()"),
    ),
}

INDEXES: tuple[str, ...] = (
    f"CREATE INDEX IF NOT EXISTS sync_runs_sync_started ON {SCHEMA}.sync_runs (sync, started_at)",
    f"CREATE INDEX IF NOT EXISTS sync_rejects_run ON {SCHEMA}.sync_rejects (run_id)",
    f"CREATE INDEX IF NOT EXISTS email_queue_status ON {SCHEMA}.email_queue (status)",
    f"CREATE INDEX IF NOT EXISTS sync_runs_version ON {SCHEMA}.sync_runs (sync, mart_version)",
)


def columns(table: str) -> tuple[str, ...]:
    return tuple(name for name, _ in TABLES[table])


def ddl_statements() -> list[str]:
    """Every statement, each safe to run again."""
    out = [f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"]
    for table, cols in TABLES.items():
        key, key_type = cols[0]
        out.append(f"CREATE TABLE IF NOT EXISTS {SCHEMA}.{table} ({key} {key_type})")
        out.extend(
            f"ALTER TABLE {SCHEMA}.{table} ADD COLUMN IF NOT EXISTS {name} {col_type}"
            for name, col_type in cols[1:]
        )
    out.extend(INDEXES)
    return out


def missing_columns(cur) -> list[str]:
    """``table.column`` for every declared column the catalog does not show (empty: nothing to do)."""
    cur.execute(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = %s",
        (SCHEMA,),
    )
    present = {(t, c) for t, c in cur.fetchall()}
    return [f"{t}.{c}" for t, cols in TABLES.items() for c, _ in cols if (t, c) not in present]


def ensure_crm_schema(cur) -> bool:
    """Create or evolve the crm schema inside the caller's transaction; True when DDL ran."""
    if not missing_columns(cur):
        return False
    # Two first syncs at once would race on CREATE TABLE IF NOT EXISTS (a catalog unique violation).
    cur.execute("SELECT pg_advisory_xact_lock(hashtext('searchflow.crm.ddl'))")
    for statement in ddl_statements():
        cur.execute(statement)
    return True
