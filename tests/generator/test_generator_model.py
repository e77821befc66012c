"""The generator's behaviour model: exact size, determinism, links, rates, habits, time patterns."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest

from generator import GeneratorConfig, generate
from generator.sinks import write_jsonl

TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
KEYS = {
    "search": [
        "event_id", "event_type", "timestamp", "user_id", "session_id", "query", "destination",
        "results_count", "page", "platform", "device_type", "geo", "utm_source", "utm_campaign",
    ],
    "click": [
        "event_id", "event_type", "timestamp", "user_id", "session_id", "search_event_id",
        "result_id", "result_position", "result_type", "result_price", "result_destination",
        "result_provider",
    ],
    "conversion": [
        "event_id", "event_type", "timestamp", "user_id", "session_id", "click_event_id",
        "booking_value", "commission", "currency", "product_type", "provider",
    ],
}  # fmt: skip


def parsed(batch, event_type: str) -> list[dict]:
    return [json.loads(line) for line in batch.lines(event_type).to_pylist()]


@pytest.fixture(scope="module")
def big():
    """A month of clean traffic, enough for the statistics below."""
    return generate(GeneratorConfig(events=60_000, users=2_000, seed=7, days=28))


@pytest.fixture(scope="module")
def events(big):
    return {t: parsed(big, t) for t in ("search", "click", "conversion")}


@pytest.mark.parametrize(
    "config",
    [
        GeneratorConfig(events=1, seed=1),
        GeneratorConfig(events=997, seed=2),
        GeneratorConfig(events=5_000, seed=3, malformed_rate=0.05, duplicate_rate=0.03),
        GeneratorConfig(events=4_000, seed=4, click_through_rate=1.0, conversion_rate=1.0),
        GeneratorConfig(events=0, seed=5),
    ],
)
def test_events_is_the_exact_number_of_lines(config):
    batch = generate(config)
    assert sum(len(batch.lines(t)) for t in ("search", "click", "conversion")) == config.events
    assert batch.counts()["events"] == config.events


def test_same_arguments_same_bytes_and_names(tmp_path):
    config = GeneratorConfig(events=3_000, seed=11, malformed_rate=0.02, duplicate_rate=0.02,
                             late_rate=0.02)  # fmt: skip
    first = write_jsonl(generate(config), tmp_path / "a")
    second = write_jsonl(generate(GeneratorConfig(**vars(config))), tmp_path / "b")
    for event_type, path in first["files"].items():
        other = second["files"][event_type]
        assert path.split("/")[-1] == other.split("/")[-1]
        assert Path(path).read_bytes() == Path(other).read_bytes()
    reseeded = generate(GeneratorConfig(**{**vars(config), "seed": 12}))
    assert reseeded.batch_id != generate(config).batch_id
    assert reseeded.lines("search").to_pylist() != generate(config).lines("search").to_pylist()


def test_shape_matches_the_contract(events):
    for event_type, rows in events.items():
        assert rows, event_type
        for row in rows[:500]:
            assert list(row) == KEYS[event_type]
            assert row["event_type"] == event_type
            assert TS.match(row["timestamp"])
        if event_type == "search":
            assert set(rows[0]["geo"]) == {"country", "city"}
            assert all(r["destination"] in r["query"] for r in rows[:500])


def test_every_reference_exists_and_the_chain_is_consistent(events):
    searches = {e["event_id"]: e for e in events["search"]}
    clicks = {e["event_id"]: e for e in events["click"]}
    assert len(searches) == len(events["search"])  # ids unique
    for click in events["click"]:
        search = searches[click["search_event_id"]]
        assert (click["user_id"], click["session_id"]) == (search["user_id"], search["session_id"])
        assert click["timestamp"] > search["timestamp"]
        assert click["result_destination"] == search["destination"]
    for conversion in events["conversion"]:
        click = clicks[conversion["click_event_id"]]
        assert (conversion["user_id"], conversion["session_id"]) == (
            click["user_id"],
            click["session_id"],
        )
        assert conversion["timestamp"] > click["timestamp"]
        assert conversion["product_type"] == click["result_type"]
        assert conversion["provider"] == click["result_provider"]
        assert conversion["booking_value"] >= click["result_price"]


def test_funnel_rates_follow_the_configuration(events):
    n_s, n_c, n_v = (len(events[t]) for t in ("search", "click", "conversion"))
    assert n_c / n_s == pytest.approx(0.30, abs=0.02)
    assert n_v / n_c == pytest.approx(0.10, abs=0.02)
    sessions = Counter(e["session_id"] for e in events["search"])
    assert set(sessions.values()) <= {1, 2, 3, 4, 5}
    anonymous = {e["session_id"] for e in events["search"] if e["user_id"] is None}
    assert len(anonymous) / len(sessions) == pytest.approx(0.20, abs=0.03)


def test_other_rates_are_honoured():
    batch = generate(GeneratorConfig(events=20_000, seed=8, click_through_rate=0.6,
                                     conversion_rate=0.25))  # fmt: skip
    c = batch.counts()
    assert c["click"] / c["search"] == pytest.approx(0.6, abs=0.04)
    assert c["conversion"] / c["click"] == pytest.approx(0.25, abs=0.04)


def test_power_users_search_more_and_book_far_more(events):
    searches = Counter(e["user_id"] for e in events["search"] if e["user_id"])
    bookings = Counter(e["user_id"] for e in events["conversion"] if e["user_id"])
    ranked = [u for u, _ in searches.most_common()]
    top = ranked[: len(ranked) // 10]
    rest = ranked[len(ranked) // 10 :]

    def per_search(users):
        return sum(bookings[u] for u in users) / sum(searches[u] for u in users)

    assert per_search(top) > 3 * per_search(rest)
    # most users browse: the majority never books
    assert sum(1 for u in ranked if bookings[u] == 0) > 0.6 * len(ranked)


def test_users_keep_their_habits_across_runs():
    """The same seed gives the same users the same home city, whatever the run size."""
    homes = []
    for events in (2_000, 6_000):
        batch = generate(GeneratorConfig(events=events, users=300, seed=21))
        table = batch.to_arrow("search").to_pandas()
        known = table[table.user_id.notna()]
        homes.append(known.groupby("user_id").geo_city.agg(lambda s: s.mode().iloc[0]))
    common = homes[0].index.intersection(homes[1].index)
    assert len(common) > 50
    assert (homes[0][common] == homes[1][common]).mean() == 1.0


def test_time_patterns(big):
    table = big.to_arrow("search").to_pandas()
    hours = table.timestamp.dt.hour.value_counts()
    assert hours[[19, 20]].sum() > 4 * hours[[3, 4]].sum()
    days = table.groupby(table.timestamp.dt.date).size()
    weekday = [n for d, n in days.items() if d.weekday() < 5]
    weekend = [n for d, n in days.items() if d.weekday() >= 5]
    assert np.mean(weekday) > 1.15 * np.mean(weekend)
    assert table.timestamp.min() >= datetime(2025, 1, 1, tzinfo=UTC)


def test_seasonality_summer_busier_than_autumn():
    def per_day(start):
        b = generate(GeneratorConfig(events=20_000, seed=3, start=start, days=364))
        t = b.to_arrow("search").to_pandas().timestamp
        return t.dt.month.value_counts()

    months = per_day(date(2025, 1, 1))
    assert months[7] > 1.2 * months[10]
    assert months[1] > 1.2 * months[10]


def test_conversions_mostly_within_a_day_some_beyond(big):
    conv = big.to_arrow("conversion").to_pandas()
    clicks = big.to_arrow("click").to_pandas().set_index("event_id")
    delay = conv.timestamp.values - clicks.loc[conv.click_event_id, "timestamp"].values
    within = (delay <= np.timedelta64(24, "h")).mean()
    assert 0.9 < within < 1.0


def test_to_arrow_has_typed_columns(big):
    table = big.to_arrow("click")
    assert str(table.schema.field("timestamp").type) == "timestamp[us, tz=UTC]"
    assert table.schema.field("result_price").type == "double"
    assert pc.min(table["result_price"]).as_py() > 0
    assert big.to_pandas("search").geo_country.notna().all()


def test_live_timestamps_are_the_wall_clock():
    start = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)
    batch = generate(GeneratorConfig(events=200, seed=1, live=True, rate=10, live_start=start))
    times = batch.meta["timestamp"].to_pylist()
    assert min(times) >= start
    assert max(times) <= start + timedelta(seconds=21)
