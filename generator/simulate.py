"""The behaviour model, simulated column-wise with numpy.

Users
    A pool of ``users`` ids (``user_000123``) whose habits are drawn once from the seed and the pool
    size alone, so a user behaves the same way in every run with that seed: a small share of
    *power users* (``power_user_share``) are very active, click more and book far more; everybody
    else mostly browses. Each user also has a home city, a usual platform/device, two favourite
    destinations and a usual marketing channel. A share of sessions (``anonymous_rate``) is
    anonymous traffic (``user_id`` null) with average habits.
Sessions
    1-5 searches each. Session starts follow the traffic shape: day of the range by weekday factor
    times seasonality, hour of day by a peak-hour profile (UTC). Searches in a session are minutes
    apart; a search is clicked with probability ``click_through_rate`` times the user's click
    affinity, a click converts with ``conversion_rate`` times the user's booking affinity (both
    affinities normalised over the batch so the overall rates match the configured ones).
Timing
    A click follows its search by seconds to a few minutes; a conversion follows its click by
    minutes (80%), hours (16%) or 26-72 hours (4%, outside the 24 h conversion window). Every
    child is strictly later than its parent.
Exact size
    Sessions are drawn until they hold at least the clean event count; the last session is cut
    by dropping its latest events, which never orphans a click or a conversion.

All draws come from ``numpy.random.default_rng([seed, stream])`` with one stream per concern, so
the same config always gives the same arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pyarrow as pa

from generator import vocab
from generator.config import GeneratorConfig
from generator.text import (
    US_PER_DAY,
    compose,
    digits,
    fixed_strings,
    fragments,
    integers,
    join,
    money,
    take_rows,
    timestamp_bytes,
    uuid_bytes,
)

USER_STREAM, SESSION_STREAM, ID_STREAM = 1, 2, 3
SECOND = 1_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE


@dataclass(frozen=True)
class UserPool:
    """Per-user habits, index = user number."""

    is_power: np.ndarray
    activity: np.ndarray
    click_affinity: np.ndarray
    booking_affinity: np.ndarray
    home: np.ndarray
    platform_device: np.ndarray
    favourites: np.ndarray  # (users, 2) destination indexes
    channel: np.ndarray
    activity_cdf: np.ndarray  # of the activity as shares: who a session belongs to

    @property
    def size(self) -> int:
        return len(self.activity)

    def pick(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``rng.choice(size, n, p=activity shares)``, the same draws and the same users, with
        the CDF built once per pool and the uniforms looked up in sorted order (a pool of a
        million users is larger than the cache: random lookups miss it every time)."""
        uniforms = rng.random(n)
        order = np.argsort(uniforms)
        picked = np.empty(n, np.int64)
        picked[order] = self.activity_cdf.searchsorted(uniforms[order], side="right")
        return picked


def user_id_width(users: int) -> int:
    return max(6, len(str(users - 1)))


@lru_cache(maxsize=1)
def user_names(users: int) -> pa.Array:
    """``user_000123`` of every user of a pool of ``users``, built once per pool size (every part
    of a batch gathers from it; built before the workers fork, they share it)."""
    return fixed_strings(compose(users, ["user_", digits(np.arange(users), user_id_width(users))]))


@lru_cache(maxsize=1)
def user_json(users: int) -> pa.Array:
    """The ids of :func:`user_names` as JSON strings, and ``null`` last (an anonymous session)."""
    quoted = compose(users, ['"user_', digits(np.arange(users), user_id_width(users)), '"'])
    return pa.concat_arrays([fixed_strings(quoted), pa.array(["null"])])


def build_users(config: GeneratorConfig) -> UserPool:
    """Draw every user's habits once; depends only on the seed and the pool size (and the power
    user share), so the parts of a batch share one pool, drawn once per process."""
    return _users(config.seed, config.users, config.power_user_share)


@lru_cache(maxsize=1)
def _users(seed: int, n: int, power_user_share: float) -> UserPool:
    rng = np.random.default_rng([seed, USER_STREAM])
    is_power = rng.random(n) < power_user_share
    activity = np.where(is_power, rng.lognormal(np.log(12.0), 0.4, n), rng.lognormal(0.0, 0.7, n))
    click_affinity = np.where(
        is_power, 1.7 * rng.lognormal(0.0, 0.15, n), 0.85 * rng.lognormal(0.0, 0.25, n)
    )
    booking_affinity = np.where(
        is_power, 4.0 * rng.lognormal(0.0, 0.2, n), 0.35 * rng.lognormal(0.0, 0.4, n)
    )
    home = rng.choice(len(vocab.GEOS), n, p=_norm(vocab.GEO_WEIGHTS))
    platform_device = rng.choice(
        len(vocab.PLATFORM_DEVICES), n, p=_norm(vocab.PLATFORM_DEVICE_WEIGHTS)
    )
    favourites = rng.choice(len(vocab.DESTINATIONS), (n, 2), p=_norm(vocab.DESTINATION_WEIGHTS))
    channel = rng.choice(len(vocab.CHANNELS), n, p=_norm(vocab.CHANNEL_WEIGHTS))
    cdf = _norm(activity).cumsum()  # as numpy's choice builds it from p
    cdf /= cdf[-1]
    return UserPool(
        is_power,
        activity,
        click_affinity,
        booking_affinity,
        home,
        platform_device,
        favourites,
        channel,
        cdf,
    )


@dataclass
class Searches:
    ts: np.ndarray
    session: np.ndarray
    user: np.ndarray  # -1 = anonymous
    template: np.ndarray
    destination: np.ndarray
    results_count: np.ndarray
    page: np.ndarray
    platform_device: np.ndarray
    geo: np.ndarray
    channel: np.ndarray


@dataclass
class Clicks:
    ts: np.ndarray
    search: np.ndarray  # index into searches
    position: np.ndarray
    product: np.ndarray
    price_cents: np.ndarray
    provider: np.ndarray  # index into the product's providers
    result_number: np.ndarray


@dataclass
class Conversions:
    ts: np.ndarray
    click: np.ndarray  # index into clicks
    booking_cents: np.ndarray
    commission_cents: np.ndarray


@dataclass
class Simulation:
    """The well-formed events of a batch, columnar, each type in timestamp order."""

    config: GeneratorConfig
    users: UserPool
    searches: Searches
    clicks: Clicks
    conversions: Conversions
    session_ids: np.ndarray  # (sessions, 36) bytes
    ids: dict[str, np.ndarray] = field(default_factory=dict)  # type -> (n, 36) event ids
    _lines: dict[str, pa.Array] = field(default_factory=dict)

    def count(self, event_type: str) -> int:
        return len(self._part(event_type).ts)

    def timestamps(self, event_type: str) -> np.ndarray:
        return self._part(event_type).ts

    def _part(self, event_type: str) -> Searches | Clicks | Conversions:
        return {"search": self.searches, "click": self.clicks, "conversion": self.conversions}[
            event_type
        ]

    # --- derived columns shared by the lines and the tables ------------------------------------

    def _user_of(self, event_type: str) -> np.ndarray:
        if event_type == "search":
            return self.searches.user
        if event_type == "click":
            return self.searches.user[self.clicks.search]
        return self.searches.user[self.clicks.search[self.conversions.click]]

    def _session_of(self, event_type: str) -> np.ndarray:
        if event_type == "search":
            return self.searches.session
        if event_type == "click":
            return self.searches.session[self.clicks.search]
        return self.searches.session[self.clicks.search[self.conversions.click]]

    def _provider_index(self) -> np.ndarray:
        """Index into the flat provider list of each click."""
        offsets = np.cumsum([0, *(len(p) for p in vocab.PROVIDERS)])[:-1]
        return offsets[self.clicks.product] + self.clicks.provider

    def _user_fragments(self, event_type: str) -> pa.Array:
        """``"user_000123"`` or ``null`` per event, gathered from the pool's texts built once."""
        texts = user_json(self.config.users)
        users = self._user_of(event_type)
        return texts.take(pa.array(np.where(users < 0, len(texts) - 1, users)))

    # --- JSON lines ----------------------------------------------------------------------------

    def lines(self, event_type: str, end: str = "") -> pa.Array:
        """The events of one type as JSON text (the contract's shape), in timestamp order, each
        followed by ``end`` (``"\\n"``: the JSONL file's bytes as they are, with no second copy
        to add the newlines)."""
        key = event_type + end
        if key not in self._lines:
            self._lines[key] = {
                "search": self._search_lines,
                "click": self._click_lines,
                "conversion": self._conversion_lines,
            }[event_type](end)
        return self._lines[key]

    def _head(self, event_type: str) -> list[pa.Array | str]:
        """The pieces of a line up to the user id, for :func:`join` (fixed-width columns as Arrow
        views of their byte matrices: the line is copied once, by the join)."""
        return [
            '{"event_id":"',
            fixed_strings(self.ids[event_type]),
            f'","event_type":"{event_type}","timestamp":"',
            fixed_strings(timestamp_bytes(self.timestamps(event_type))),
            '","user_id":',
        ]

    def _search_lines(self, end: str) -> pa.Array:
        s = self.searches
        session = fixed_strings(take_rows(self.session_ids, s.session))
        nd = len(vocab.DESTINATIONS)
        query_texts = [
            f'{pre}{dest}{post}","destination":"{dest}","results_count":'
            for pre, post, _ in vocab.QUERY_TEMPLATES
            for dest in vocab.DESTINATIONS
        ]
        query = fragments(query_texts, s.template * nd + s.destination)
        tail_texts, tail_index = _search_tail(s)
        tail = fragments([t + end for t in tail_texts], tail_index)
        return join(
            *self._head("search"),
            self._user_fragments("search"),
            ',"session_id":"',
            session,
            '","query":"',
            query,
            integers(s.results_count),
            tail,
        )

    def _click_lines(self, end: str) -> pa.Array:
        c = self.clicks
        n = len(c.ts)
        prefixes = np.array(
            [np.frombuffer(p.encode(), np.uint8) for p in vocab.PRODUCT_PREFIX], dtype=np.uint8
        )
        middle = fixed_strings(
            compose(
                n,
                [
                    ',"session_id":"',
                    take_rows(self.session_ids, self._session_of("click")),
                    '","search_event_id":"',
                    take_rows(self.ids["search"], c.search),
                    '","result_id":"',
                    prefixes[c.product],
                    "_",
                    digits(c.result_number, 6),
                    '","result_position":',
                ],
            )
        )
        product = fragments(
            [f',"result_type":"{p}","result_price":' for p in vocab.PRODUCT_TYPES], c.product
        )
        flat_providers = [p for group in vocab.PROVIDERS for p in group]
        ends = [
            f',"result_destination":"{d}","result_provider":"{p}"}}{end}'
            for d in vocab.DESTINATIONS
            for p in flat_providers
        ]
        destination = self.searches.destination[c.search]
        tail = fragments(ends, destination * len(flat_providers) + self._provider_index())
        return join(
            *self._head("click"),
            self._user_fragments("click"),
            middle,
            integers(c.position),
            product,
            money(c.price_cents),
            tail,
        )

    def _conversion_lines(self, end: str) -> pa.Array:
        v = self.conversions
        n = len(v.ts)
        middle = fixed_strings(
            compose(
                n,
                [
                    ',"session_id":"',
                    take_rows(self.session_ids, self._session_of("conversion")),
                    '","click_event_id":"',
                    take_rows(self.ids["click"], v.click),
                    '","booking_value":',
                ],
            )
        )
        flat_providers = [
            (t, p)
            for t, group in zip(vocab.PRODUCT_TYPES, vocab.PROVIDERS, strict=True)
            for p in group
        ]
        ends = [
            f',"currency":"{vocab.CURRENCY}","product_type":"{t}","provider":"{p}"}}{end}'
            for t, p in flat_providers
        ]
        tail = fragments(ends, self._provider_index()[v.click])
        return join(
            *self._head("conversion"),
            self._user_fragments("conversion"),
            middle,
            money(v.booking_cents),
            ',"commission":',
            money(v.commission_cents),
            tail,
        )

    # --- typed tables ----------------------------------------------------------------------------

    def table(self, event_type: str) -> pa.Table:
        """The well-formed events of one type as typed columns (geo flattened), timestamp order."""
        extra = {
            "search": self._search_columns,
            "click": self._click_columns,
            "conversion": self._conversion_columns,
        }[event_type]()
        return pa.table({**self._common_columns(event_type), **extra})

    def _common_columns(self, event_type: str) -> dict[str, pa.Array]:
        """event_id, event_type, timestamp, user_id, session_id."""
        users = self._user_of(event_type)
        names = user_names(self.config.users)
        return {
            "event_id": fixed_strings(self.ids[event_type]),
            "event_type": pa.array([event_type] * self.count(event_type), pa.string()),
            "timestamp": pa.array(self.timestamps(event_type), type=pa.timestamp("us", tz="UTC")),
            "user_id": names.take(pa.array(users, pa.int64(), mask=users < 0)),
            "session_id": fixed_strings(take_rows(self.session_ids, self._session_of(event_type))),
        }

    def _search_columns(self) -> dict[str, pa.Array]:
        s = self.searches
        pd_ = np.array(vocab.PLATFORM_DEVICES, dtype=object)
        geo = np.array(vocab.GEOS, dtype=object)
        channel = np.array(vocab.CHANNELS, dtype=object)
        templates = vocab.QUERY_TEMPLATES
        query_texts = [f"{a}{d}{b}" for a, b, _ in templates for d in vocab.DESTINATIONS]
        return {
            "query": fragments(query_texts, s.template * len(vocab.DESTINATIONS) + s.destination),
            "destination": fragments(vocab.DESTINATIONS, s.destination),
            "results_count": pa.array(s.results_count, pa.int64()),
            "page": pa.array(s.page, pa.int64()),
            "platform": fragments(list(pd_[:, 0]), s.platform_device),
            "device_type": fragments(list(pd_[:, 1]), s.platform_device),
            "geo_country": fragments(list(geo[:, 0]), s.geo),
            "geo_city": fragments(list(geo[:, 1]), s.geo),
            "utm_source": fragments(list(channel[:, 0]), s.channel),
            "utm_campaign": fragments(list(channel[:, 1]), s.channel),
        }

    def _click_columns(self) -> dict[str, pa.Array]:
        c = self.clicks
        flat_providers = [p for group in vocab.PROVIDERS for p in group]
        prefixes = np.array([np.frombuffer(p.encode(), np.uint8) for p in vocab.PRODUCT_PREFIX])
        result_ids = fixed_strings(
            compose(len(c.ts), [prefixes[c.product], "_", digits(c.result_number, 6)])
        )
        return {
            "search_event_id": fixed_strings(take_rows(self.ids["search"], c.search)),
            "result_id": result_ids,
            "result_position": pa.array(c.position, pa.int64()),
            "result_type": fragments(vocab.PRODUCT_TYPES, c.product),
            "result_price": pa.array(c.price_cents / 100.0, pa.float64()),
            "result_destination": fragments(
                vocab.DESTINATIONS, self.searches.destination[c.search]
            ),
            "result_provider": fragments(flat_providers, self._provider_index()),
        }

    def _conversion_columns(self) -> dict[str, pa.Array]:
        v = self.conversions
        flat_providers = [p for group in vocab.PROVIDERS for p in group]
        return {
            "click_event_id": fixed_strings(take_rows(self.ids["click"], v.click)),
            "booking_value": pa.array(v.booking_cents / 100.0, pa.float64()),
            "commission": pa.array(v.commission_cents / 100.0, pa.float64()),
            "currency": pa.array([vocab.CURRENCY] * len(v.ts), pa.string()),
            "product_type": fragments(vocab.PRODUCT_TYPES, self.clicks.product[v.click]),
            "provider": fragments(flat_providers, self._provider_index()[v.click]),
        }


def _search_tail(s: Searches) -> tuple[list[str], np.ndarray]:
    """Fragments from ``,"page":`` to the closing brace: every (page, platform, geo, channel)."""
    texts: list[str] = []
    for page in (1, 2, 3):
        for platform, device in vocab.PLATFORM_DEVICES:
            for country, city in vocab.GEOS:
                for source, campaign in vocab.CHANNELS:
                    src = "null" if source is None else f'"{source}"'
                    camp = "null" if campaign is None else f'"{campaign}"'
                    texts.append(
                        f',"page":{page},"platform":"{platform}","device_type":"{device}",'
                        f'"geo":{{"country":"{country}","city":"{city}"}},'
                        f'"utm_source":{src},"utm_campaign":{camp}}}'
                    )
    npd, ngeo, nch = len(vocab.PLATFORM_DEVICES), len(vocab.GEOS), len(vocab.CHANNELS)
    index = ((s.page - 1) * npd + s.platform_device) * ngeo * nch + s.geo * nch + s.channel
    return texts, index


def _norm(weights: np.ndarray) -> np.ndarray:
    weights = np.asarray(weights, dtype=float)
    return weights / weights.sum()


def _group_cumsum(values: np.ndarray, group_sizes: np.ndarray) -> np.ndarray:
    """Cumulative sum restarting at each group (groups are consecutive runs of given sizes)."""
    total = np.cumsum(values)
    starts = np.cumsum(group_sizes) - group_sizes
    before = np.where(starts > 0, total[np.maximum(starts - 1, 0)], 0)
    return total - np.repeat(before, group_sizes)


def _day_weights(config: GeneratorConfig) -> tuple[np.ndarray, np.ndarray]:
    """Epoch-day numbers of the range and their traffic weights (weekday x season)."""
    first = np.datetime64(config.start_datetime.date(), "D").astype(np.int64)
    days = first + np.arange(config.days)
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    year_start = (
        np.array(days, dtype="datetime64[D]").astype("datetime64[Y]").astype("datetime64[D]")
    ).astype(np.int64)
    day_of_year = days - year_start + 1
    weights = vocab.WEEKDAY_WEIGHTS[weekday] * vocab.seasonality(day_of_year)
    return days, _norm(weights)


def _expected_events_per_session(config: GeneratorConfig) -> float:
    return 3.0 * (1.0 + config.click_through_rate * (1.0 + config.conversion_rate))


@dataclass
class Sessions:
    """Per session: who (-1 = anonymous), how many searches, when it starts, and its context."""

    user: np.ndarray
    searches: np.ndarray  # 1-5 searches each
    start: np.ndarray
    platform_device: np.ndarray
    geo: np.ndarray
    channel: np.ndarray


def _draw(config: GeneratorConfig, users: UserPool, sessions: int):
    """One attempt: ``sessions`` sessions with all their events (untrimmed).

    One generator for the attempt, drawn from in a fixed order (sessions, then searches, clicks,
    conversions): the same config always draws the same numbers.
    """
    rng = np.random.default_rng([config.seed, SESSION_STREAM, sessions, *config.salt])
    drawn = _draw_sessions(rng, config, users, sessions)
    searches, clicked = _draw_searches(rng, config, users, drawn)
    clicks, converted = _draw_clicks(rng, config, users, searches, clicked)
    conversions = _draw_conversions(rng, clicks, converted)
    return searches, clicks, conversions


def _draw_sessions(
    rng: np.random.Generator, config: GeneratorConfig, users: UserPool, ns: int
) -> Sessions:
    """Who each session is, when it starts (day x hour profile) and its platform, geo, channel."""
    anonymous = rng.random(ns) < config.anonymous_rate
    user = np.where(anonymous, -1, users.pick(rng, ns))
    known = user >= 0
    safe_user = np.where(known, user, 0)
    k = rng.integers(1, 6, ns)

    days, day_w = _day_weights(config)
    day = days[rng.choice(len(days), ns, p=day_w)]
    hour = rng.choice(24, ns, p=_norm(vocab.HOUR_WEIGHTS))
    start = day * US_PER_DAY + hour * HOUR + rng.integers(0, HOUR, ns)

    switch = rng.random(ns) < 0.1
    random_pd = rng.choice(len(vocab.PLATFORM_DEVICES), ns, p=_norm(vocab.PLATFORM_DEVICE_WEIGHTS))
    session_pd = np.where(known & ~switch, users.platform_device[safe_user], random_pd)
    random_geo = rng.choice(len(vocab.GEOS), ns, p=_norm(vocab.GEO_WEIGHTS))
    session_geo = np.where(known, users.home[safe_user], random_geo)
    random_channel = rng.choice(len(vocab.CHANNELS), ns, p=_norm(vocab.CHANNEL_WEIGHTS))
    usual = known & (rng.random(ns) < 0.5)
    session_channel = np.where(usual, users.channel[safe_user], random_channel)
    return Sessions(user, k, start, session_pd, session_geo, session_channel)


def _draw_searches(
    rng: np.random.Generator, config: GeneratorConfig, users: UserPool, sessions: Sessions
) -> tuple[Searches, np.ndarray]:
    """The searches of every session, minutes apart, and which of them are clicked."""
    k = sessions.searches
    sess = np.repeat(np.arange(len(k)), k)
    n_s = len(sess)
    gaps = np.where(
        _group_cumsum(np.ones(n_s, np.int64), k) > 1,
        5 * SECOND + rng.exponential(150 * SECOND, n_s).astype(np.int64),
        0,
    )
    s_ts = sessions.start[sess] + _group_cumsum(gaps, k)
    s_user = sessions.user[sess]
    s_known = s_user >= 0
    s_safe = np.where(s_known, s_user, 0)
    popular = rng.choice(len(vocab.DESTINATIONS), n_s, p=_norm(vocab.DESTINATION_WEIGHTS))
    favourite = users.favourites[s_safe, rng.integers(0, 2, n_s)]
    destination = np.where(s_known & (rng.random(n_s) < 0.6), favourite, popular)
    template = rng.choice(len(vocab.QUERY_TEMPLATES), n_s, p=_norm(vocab.QUERY_WEIGHTS))
    results_count = rng.integers(10, 101, n_s)
    page = rng.choice(3, n_s, p=[0.8, 0.15, 0.05]) + 1
    click_aff = np.where(s_known, users.click_affinity[s_safe], 1.0)
    p_click = np.clip(config.click_through_rate * click_aff / click_aff.mean(), 0.0, 1.0)
    clicked = rng.random(n_s) < p_click
    searches = Searches(
        s_ts,
        sess,
        s_user,
        template,
        destination,
        results_count,
        page,
        sessions.platform_device[sess],
        sessions.geo[sess],
        sessions.channel[sess],
    )
    return searches, clicked


def _draw_clicks(
    rng: np.random.Generator,
    config: GeneratorConfig,
    users: UserPool,
    searches: Searches,
    clicked: np.ndarray,
) -> tuple[Clicks, np.ndarray]:
    """One click per clicked search (product, position, price, provider), and which convert."""
    c_src = np.flatnonzero(clicked)
    n_c = len(c_src)
    c_ts = searches.ts[c_src] + 2 * SECOND + rng.exponential(45 * SECOND, n_c).astype(np.int64)
    wanted = np.array(
        [-1 if t[2] is None else vocab.PRODUCT_TYPES.index(t[2]) for t in vocab.QUERY_TEMPLATES]
    )[searches.template[c_src]]
    product = np.where(wanted >= 0, wanted, rng.integers(0, len(vocab.PRODUCT_TYPES), n_c))
    position = np.minimum(rng.geometric(0.3, n_c), 30)
    price = np.exp(
        np.log(vocab.PRICE_MEDIAN[product]) + vocab.PRICE_SIGMA[product] * rng.standard_normal(n_c)
    )
    price_cents = np.maximum(np.round(price * 100).astype(np.int64), 1500)
    n_providers = np.array([len(p) for p in vocab.PROVIDERS])[product]
    provider = (rng.random(n_c) * n_providers).astype(np.int64)
    result_number = rng.integers(0, 1_000_000, n_c)
    c_user = searches.user[c_src]
    c_known = c_user >= 0
    book_aff = np.where(c_known, users.booking_affinity[np.where(c_known, c_user, 0)], 1.0)
    p_conv = (
        np.clip(config.conversion_rate * book_aff / book_aff.mean(), 0.0, 1.0)
        if n_c
        else np.zeros(0)
    )
    converted = rng.random(n_c) < p_conv
    clicks = Clicks(c_ts, c_src, position, product, price_cents, provider, result_number)
    return clicks, converted


def _draw_conversions(
    rng: np.random.Generator, clicks: Clicks, converted: np.ndarray
) -> Conversions:
    """One booking per converting click: its delay (minutes, hours or past the window), value."""
    v_src = np.flatnonzero(converted)
    n_v = len(v_src)
    u = rng.random(n_v)
    delay = np.where(
        u < 0.80,
        30 * SECOND + rng.exponential(20 * MINUTE, n_v),
        np.where(
            u < 0.96, rng.uniform(1 * HOUR, 22 * HOUR, n_v), rng.uniform(26 * HOUR, 72 * HOUR, n_v)
        ),
    ).astype(np.int64)
    v_ts = clicks.ts[v_src] + delay
    multiplier = rng.integers(1, 4, n_v)
    booking = clicks.price_cents[v_src] * multiplier
    commission = np.round(booking * vocab.COMMISSION_RATE[clicks.product[v_src]]).astype(np.int64)
    return Conversions(v_ts, v_src, booking, commission)


def _take_searches(s: Searches, idx: np.ndarray) -> Searches:
    return Searches(*(getattr(s, f)[idx] for f in Searches.__dataclass_fields__))


def _take_clicks(c: Clicks, idx: np.ndarray) -> Clicks:
    return Clicks(*(getattr(c, f)[idx] for f in Clicks.__dataclass_fields__))


def _take_conversions(v: Conversions, idx: np.ndarray) -> Conversions:
    return Conversions(*(getattr(v, f)[idx] for f in Conversions.__dataclass_fields__))


def _trim(
    target: int, s: Searches, c: Clicks, v: Conversions
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which events to keep: whole sessions up to ``target`` events, the last one cut short."""
    n_sess = int(s.session.max()) + 1 if len(s.session) else 0
    c_sess = s.session[c.search]
    v_sess = c_sess[v.click]
    per_session = (
        np.bincount(s.session, minlength=n_sess)
        + np.bincount(c_sess, minlength=n_sess)
        + np.bincount(v_sess, minlength=n_sess)
    )
    cumulative = np.cumsum(per_session)
    last = int(np.searchsorted(cumulative, target))  # first session reaching the target
    excess = int(cumulative[last] - target)
    keep_s = s.session <= last
    keep_c = c_sess <= last
    keep_v = v_sess <= last
    if excess:
        # Drop the latest `excess` events of the last session: children are strictly later than
        # their parents, so a dropped parent always takes its children with it.
        kinds = np.concatenate(
            [
                np.zeros(int((s.session == last).sum()), np.int8),
                np.ones(int((c_sess == last).sum()), np.int8),
                np.full(int((v_sess == last).sum()), 2, np.int8),
            ]
        )
        where = np.concatenate(
            [
                np.flatnonzero(s.session == last),
                np.flatnonzero(c_sess == last),
                np.flatnonzero(v_sess == last),
            ]
        )
        ts = np.concatenate([s.ts[s.session == last], c.ts[c_sess == last], v.ts[v_sess == last]])
        drop = np.argsort(ts, kind="stable")[len(ts) - excess :]
        for kind, mask in ((0, keep_s), (1, keep_c), (2, keep_v)):
            mask[where[drop[kinds[drop] == kind]]] = False
    return keep_s, keep_c, keep_v


def _reindex(s, c, v, keep_s, keep_c, keep_v, order_s=None, order_c=None, order_v=None):
    """Keep rows (masks) or reorder them (index arrays), remapping the parent references."""
    idx_s = np.flatnonzero(keep_s) if order_s is None else order_s
    idx_c = np.flatnonzero(keep_c) if order_c is None else order_c
    idx_v = np.flatnonzero(keep_v) if order_v is None else order_v
    new_s = np.full(len(s.ts), -1, np.int64)
    new_s[idx_s] = np.arange(len(idx_s))
    new_c = np.full(len(c.ts), -1, np.int64)
    new_c[idx_c] = np.arange(len(idx_c))
    s2 = _take_searches(s, idx_s)
    c2 = _take_clicks(c, idx_c)
    c2.search = new_s[c2.search]
    v2 = _take_conversions(v, idx_v)
    v2.click = new_c[v2.click]
    return s2, c2, v2


def simulate(config: GeneratorConfig) -> Simulation:
    """Simulate exactly ``config.n_clean`` well-formed, linked events."""
    users = build_users(config)
    target = config.n_clean
    sessions = max(1, math.ceil(target / _expected_events_per_session(config) * 1.08) + 8)
    while True:
        s, c, v = _draw(config, users, sessions)
        if len(s.ts) + len(c.ts) + len(v.ts) >= target:
            break
        sessions = math.ceil(sessions * 1.25) + 8
    if target == 0:
        keep = (np.zeros(len(s.ts), bool), np.zeros(len(c.ts), bool), np.zeros(len(v.ts), bool))
    else:
        keep = _trim(target, s, c, v)

    # Keep the chosen events, each type in timestamp order (ties by creation order), in one pass.
    def ordered(ts: np.ndarray, mask: np.ndarray) -> np.ndarray:
        rows = np.flatnonzero(mask)
        return rows[np.argsort(ts[rows], kind="stable")]

    s, c, v = _reindex(
        s,
        c,
        v,
        None,
        None,
        None,
        order_s=ordered(s.ts, keep[0]),
        order_c=ordered(c.ts, keep[1]),
        order_v=ordered(v.ts, keep[2]),
    )
    if config.live:
        _to_wall_clock(config, s, c, v)
    # Whole sessions 0..last are kept (a cut session keeps its first search), so session numbers
    # are already dense; renumber only if that ever stops being true.
    n_sessions = int(s.session.max()) + 1 if len(s.session) else 0
    seen = np.zeros(n_sessions, bool)
    seen[s.session] = True
    if not seen.all():
        used, s.session = np.unique(s.session, return_inverse=True)
        n_sessions = len(used)
    rng = np.random.default_rng([config.seed, ID_STREAM, *config.salt])
    session_ids = uuid_bytes(rng, n_sessions)
    ids = {
        "search": uuid_bytes(rng, len(s.ts)),
        "click": uuid_bytes(rng, len(c.ts)),
        "conversion": uuid_bytes(rng, len(v.ts)),
    }
    return Simulation(config, users, s, c, v, session_ids, ids)


def _to_wall_clock(config: GeneratorConfig, s: Searches, c: Clicks, v: Conversions) -> None:
    """Live mode: the k-th event in time order happens ``k / rate`` seconds after the start."""
    ts = np.concatenate([s.ts, c.ts, v.ts])
    order = np.argsort(ts, kind="stable")
    rank = np.empty(len(ts), np.int64)
    rank[order] = np.arange(len(ts))
    start = int(config.start_datetime.timestamp() * SECOND)
    wall = start + (rank * (SECOND / config.rate)).astype(np.int64)
    s.ts = wall[: len(s.ts)]
    c.ts = wall[len(s.ts) : len(s.ts) + len(c.ts)]
    v.ts = wall[len(s.ts) + len(c.ts) :]
