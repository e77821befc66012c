"""Rows in the marts' contract columns (docs/architecture.md), for building test marts."""

from __future__ import annotations

from datetime import datetime, timedelta

AS_OF = datetime(2024, 6, 1, 12, 0, 0)

MART_DDL = {
    "marketing.mart_user_segments": """(
        user_id VARCHAR, segment VARCHAR, total_searches BIGINT, total_clicks BIGINT,
        total_conversions BIGINT, lifetime_value DECIMAL(14, 2), first_seen_at TIMESTAMP,
        last_seen_at TIMESTAMP, as_of TIMESTAMP, engagement_score BIGINT,
        primary_platform VARCHAR, primary_country VARCHAR)""",
    "marketing.mart_email_triggers": """(
        trigger_id VARCHAR, user_id VARCHAR, session_id VARCHAR, trigger_type VARCHAR,
        destination VARCHAR, searches_in_session BIGINT, session_started_at TIMESTAMP,
        session_ended_at TIMESTAMP, as_of TIMESTAMP)""",
    "marketing.mart_recommendations": """(
        user_id VARCHAR, destination_1 VARCHAR, destination_2 VARCHAR, destination_3 VARCHAR,
        score DOUBLE, generated_at TIMESTAMP)""",
}

# The restricted store's contacts model (dbt/models/restricted/pii_user_contacts.sql).
CONTACTS_DDL = """(
    user_id VARCHAR, email VARCHAR, full_name VARCHAR, phone VARCHAR, marketing_consent BOOLEAN,
    created_at TIMESTAMP, valid_from TIMESTAMP, valid_to TIMESTAMP)"""
SIGNED_UP = AS_OF - timedelta(days=365)

SEGMENTS = ("power", "regular", "engaged", "casual", "dormant")
CITIES = ("Paris", "Rome", "Tokyo", "Lisbon", "Cancun", "Miami", "Oslo")


def segment_row(i: int, segment: str | None = None, searches: int | None = None) -> tuple:
    return (
        f"user_{i}",
        segment or SEGMENTS[i % 5],
        searches if searches is not None else i * 3,
        i,
        i % 4,
        round(i * 12.5, 2),
        AS_OF - timedelta(days=30 + i % 7),
        AS_OF - timedelta(hours=i % 48),
        AS_OF,
        i * 2,
        ("web", "ios", "android")[i % 3],
        ("US", "FR", None)[i % 3],
    )


def trigger_row(i: int) -> tuple:
    return (
        f"trg_{i:04d}",
        f"user_{i}",
        f"sess_{i}",
        "abandoned_search",
        CITIES[i % 7],
        2 + i % 3,
        AS_OF - timedelta(hours=3, minutes=i),
        AS_OF - timedelta(hours=2, minutes=i),
        AS_OF,
    )


def reco_row(i: int, score: float | None = None, n: int = 3) -> tuple:
    dests = [CITIES[(i + k) % 7] for k in range(n)] + [None] * (3 - n)
    return (
        f"user_{i}",
        *dests,
        score if score is not None else round(0.1 + (i % 9) / 10, 2),
        AS_OF,
    )


def contact_row(
    user_id: str,
    consent: bool = True,
    valid_from: datetime = SIGNED_UP,
    valid_to: datetime | None = None,
    email: str | None = None,
) -> tuple:
    """One version of a user's contact details in the restricted store."""
    address = email or f"{user_id}@example.test"
    return (
        user_id,
        address,
        f"Name {user_id}",
        "+1 555 0100",
        consent,
        SIGNED_UP,
        valid_from,
        valid_to,
    )


def contact_rows(triggers) -> list[tuple]:
    """A consented profile, valid since signup, for every trigger's user."""
    return [contact_row(u) for u in sorted({t[1] for t in triggers if t[1] is not None})]
