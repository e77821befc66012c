"""The syncs: which mart each reads, its key and columns, and where it writes.

The names, marts and destinations come from :mod:`searchflow.contract` (the command line's
choices, the flows and the gates derive from the same tuple); this module adds what only the sync
needs to know: the columns it copies, the key, and the values a destination cannot do without.
"""

from __future__ import annotations

from searchflow.config import Settings
from searchflow.contract import RECO_KEY_PREFIX, SYNC_NAMES, SYNCS
from searchflow.errors import UsageError
from searchflow.sync.source import MartSpec

_MART = {spec.name: spec.mart for spec in SYNCS}

# What each sync copies from its mart; the first column is the key.
_COLUMNS: dict[str, tuple[str, ...]] = {
    "user_segments": (
        "user_id",
        "segment",
        "total_searches",
        "total_clicks",
        "total_conversions",
        "lifetime_value",
        "first_seen_at",
        "last_seen_at",
        "as_of",
        "engagement_score",
        "primary_platform",
        "primary_country",
    ),
    "email_triggers": (
        "trigger_id",
        "user_id",
        "session_id",
        "trigger_type",
        "destination",
        "searches_in_session",
        "session_started_at",
        "session_ended_at",
        "as_of",
        # not in the mart: joined at sync time from the restricted store (sync/source.py)
        "email",
    ),
    "recommendations": (
        "user_id",
        "destination_1",
        "destination_2",
        "destination_3",
        "score",
        "generated_at",
    ),
}

# Values without which a row means nothing at its destination (the row becomes a reject).
_REQUIRED: dict[str, tuple[str, ...]] = {
    "user_segments": ("segment",),
    "email_triggers": ("user_id", "trigger_type", "email"),
    "recommendations": ("destination_1", "score", "generated_at"),
}

SPECS: dict[str, MartSpec] = {
    name: MartSpec(
        sync=name,
        mart=_MART[name],
        key=_COLUMNS[name][0],
        columns=_COLUMNS[name],
        required=_REQUIRED[name],
        addressed=name == "email_triggers",
    )
    for name in SYNC_NAMES
}

# The Postgres syncs and their table in the crm schema; the others write to Redis.
PG_TABLES: dict[str, str] = {"user_segments": "user_segments", "email_triggers": "email_queue"}

DESTINATIONS: dict[str, str] = {spec.name: spec.destination for spec in SYNCS}


def destination(settings: Settings, name: str) -> str:
    """Where a sync writes, as reports show it (the configured Redis key prefix included)."""
    text = DESTINATIONS[name]
    if name not in PG_TABLES:
        text = text.replace(RECO_KEY_PREFIX, settings.reco_prefix, 1)
    return text


def resolve_names(name: str) -> list[str]:
    """``all`` or one sync name; anything else is a usage error listing the choices."""
    if name == "all":
        return list(SYNC_NAMES)
    if name not in SYNC_NAMES:
        raise UsageError(f"unknown sync {name!r}; choose one of {', '.join(SYNC_NAMES)} or all")
    return [name]
