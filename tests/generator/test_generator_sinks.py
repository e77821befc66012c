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
        assert {e[1][b"batch"].decode() for e in entries} == {batch.batch_id}
        assert [list(e[1]) for e in entries[:1]] == [[b"data", b"batch"]]  # data first
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
        cur.execute("SELECT batch_id, count(*) FROM app.events GROUP BY batch_id")
        assert cur.fetchall() == [(batch.batch_id, 2 * CONFIG.events)]
        assert [p for _, p in rows[: CONFIG.events]] == batch.emitted["line"].to_pylist()
        assert [t for t, _ in rows[: CONFIG.events]] == batch.emitted["stream"].to_pylist()
        cur.execute("SELECT booking_id, amount, created_at FROM app.bookings")
        bookings = cur.fetchall()
    con.close()
    truth = batch.to_arrow("conversion").to_pylist()
    assert {b[0] for b in bookings} == {t["event_id"] for t in truth}
    values = {t["event_id"]: round(t["booking_value"], 2) for t in truth}
    assert all(float(b[1]) == values[b[0]] for b in bookings)
    booked = {t["event_id"]: t["timestamp"] for t in truth}
    assert all(b[2] == booked[b[0]] for b in bookings)


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


def test_app_events_of_an_older_release_gains_the_batch_column(service_settings, postgres_url):
    con = psycopg2.connect(postgres_url)
    with con, con.cursor() as cur:
        cur.execute("CREATE SCHEMA app")
        cur.execute(
            "CREATE TABLE app.events (seq bigserial PRIMARY KEY, event_type text NOT NULL, "
            "payload text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
        )
        cur.execute("INSERT INTO app.events (event_type, payload) VALUES ('search', '{}')")
    batch = generate(GeneratorConfig(events=50, seed=1))
    write(batch, "postgres", service_settings)
    with con.cursor() as cur:
        cur.execute("SELECT batch_id, count(*) FROM app.events GROUP BY 1 ORDER BY 1 NULLS FIRST")
        assert cur.fetchall() == [(None, 1), (batch.batch_id, 50)]
    con.close()


def test_a_killed_writes_temporary_files_go_at_the_next_start(settings, tmp_path):
    import fcntl

    out = tmp_path / "events"
    batch = generate(GeneratorConfig(events=200, seed=5))
    write(batch, "jsonl", settings, out)
    stale = out / "search" / f".{batch.batch_id}.jsonl.tmp"  # the earlier naming, too
    stale.write_text("half a line")
    dead = out / "click" / f".{batch.batch_id}.jsonl.999999.tmp"
    dead.write_text("{")
    running = out / "conversion" / f".{batch.batch_id}.jsonl.1.tmp"
    running.write_text("{")
    other = out / "search" / "notes.tmp"  # not ours: kept
    other.write_text("x")
    with open(running, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # a write still running holds its lock
        result = write(generate(GeneratorConfig(events=100, seed=6)), "jsonl", settings, out)
    assert result["stale_tmp_removed"] == 2
    assert not stale.exists() and not dead.exists()
    assert running.exists() and other.exists()


def test_a_full_disk_is_one_line_and_leaves_no_temporary_file(settings, tmp_path, monkeypatch):
    import errno

    from generator import sinks
    from searchflow.errors import SearchflowError

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    out = tmp_path / "events"
    real_replace = sinks.os.replace
    monkeypatch.setattr(sinks.os, "replace", full)
    with pytest.raises(SearchflowError, match=r"no space left in .*/search for [0-9,]+ bytes"):
        write(generate(GeneratorConfig(events=100, seed=6)), "jsonl", settings, out)
    monkeypatch.setattr(sinks.os, "replace", real_replace)
    assert not list(out.rglob("*.tmp"))


def test_redis_refusing_the_entries_is_one_line(service_settings, redis_url):
    from searchflow.errors import SearchflowError

    redis.Redis.from_url(redis_url).set("events:click", "not a stream")
    batch = generate(GeneratorConfig(events=300, seed=4))
    with pytest.raises(
        SearchflowError, match=r"refused [0-9,]+ of [0-9,]+ entries for events:click"
    ):
        write(batch, "redis", service_settings)


def test_a_full_disk_in_live_mode_is_one_line(tmp_path):
    import errno

    from generator.sinks import JsonlAppender
    from searchflow.errors import SearchflowError

    class FullDisk:
        name = str(tmp_path / "search" / "gen-x.jsonl")

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def flush(self):
            pass

        def close(self):
            pass

    appender = JsonlAppender(tmp_path, "gen-x")
    appender.files["search"].close()
    appender.files["search"] = FullDisk()
    rows = generate(GeneratorConfig(events=60, seed=1)).emitted
    with pytest.raises(SearchflowError, match=r"no space left in .*/search for [0-9,]+ bytes"):
        appender.write(rows)
    appender.close()
