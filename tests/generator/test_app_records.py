"""The site's own records: user profiles and bookings beside the events, in every sink."""

from __future__ import annotations

import json
from datetime import date, timedelta

import psycopg2
import pyarrow.compute as pc
import redis

from generator import GeneratorConfig, generate, write
from generator.records import CHANGES, TIERS, period

CONFIG = GeneratorConfig(events=6000, users=800, seed=5, days=60, malformed_rate=0.02)


def test_records_are_consistent_with_the_events():
    batch = generate(CONFIG)
    records = batch.records
    users = records.current_users
    event_users = set()
    for event_type in ("search", "click", "conversion"):
        event_users |= {u for u in batch.to_arrow(event_type)["user_id"].to_pylist() if u}
    assert event_users <= set(users["user_id"].to_pylist())
    assert users.num_rows == CONFIG.users
    conversions = batch.to_arrow("conversion")
    bookings = records.current_bookings
    assert sorted(bookings["booking_id"].to_pylist()) == sorted(conversions["event_id"].to_pylist())
    truth = {
        r["event_id"]: (r["user_id"], round(r["booking_value"], 2), r["timestamp"])
        for r in conversions.to_pylist()
    }
    for row in bookings.to_pylist():
        user, value, at = truth[row["booking_id"]]
        assert (row["user_id"], float(row["amount"]), row["created_at"]) == (user, value, at)
    assert set(pc.unique(records.users["loyalty_tier"]).to_pylist()) <= set(TIERS)
    assert all("@" in e for e in users["email"].to_pylist())
    assert len(set(users["email"].to_pylist())) == users.num_rows


def test_a_run_applies_the_changes_inside_its_period():
    batch = generate(CONFIG)
    start, end = period(CONFIG)
    changes = batch.records.users
    updated = changes["updated_at"].cast("int64").to_numpy()
    assert (updated < end).all()
    inside = changes.filter(pc.greater_equal(changes["updated_at"].cast("int64"), start))
    assert inside.num_rows > 0  # some profiles change within sixty days
    # every user has exactly one version from before the period (what it held at the start)
    before = changes.filter(pc.less(changes["updated_at"].cast("int64"), start))
    assert before.num_rows == CONFIG.users
    assert len(set(before["user_id"].to_pylist())) == CONFIG.users
    # the current version is the latest change record of each user
    latest = {}
    for row in changes.to_pylist():
        latest[row["user_id"]] = row
    current = {r["user_id"]: r for r in batch.records.current_users.to_pylist()}
    assert latest == current
    statuses = batch.records.bookings["status"].to_pylist()
    assert "confirmed" in statuses and {"cancelled", "refunded"} & set(statuses)
    assert CHANGES >= 1


def test_records_are_deterministic_and_follow_the_period():
    a, b = generate(CONFIG), generate(CONFIG)
    for record_type in ("users", "bookings"):
        assert a.records.lines(record_type).equals(b.records.lines(record_type))
    later = generate(GeneratorConfig(**{**CONFIG.__dict__, "start": CONFIG.start + timedelta(90)}))
    same = {r["user_id"]: r for r in later.records.users.to_pylist() if r["updated_at"].year < 2024}
    early = {r["user_id"]: r for r in a.records.users.to_pylist() if r["updated_at"].year < 2024}
    # a profile's history does not depend on the run: versions both runs carry are equal
    for user in set(same) & set(early):
        assert same[user] == early[user]


def test_jsonl_and_redis_sinks_carry_change_records(service_settings, tmp_path, redis_url):
    batch = generate(CONFIG)
    write(batch, "jsonl", service_settings, tmp_path)
    for record_type in ("users", "bookings"):
        path = tmp_path / record_type / f"{batch.batch_id}.jsonl"
        lines = path.read_text().splitlines()
        assert lines == batch.records.lines(record_type).to_pylist()
        first = json.loads(lines[0])
        assert first["updated_at"].endswith("Z")
    assert json.loads(
        (tmp_path / "bookings" / f"{batch.batch_id}.jsonl").read_text().split("\n")[0]
    )["status"] in ("confirmed", "cancelled", "refunded")
    write(batch, "redis", service_settings)
    client = redis.Redis.from_url(redis_url)
    entries = client.xrange("app:users")
    assert [e[1][b"data"].decode() for e in entries] == batch.records.lines("users").to_pylist()
    assert {e[1][b"batch"].decode() for e in entries} == {batch.batch_id}
    assert client.xlen("app:bookings") == batch.records.bookings.num_rows


def test_postgres_tables_only_move_forward(service_settings, postgres_url):
    later = GeneratorConfig(**{**CONFIG.__dict__, "start": date(2025, 6, 1)})
    write(generate(later), "postgres", service_settings)
    write(generate(CONFIG), "postgres", service_settings)  # an older period, written afterwards
    con = psycopg2.connect(postgres_url)
    with con.cursor() as cur:
        cur.execute("SELECT user_id, loyalty_tier, home_city, updated_at FROM app.users")
        rows = {r[0]: r[1:] for r in cur.fetchall()}
        cur.execute("SELECT count(*), count(DISTINCT booking_id) FROM app.bookings")
        n_bookings, distinct = cur.fetchone()
        cur.execute("SELECT table_type FROM information_schema.tables WHERE table_schema = 'app' "
                    "AND table_name = 'bookings'")  # fmt: skip
        assert cur.fetchone() == ("BASE TABLE",)
    con.close()
    expected = {
        r["user_id"]: (r["loyalty_tier"], r["home_city"], r["updated_at"])
        for r in generate(later).records.current_users.to_pylist()
    }
    assert rows == expected
    # event ids are drawn from the seed alone, so bookings of both runs may share ids
    ids = set(generate(CONFIG).records.current_bookings["booking_id"].to_pylist())
    ids |= set(generate(later).records.current_bookings["booking_id"].to_pylist())
    assert n_bookings == distinct == len(ids)
