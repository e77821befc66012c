"""The hand-made raw data behind the business-rule tests: each user is one rule's exact case."""

from __future__ import annotations

from datetime import datetime, timedelta

from .rawdata import T0, Raw

AS_OF = datetime(2024, 6, 4, 12, 0, 0)  # the latest event of the base data (casual's search)
H = timedelta(hours=1)
M = timedelta(minutes=1)
# The dbt project's marts, the tables the rules and the incremental-equals-full checks read.
MARTS = (
    "analytics.fct_search_funnel",
    "analytics.dim_users",
    "marketing.mart_user_segments",
    "marketing.mart_recommendations",
    "marketing.mart_email_triggers",
    "marketing.mart_campaign_attribution",
    "ml.user_features",
)


def base() -> tuple[Raw, dict[str, str]]:
    """The base data and the ids the tests name."""
    r = Raw()
    ids: dict[str, str] = {}
    # power: 3 conversions in 3 sessions.
    for n in range(3):
        r.journey(T0 + 2 * n * H, "power", f"power-{n}", destination="Paris", value=100.10)
    # regular: one conversion; its search is also re-sent (a duplicated raw event).
    s, _, _ = r.journey(T0 + H, "regular", "regular-1", destination="Rome", value=55.55)
    ids["duplicated_search"] = s
    r.events.append(dict(next(e for e in r.events if e["event_id"] == s)))
    # late_booker: booked 25 hours after the click: outside the window, still a booking.
    _, _, v = r.journey(
        T0 + H, "late_booker", "late-1", destination="Oslo", convert_after=25 * H, value=77.0
    )
    ids["late_conversion"] = v
    # engaged: no conversion, 3 clicks, seen 10 hours before as_of.
    s = r.search(AS_OF - 10 * H, "engaged", "engaged-1", "Berlin")
    for n in range(3):
        r.click(AS_OF - 10 * H + (n + 1) * M, "engaged", "engaged-1", s, "Berlin")
    # casual: one search at as_of; dormant: one search 20 days earlier.
    r.search(AS_OF, "casual", "casual-1", "Madrid")
    r.search(AS_OF - timedelta(days=20), "dormant", "dormant-1", "Vienna")
    # splitter: 31 idle minutes split session "split"; 29 do not split "nosplit".
    r.search(T0 + 6 * H, "splitter", "split", "Lisbon")
    r.search(T0 + 6 * H + 31 * M, "splitter", "split", "Lisbon")
    r.search(T0 + 8 * H, "splitter", "nosplit", "Lisbon")
    r.search(T0 + 8 * H + 29 * M, "splitter", "nosplit", "Lisbon")
    # anonymous journey with a booking: in the funnel, not in user marts.
    r.journey(
        T0 + 2 * H,
        None,
        "anon-1",
        destination="Paris",
        value=10.0,
        utm_source="google",
        utm_campaign="summer",
    )
    # abandoner: searched 5 hours before as_of, no booking -> one trigger.
    r.search(AS_OF - 5 * H, "abandoner", "ab-1", "Athens")
    # hasty: searched 30 minutes before as_of -> too recent for a trigger.
    r.search(AS_OF - 30 * M, "hasty", "hasty-1", "Athens")
    # returner: searched 30 hours before as_of, booked 20 hours later -> no trigger.
    r.search(AS_OF - 30 * H, "returner", "rt-1", "Prague")
    r.journey(AS_OF - 10 * H, "returner", "rt-2", destination="Prague", value=20.0)
    return r, ids


def next_day() -> tuple[Raw, dict[str, str]]:
    """A second batch: the next day's events plus a late one for the latest day already built."""
    r = Raw()
    r._n = 50_000  # ids never collide with the base batch
    ids: dict[str, str] = {}
    r.journey(AS_OF + 20 * H, "casual", "casual-2", destination="Madrid", value=30.0)
    # Late: happened 2 hours before the previous as_of (same day), arrives only now.
    ids["late_search"] = r.search(AS_OF - 2 * H, "newcomer", "late-arrival", "Dublin")
    return r, ids
