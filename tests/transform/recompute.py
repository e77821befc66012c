"""An independent recomputation of the marts' key figures from the raw tables, in pandas.

Deliberately shares nothing with the dbt models: it reads the raw rows of the batches the ledger
published (held and discarded batches are not data yet), parses the JSON payloads in Python, drops
duplicate event ids and applies the spec's rules directly. The tests compare the marts
with it: funnel totals and revenue to the cent, every known user's segment, one row per user.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

import duckdb
import pandas as pd

WINDOW = pd.Timedelta(hours=24)
CASUAL_DAYS = pd.Timedelta(days=14)
ENGAGEMENT_DAYS = pd.Timedelta(days=30)
ENGAGEMENT_WEIGHTS = {"search": 1, "click": 3, "conversion": 5}


def _events(con: duckdb.DuckDBPyConnection, event_type: str) -> pd.DataFrame:
    raw = con.execute(
        f"SELECT event_id, event_time, CAST(payload AS VARCHAR) FROM raw.{event_type}_events "
        "WHERE batch_id IN (SELECT batch_id FROM ops.batches "
        "WHERE stage = 'ingestion' AND state = 'published') "
        "ORDER BY ingested_at, batch_id"
    ).fetchall()
    rows = []
    seen: set[str] = set()
    for event_id, event_time, payload in raw:
        if event_id in seen:
            continue
        seen.add(event_id)
        body = json.loads(payload)
        body["event_id"] = event_id
        body["event_time"] = pd.Timestamp(event_time)
        rows.append(body)
    frame = pd.DataFrame(rows)
    if frame.empty:
        frame = pd.DataFrame(columns=["event_id", "event_time", "user_id"])
    return frame


def _lost_bookings(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Bookings whose newest version the application reports as cancelled or refunded."""
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_schema = 'raw' AND table_name = 'app_bookings'"
    ).fetchone()[0]
    if not exists:
        return set()
    rows = con.execute(
        "SELECT booking_id FROM raw.app_bookings WHERE batch_id IN (SELECT batch_id FROM "
        "ops.batches WHERE stage = 'ingestion' AND state = 'published') "
        "QUALIFY row_number() OVER (PARTITION BY booking_id ORDER BY updated_at DESC) = 1 "
        "AND status <> 'confirmed'"
    ).fetchall()
    return {r[0] for r in rows}


def _cents(value: object) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)


@dataclass
class Expected:
    searches: int
    clicks: int
    conversions: int
    revenue: Decimal
    segments: dict[str, str]
    as_of: pd.Timestamp
    # user -> (engagement_score, primary_platform, primary_country)
    crm_fields: dict[str, tuple[int, str | None, str | None]]


def recompute(con: duckdb.DuckDBPyConnection) -> Expected:
    searches = _events(con, "search")
    clicks = _events(con, "click")
    conversions = _events(con, "conversion")
    as_of = max(
        frame["event_time"].max() for frame in (searches, clicks, conversions) if len(frame)
    )

    # Journey conversions: the click exists and the booking is 0..24 h after it.
    joined = conversions.merge(
        clicks[["event_id", "event_time"]].rename(
            columns={"event_id": "click_event_id", "event_time": "clicked_at"}
        ),
        on="click_event_id",
        how="left",
    )
    delay = joined["event_time"] - joined["clicked_at"]
    within = joined[(delay >= pd.Timedelta(0)) & (delay <= WINDOW)]
    revenue = sum((_cents(v) for v in within["booking_value"]), Decimal("0.00"))

    # Segments per known user: all bookings count.
    known = pd.concat(
        [
            searches[["user_id", "event_time"]].assign(kind="search"),
            clicks[["user_id", "event_time"]].assign(kind="click"),
            conversions[["user_id", "event_time"]].assign(kind="conversion"),
        ]
    ).dropna(subset=["user_id"])
    # Segments count net bookings: a conversion whose booking the application now reports as
    # cancelled or refunded (newest version in raw.app_bookings of a published batch) is left out.
    lost = _lost_bookings(con)
    net = conversions[~conversions["event_id"].isin(lost)] if len(conversions) else conversions
    per_user = known.groupby("user_id").agg(
        last_seen=("event_time", "max"),
        clicks=("kind", lambda k: int((k == "click").sum())),
    )
    net_counts = net.dropna(subset=["user_id"]).groupby("user_id").size()
    per_user["conversions"] = net_counts.reindex(per_user.index, fill_value=0).astype(int)
    segments: dict[str, str] = {}
    for user_id, row in per_user.iterrows():
        if row.conversions >= 3:
            segment = "power"
        elif row.conversions >= 1:
            segment = "regular"
        elif row.clicks >= 3:
            segment = "engaged"
        elif row.last_seen >= as_of - CASUAL_DAYS:
            segment = "casual"
        else:
            segment = "dormant"
        segments[str(user_id)] = segment
    crm_fields = _crm_fields(known, searches, as_of, list(segments))
    return Expected(
        searches=len(searches),
        clicks=len(clicks),
        conversions=len(within),
        revenue=revenue,
        segments=segments,
        as_of=pd.Timestamp(as_of),
        crm_fields=crm_fields,
    )


def _most_common(values: pd.Series) -> str | None:
    """The value of most rows, ties alphabetically first; None when no row names one."""
    counts = values.dropna().value_counts()
    if counts.empty:
        return None
    top = counts.max()
    return str(min(v for v, n in counts.items() if n == top))


def _crm_fields(
    known: pd.DataFrame, searches: pd.DataFrame, as_of: object, users: list[str]
) -> dict[str, tuple[int, str | None, str | None]]:
    """engagement_score, primary_platform and primary_country per user, from the spec's words."""
    recent = known[known["event_time"] > pd.Timestamp(as_of) - ENGAGEMENT_DAYS]
    scores = recent.groupby("user_id")["kind"].agg(lambda k: sum(ENGAGEMENT_WEIGHTS[x] for x in k))
    country = searches["geo"].map(lambda g: g.get("country") if isinstance(g, dict) else None)
    frame = pd.DataFrame(
        {"user_id": searches["user_id"], "platform": searches.get("platform"), "country": country}
    ).dropna(subset=["user_id"])
    by_user = {str(u): g for u, g in frame.groupby("user_id")}
    out = {}
    for user in users:
        group = by_user.get(user)
        platform = _most_common(group["platform"]) if group is not None else None
        place = _most_common(group["country"]) if group is not None else None
        out[user] = (int(scores.get(user, 0)), platform, place)
    return out


def mismatches(con: duckdb.DuckDBPyConnection, keys: dict[str, str] | None = None) -> list[str]:
    """Every difference between the marts and the recomputation, as readable lines.

    ``keys`` maps the marts' user keys (pseudonyms) back to the ids the recomputation uses
    (:func:`tests.transform.keys.key_map`)."""
    keys = keys or {}
    expected = recompute(con)
    problems: list[str] = []
    total = con.execute(
        "SELECT sum(searches), sum(clicks), sum(conversions), sum(revenue) "
        "FROM analytics.fct_search_funnel"
    ).fetchone()
    actual = (int(total[0] or 0), int(total[1] or 0), int(total[2] or 0), total[3] or Decimal(0))
    wanted = (expected.searches, expected.clicks, expected.conversions, expected.revenue)
    for name, got, want in zip(
        ("searches", "clicks", "conversions", "revenue"), actual, wanted, strict=True
    ):
        if Decimal(str(got)) != Decimal(str(want)):
            problems.append(f"funnel {name}: mart {got} != recomputed {want}")
    rows = con.execute(
        "SELECT user_id, segment, as_of FROM marketing.mart_user_segments"
    ).fetchall()
    users = [r[0] for r in rows]
    if len(users) != len(set(users)):
        problems.append("mart_user_segments has more than one row for a user")
    got_segments = {keys.get(r[0], r[0]): r[1] for r in rows}
    if set(got_segments) != set(expected.segments):
        problems.append(
            f"users differ: {len(set(got_segments) ^ set(expected.segments))} not in both"
        )
    wrong = [u for u in expected.segments if got_segments.get(u) != expected.segments[u]]
    if wrong:
        sample = ", ".join(
            f"{u}: {got_segments.get(u)} != {expected.segments[u]}" for u in wrong[:5]
        )
        problems.append(f"{len(wrong)} segments differ ({sample})")
    fields = {
        keys.get(r[0], r[0]): (int(r[1]), r[2], r[3])
        for r in con.execute(
            "SELECT user_id, engagement_score, primary_platform, primary_country "
            "FROM marketing.mart_user_segments"
        ).fetchall()
    }
    off = [u for u in expected.crm_fields if fields.get(u) != expected.crm_fields[u]]
    if off:
        sample = ", ".join(f"{u}: {fields.get(u)} != {expected.crm_fields[u]}" for u in off[:5])
        problems.append(f"{len(off)} users' engagement/platform/country differ ({sample})")
    if rows and pd.Timestamp(rows[0][2]) != expected.as_of:
        problems.append(f"as_of {rows[0][2]} != latest event time {expected.as_of}")
    return problems
