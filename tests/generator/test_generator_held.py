"""Building and gating before writing: held batches, their release to the sink, and dropping."""

from __future__ import annotations

import json

import psycopg2
import pytest
import redis

from generator import (
    GeneratorConfig,
    build,
    drop_held,
    held_path,
    read_manifest,
    release_held,
    write,
    write_batch,
    write_held,
)
from searchflow.errors import SearchflowError

CONFIG = GeneratorConfig(events=2_000, seed=11, malformed_rate=0.05, duplicate_rate=0.03,
                         late_rate=0.03)  # fmt: skip


def _files(out, batch_id):
    return {
        t: (out / t / f"{batch_id}.jsonl").read_bytes() for t in ("search", "click", "conversion")
    }


def test_build_touches_nothing_and_write_batch_sends_it(settings, tmp_path):
    batch = build(CONFIG)
    assert not settings.home_path.exists() or not any(settings.home_path.iterdir())
    summary = write_batch(settings, batch, "jsonl", tmp_path / "out")
    assert summary["batch_id"] == batch.batch_id
    assert summary["out"] == str(tmp_path / "out")
    assert summary["events"] == CONFIG.events and summary["malformed"] == 100
    assert "seconds" in summary


def test_clean_tables_are_the_simulation_before_faults():
    batch = build(CONFIG)
    tables = batch.clean_tables()
    n_lines = sum(len(batch.lines(t)) for t in tables)
    assert sum(t.num_rows for t in tables.values()) == CONFIG.n_clean < n_lines == CONFIG.events
    for table in tables.values():
        assert table["event_id"].combine_chunks().unique().to_pylist() == (
            table["event_id"].to_pylist()
        )  # no duplicate, no fresh malformed id


def test_held_batch_is_the_jsonl_layout_and_a_manifest(settings, tmp_path):
    batch = build(CONFIG)
    where = write_held(settings, batch, "jsonl", tmp_path / "meant")
    assert where == settings.home_path / "held" / "generation" / batch.batch_id
    assert where == held_path(settings, batch.batch_id)
    direct = tmp_path / "direct"
    write(batch, "jsonl", settings, direct)
    assert _files(where, batch.batch_id) == _files(direct, batch.batch_id)
    manifest = json.loads((where / "held.json").read_text())
    assert manifest == read_manifest(settings, batch.batch_id)
    assert manifest["sink"] == "jsonl" and manifest["out"] == str(tmp_path / "meant")
    assert manifest["counts"] == batch.counts()
    assert not (tmp_path / "meant").exists()  # nothing reached the sink


def test_release_writes_the_held_lines_to_the_jsonl_sink_byte_for_byte(settings, tmp_path):
    batch = build(CONFIG)
    write_held(settings, batch, "jsonl", tmp_path / "meant")
    summary = release_held(settings, batch.batch_id)
    assert summary["out"] == str(tmp_path / "meant") and summary["sink"] == "jsonl"
    assert summary["events"] == CONFIG.events
    direct = tmp_path / "direct"
    write(batch, "jsonl", settings, direct)
    assert _files(tmp_path / "meant", batch.batch_id) == _files(direct, batch.batch_id)
    assert not held_path(settings, batch.batch_id).exists()
    with pytest.raises(SearchflowError, match="no held generated batch"):
        release_held(settings, batch.batch_id)


@pytest.mark.services
def test_release_to_redis_and_postgres_keeps_order_times_and_batch(service_settings, redis_url,
                                                                   postgres_url):  # fmt: skip
    batch = build(CONFIG)
    write_held(service_settings, batch, "redis")
    write_held(service_settings, batch, "postgres")  # the same batch, held again: postgres now
    assert read_manifest(service_settings, batch.batch_id)["sink"] == "postgres"
    release_held(service_settings, batch.batch_id)
    con = psycopg2.connect(postgres_url)
    with con.cursor() as cur:
        cur.execute("SELECT event_type, payload, created_at, batch_id FROM app.events ORDER BY seq")
        rows = cur.fetchall()
    con.close()
    emitted = batch.emitted
    assert [r[1] for r in rows] == emitted["line"].to_pylist()
    assert [r[0] for r in rows] == emitted["stream"].to_pylist()
    assert [r[2] for r in rows] == emitted["emitted_at"].to_pylist()
    assert {r[3] for r in rows} == {batch.batch_id}

    write_held(service_settings, batch, "redis")
    release_held(service_settings, batch.batch_id)
    client = redis.Redis.from_url(redis_url)
    entries = client.xrange("events:click")
    assert [e[1][b"data"].decode() for e in entries] == batch.lines("click").to_pylist()
    assert {e[1][b"batch"].decode() for e in entries} == {batch.batch_id}


def test_drop_removes_the_folder(settings):
    batch = build(GeneratorConfig(events=100, seed=1))
    where = write_held(settings, batch)
    assert drop_held(settings, batch.batch_id) is True
    assert not where.exists()
    assert drop_held(settings, batch.batch_id) is False


def test_a_damaged_held_batch_is_one_line(settings):
    batch = build(GeneratorConfig(events=300, seed=2))
    where = write_held(settings, batch)
    path = where / "search" / f"{batch.batch_id}.jsonl"
    path.write_bytes(path.read_bytes().split(b"\n", 1)[1])  # one line lost
    with pytest.raises(SearchflowError, match="is damaged: .* search lines"):
        release_held(settings, batch.batch_id)
    assert where.exists()  # nothing was sent, nothing removed


def test_an_interrupted_hold_is_not_a_held_batch(settings):
    batch = build(GeneratorConfig(events=100, seed=3))
    where = write_held(settings, batch)
    (where / "held.json").unlink()
    with pytest.raises(SearchflowError, match="no held generated batch"):
        release_held(settings, batch.batch_id)


def test_a_held_batch_id_cannot_leave_the_held_folder(settings):
    with pytest.raises(SearchflowError, match="not a generation batch id"):
        held_path(settings, "../../etc")
