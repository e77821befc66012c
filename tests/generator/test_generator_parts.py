"""A batch above PART_EVENTS: built and written part by part, exact counts, the same bytes."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import namedtuple

import psycopg2
import pyarrow as pa
import pytest
import redis

import generator.config
from generator import GeneratorConfig, build, read_manifest, release_held, write, write_held
from generator.parts import PartedBatch
from searchflow.errors import SearchflowError
from searchflow.quality import checks

EVENTS = 9_000
PART = 2_500


@pytest.fixture(autouse=True)
def small_parts(monkeypatch):
    monkeypatch.setattr(generator.config, "PART_EVENTS", PART)


def _config(**over) -> GeneratorConfig:
    args = dict(events=EVENTS, users=500, seed=3, days=10, malformed_rate=0.03,
                duplicate_rate=0.02, late_rate=0.02)  # fmt: skip
    return GeneratorConfig(**{**args, **over})


def _digests(result) -> dict[str, str]:
    return {
        kind: hashlib.sha256(open(path, "rb").read()).hexdigest()
        for kind, path in result["files"].items()
    }


def _lines(path) -> list[str]:
    return open(path).read().splitlines()


def test_a_large_batch_is_built_in_parts_with_exact_counts():
    config = _config()
    batch = build(config)
    assert isinstance(batch, PartedBatch)
    assert len(batch.part_configs) == 4 == config.part_count
    assert sum(p.events for p in batch.part_configs) == EVENTS
    counts = batch.counts()
    assert counts["events"] == EVENTS
    assert counts["malformed"] == config.n_malformed == 270
    assert counts["duplicates"] == config.n_duplicates == 180
    assert sum(counts["lines"].values()) == EVENTS
    # a batch at the bound is still one part, built in memory as before
    assert not isinstance(build(_config(events=PART)), PartedBatch)


def test_parts_write_the_same_bytes_every_time_and_no_orphans(tmp_path, settings):
    first = write(build(_config()), "jsonl", settings, tmp_path / "a")
    second = write(build(_config()), "jsonl", settings, tmp_path / "b")
    assert _digests(first) == _digests(second)
    other = write(build(_config(seed=4)), "jsonl", settings, tmp_path / "c")
    assert _digests(other)["search"] != _digests(first)["search"]
    counts = build(_config()).counts()
    events = {}
    for kind in ("search", "click", "conversion"):
        lines = _lines(first["files"][kind])
        assert len(lines) == counts["lines"][kind]
        parsed = []
        for line in lines:
            try:
                parsed.append(json.loads(line))
            except ValueError:
                continue
        events[kind] = {e.get("event_id") for e in parsed if e.get("event_type") == kind}
    clicks = [json.loads(x) for x in _lines(first["files"]["click"]) if _clean(x)]
    assert all(c["search_event_id"] in events["search"] for c in clicks)
    assert not list((tmp_path / "a").rglob("*.tmp"))


def _clean(line: str) -> bool:
    from generator import classify

    return classify(line) is None


def test_the_gate_figures_add_up_over_the_parts():
    batch = build(_config())
    parts = batch.survey(checks.part_judge())
    assert len(parts) == 4
    rules = checks.merge_rules(parts)
    counts = batch.counts()  # known from the judged pass
    assert rules.figures["searches"] == counts["search"]
    assert rules.figures["click_through_rate"] == pytest.approx(counts["click"] / counts["search"])
    assert all(
        v == 0 for k, v in rules.figures.items() if k.endswith(("_ids", "_required", "_share"))
    )
    assert all(not r.selectors for r, _ in parts)  # nothing failed: no part's tables kept
    assert {f.name for f in batch.schema_tables()["click"].schema} >= {"search_event_id"}
    single = checks.generation_rules(build(_config(events=PART)).clean_tables())
    assert set(single.figures) == set(rules.figures)


def test_merged_rules_count_a_broken_part_and_keep_only_its_rows():
    good = build(_config(events=PART)).clean_tables()
    broken = dict(good)
    clicks = good["click"]
    broken["click"] = clicks.set_column(
        clicks.schema.get_field_index("search_event_id"),
        "search_event_id",
        pa.array(["nowhere"] * clicks.num_rows, pa.string()),
    )
    judge = checks.part_judge()
    parts = [judge(good), judge(broken), judge(broken)]
    merged = checks.merge_rules(parts)
    assert merged.figures["click_orphan_share"] == pytest.approx(2 / 3)
    assert [bool(r.selectors) for r, _ in parts] == [False, True, False]
    assert "click_orphan_share" in merged.selectors


def test_no_disk_space_is_one_line_and_leaves_nothing(tmp_path, settings, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _path: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(SearchflowError, match="not enough disk space in .*--out") as caught:
        write(build(_config()), "jsonl", settings, tmp_path / "out")
    assert "\n" not in str(caught.value)
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]


def test_a_held_batch_in_parts_keeps_no_lines_and_is_released_byte_for_byte(tmp_path, settings):
    direct = write(build(_config()), "jsonl", settings, tmp_path / "direct")
    batch = build(_config())
    where = write_held(settings, batch, "jsonl", tmp_path / "out")
    assert [p.name for p in where.iterdir()] == ["held.json"]
    assert read_manifest(settings, batch.batch_id)["parts"] == 4
    summary = release_held(settings, batch.batch_id)
    assert summary["events"] == EVENTS
    released = {k: p.replace(str(tmp_path / "direct"), str(tmp_path / "out"))
                for k, p in direct["files"].items()}  # fmt: skip
    assert _digests({"files": released}) == _digests(direct)


def test_parts_to_redis_and_postgres(service_settings, redis_url, postgres_url):
    batch = build(_config())
    counts = batch.counts()
    write(batch, "redis", service_settings)
    client = redis.Redis.from_url(redis_url)
    try:
        for kind in ("search", "click", "conversion"):
            assert client.xlen(f"events:{kind}") == counts["lines"][kind]
        assert client.xlen("app:bookings") >= counts["conversion"]
    finally:
        client.close()
    write(batch, "postgres", service_settings)
    con = psycopg2.connect(postgres_url)
    try:
        with con.cursor() as cur:
            cur.execute("SELECT count(*), count(DISTINCT batch_id) FROM app.events")
            assert cur.fetchone() == (EVENTS, 1)
            cur.execute("SELECT count(*) FROM app.bookings")
            assert cur.fetchone()[0] == counts["conversion"]
    finally:
        con.close()


def test_a_staged_survey_writes_the_same_files_in_one_pass(tmp_path, settings):
    direct = write(build(_config()), "jsonl", settings, tmp_path / "direct")
    batch = build(_config())
    batch.stage(tmp_path / "out")
    rules = checks.merge_rules(batch.survey(checks.part_judge()))
    assert rules.figures["searches"] == batch.counts()["search"]
    assert not (tmp_path / "out" / "search" / f"{batch.batch_id}.jsonl").exists()  # not yet
    staged = write(batch, "jsonl", settings, tmp_path / "out")
    released = {k: p.replace(str(tmp_path / "direct"), str(tmp_path / "out"))
                for k, p in direct["files"].items()}  # fmt: skip
    assert staged["files"] == released
    assert _digests(staged) == _digests(direct)
    assert not list((tmp_path / "out").rglob("*.tmp"))


def test_a_staged_batch_that_is_held_leaves_nothing_in_the_folder(tmp_path, settings):
    batch = build(_config())
    batch.stage(tmp_path / "out")
    batch.survey(checks.part_judge())
    write_held(settings, batch, "jsonl", tmp_path / "out")
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]


def test_a_part_is_judged_on_one_core_with_the_same_figures():
    """Arrow's counts (a part in a worker) equal DuckDB's (a whole batch): repeated and null ids,
    links to nowhere and null links."""
    tables = build(_config(events=PART)).clean_tables()
    search, click = tables["search"], tables["click"]
    ids = search["event_id"].to_pylist()
    ids[1], ids[2], ids[3] = ids[0], None, None
    tables["search"] = search.set_column(0, "event_id", pa.array(ids, pa.string()))
    links = click["search_event_id"].to_pylist()
    links[0], links[1] = "nowhere", None
    where = click.schema.get_field_index("search_event_id")
    tables["click"] = click.set_column(where, "search_event_id", pa.array(links, pa.string()))
    here = checks.generation_rules(tables, one_core=True).figures
    assert here == checks.generation_rules(tables).figures
    assert here["search_duplicate_ids"] == 4
    assert here["click_orphan_share"] > 0


def test_fixed_width_ids_are_counted_by_hash_with_the_same_figures():
    """The generator's ids are all 36 bytes: the hash path (links to an unknown id of the same
    width, a repeated id) gives DuckDB's figures too."""
    tables = build(_config(events=PART)).clean_tables()
    click = tables["click"]
    links = click["search_event_id"].to_pylist()
    links[0] = links[1] = "f" * 36
    where = click.schema.get_field_index("search_event_id")
    tables["click"] = click.set_column(where, "search_event_id", pa.array(links, pa.string()))
    here = checks.generation_rules(tables, one_core=True).figures
    assert here == checks.generation_rules(tables).figures
    assert here["click_orphan_share"] == 2 / click.num_rows
    ids = tables["conversion"]["event_id"].to_pylist()
    ids[-1] = ids[0]
    tables["conversion"] = tables["conversion"].set_column(0, "event_id", pa.array(ids))
    here = checks.generation_rules(tables, one_core=True).figures
    assert here == checks.generation_rules(tables).figures
    assert here["conversion_duplicate_ids"] == 2
