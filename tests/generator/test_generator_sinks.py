"""The three sinks against the real Redis and PostgreSQL, and the JSONL layout."""

from __future__ import annotations

import json

import psycopg2
import pytest
import redis

from generator import GeneratorConfig, generate, run_generation, write

pytestmark = pytest.mark.services

CONFIG = GeneratorConfig(events=3_000, seed=3, malformed_rate=0.03, duplicate_rate=0.02,
                         late_rate=0.02)  # fmt: skip


def test_jsonl_one_folder_per_type_lines_in_emission_order(settings, tmp_path):
    batch = generate(CONFIG)
    result = write(batch, "jsonl", settings, tmp_path / "events")
    for event_type in ("search", "click", "conversion"):
        path = tmp_path / "events" / event_type / f"{batch.batch_id}.jsonl"
        assert result["files"][event_type] == str(path)
        text = path.read_text()
        assert text.endswith("\n")
        assert text.splitlines() == batch.lines(event_type).to_pylist()
    assert not list((tmp_path / "events").rglob("*.tmp"))


def test_jsonl_default_out_is_under_home(settings):
    summary = run_generation(settings, events=500, seed=1)
    assert summary["out"] == str(settings.home_path / "events")
    assert (settings.home_path / "events" / "search" / f"{summary['batch_id']}.jsonl").exists()


def test_redis_streams_hold_every_line_in_order(service_settings, redis_url):
    batch = generate(CONFIG)
    summary = run_generation(service_settings, sink="redis", **{
        k: getattr(CONFIG, k) for k in ("events", "seed", "malformed_rate", "duplicate_rate",
                                        "late_rate")})  # fmt: skip
    assert summary["batch_id"] == batch.batch_id
    client = redis.Redis.from_url(redis_url)
    for event_type in ("search", "click", "conversion"):
        entries = client.xrange(f"events:{event_type}")
        assert [e[1][b"data"].decode() for e in entries] == batch.lines(event_type).to_pylist()
        assert summary["lines"][event_type] == len(entries)


def test_postgres_app_events_and_bookings(service_settings, postgres_url):
    batch = generate(CONFIG)
    write(batch, "postgres", service_settings)
    write(batch, "postgres", service_settings)  # the DDL is idempotent; rows are appended
    con = psycopg2.connect(postgres_url)
    with con.cursor() as cur:
        cur.execute("SELECT event_type, payload FROM app.events ORDER BY seq")
        rows = cur.fetchall()
        assert len(rows) == 2 * CONFIG.events
        assert [p for _, p in rows[: CONFIG.events]] == batch.emitted["line"].to_pylist()
        assert [t for t, _ in rows[: CONFIG.events]] == batch.emitted["stream"].to_pylist()
        cur.execute("SELECT event_id, booking_value, booked_at FROM app.bookings")
        bookings = cur.fetchall()
    con.close()
    truth = batch.to_arrow("conversion").to_pylist()
    assert {b[0] for b in bookings} == {t["event_id"] for t in truth}
    values = {t["event_id"]: round(t["booking_value"], 2) for t in truth}
    assert all(float(b[1]) == values[b[0]] for b in bookings)


def test_malformed_rows_reach_postgres_as_text(service_settings, postgres_url):
    config = GeneratorConfig(events=400, seed=2, malformed_rate=0.25)
    batch = generate(config)
    write(batch, "postgres", service_settings)
    con = psycopg2.connect(postgres_url)
    with con.cursor() as cur:
        cur.execute("SELECT count(*) FROM app.events WHERE app.try_jsonb(payload) IS NULL")
        (unparsable,) = cur.fetchone()
    con.close()
    assert unparsable == batch.counts()["malformed_by_class"]["unparsable"] > 0


def test_live_mode_trickles_into_the_sink(settings, tmp_path):
    summary = run_generation(settings, events=12, seed=1, live=True, rate=200, out=tmp_path)
    assert summary["sent"] == 12 and not summary["interrupted"]
    lines = [
        json.loads(line)
        for t in ("search", "click", "conversion")
        for line in (tmp_path / t / f"{summary['batch_id']}.jsonl").read_text().splitlines()
    ]
    assert len(lines) == 12
    assert all(line["timestamp"].startswith("20") for line in lines)
