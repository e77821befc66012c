"""JSONL ingestion: landing, reconciliation, malformed classes, exactly-once across re-runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from searchflow.errors import UsageError
from searchflow.ingest import run_ingestion

from .conftest import reconciles
from .helpers import append_jsonl, event, line, malformed, write_jsonl

TYPES = ("search", "click", "conversion")


def _mixed(root: Path) -> dict[str, int]:
    """10 good events per type, one repeated, every malformed class; returns expected counts."""
    expected = {"landed": 0, "duplicates": 0, "dead_letters": 0}
    for t in TYPES:
        lines = [line(event(t, i)) for i in range(10)] + [line(event(t, 4))]
        bad = malformed(t, 500)
        for variants in bad.values():
            lines += variants
        write_jsonl(root, t, lines)
        expected["landed"] += 10
        expected["duplicates"] += 1
        expected["dead_letters"] += sum(len(v) for v in bad.values())
    return expected


def test_lands_reconciles_and_dead_letters_every_class(settings, query, tmp_path):
    events = tmp_path / "events"
    expected = _mixed(events)
    summary = run_ingestion(settings, "jsonl", path=events)
    assert {k: summary[k] for k in expected} == expected
    assert summary["read"] == sum(expected.values())
    assert reconciles(summary)
    assert summary["batch_id"].startswith("ingest-jsonl-")
    for t in TYPES:
        rows = query(f"SELECT count(*), count(DISTINCT event_id) FROM raw.{t}_events")
        assert rows == [(10, 10)]
    # every class, with the reason the hand-made lines were built to break
    got = query(
        "SELECT reason, count(*) FROM raw.dead_letter_events GROUP BY reason ORDER BY reason"
    )
    per_type = {reason: len(v) for reason, v in malformed("search", 1).items()}
    assert got == sorted((reason, 3 * n) for reason, n in per_type.items())
    # provenance: file:line, batch, source, and the raw text exactly as read
    ref, source, batch = query(
        "SELECT source_ref, source, batch_id FROM raw.search_events WHERE event_id = 's-000003'"
    )[0]
    assert ref.endswith("search/part-0000.jsonl:4")
    assert (source, batch) == ("jsonl", summary["batch_id"])
    first_bad = malformed("search", 500)["unparsable"][0]
    assert query(
        "SELECT raw_text, event_type FROM raw.dead_letter_events WHERE source_ref LIKE '%search/part-0000.jsonl:12'"
    ) == [(first_bad, "search")]


def test_event_time_and_payload_are_kept(settings, query, tmp_path):
    events = tmp_path / "events"
    text = line(event("click", 7))
    write_jsonl(events, "click", [text])
    run_ingestion(settings, "jsonl", path=events)
    ((event_time, payload),) = query("SELECT event_time::VARCHAR, payload FROM raw.click_events")
    assert event_time == "2025-01-01 07:07:00.000007"
    assert payload == text


def test_rerun_lands_nothing_and_adds_no_dead_letter(settings, query, tmp_path):
    events = tmp_path / "events"
    _mixed(events)
    run_ingestion(settings, "jsonl", path=events)
    before = query("SELECT count(*) FROM raw.dead_letter_events")
    again = run_ingestion(settings, "jsonl", path=events)
    assert (again["read"], again["landed"], again["dead_letters"]) == (0, 0, 0)
    assert again["nothing_new"] is True
    assert query("SELECT count(*) FROM raw.dead_letter_events") == before


def test_without_bookkeeping_dedup_alone_keeps_rows_single(settings, query, tmp_path):
    """The files' record lost: everything is read again, nothing lands or dead-letters twice."""
    import duckdb

    events = tmp_path / "events"
    _mixed(events)
    run_ingestion(settings, "jsonl", path=events)
    query_before = query("SELECT count(*) FROM raw.dead_letter_events")
    con = duckdb.connect(str(settings.warehouse_path))
    con.execute("DELETE FROM raw.ingest_files")
    con.close()
    again = run_ingestion(settings, "jsonl", path=events)
    assert again["landed"] == 0 and again["dead_letters"] == 0
    assert again["duplicates"] == again["read"] > 0
    assert reconciles(again)
    assert query("SELECT count(*) FROM raw.search_events") == [(10,)]
    assert query("SELECT count(*) FROM raw.dead_letter_events") == query_before


def test_shrunk_file_is_read_again_from_the_top(settings, query, tmp_path):
    events = tmp_path / "events"
    path = write_jsonl(events, "search", [line(event("search", i)) for i in range(6)])
    run_ingestion(settings, "jsonl", path=events)
    write_jsonl(events, "search", [line(event("search", i)) for i in (0, 1, 50)])
    again = run_ingestion(settings, "jsonl", path=events)
    assert path.exists()
    assert (again["read"], again["landed"], again["duplicates"]) == (3, 1, 2)


def test_appended_file_is_read_from_where_it_stopped(settings, query, tmp_path):
    events = tmp_path / "events"
    path = write_jsonl(events, "search", [line(event("search", i)) for i in range(5)])
    assert run_ingestion(settings, "jsonl", path=events)["landed"] == 5
    append_jsonl(path, [line(event("search", i)) for i in range(5, 8)])
    more = run_ingestion(settings, "jsonl", path=events)
    assert (more["read"], more["landed"], more["duplicates"]) == (3, 3, 0)
    refs = query("SELECT source_ref FROM raw.search_events ORDER BY event_id")
    assert [r[0].rsplit(":", 1)[1] for r in refs] == [str(n) for n in range(1, 9)]


def test_half_written_last_line_is_read_again_once_complete(settings, query, tmp_path):
    """An unterminated last line that is not JSON is dead-lettered but not consumed: when the
    writer finishes it, the completed line lands."""
    events = tmp_path / "events"
    path = write_jsonl(events, "click", [line(event("click", 1))])
    tail = line(event("click", 2))
    with path.open("a") as handle:
        handle.write(tail[:40])  # a writer caught mid-line
    first = run_ingestion(settings, "jsonl", path=events)
    assert (first["read"], first["landed"], first["dead_letters"]) == (2, 1, 1)
    assert run_ingestion(settings, "jsonl", path=events)["read"] == 0  # unchanged: not re-read
    with path.open("a") as handle:
        handle.write(tail[40:] + "\n")
    second = run_ingestion(settings, "jsonl", path=events)
    assert (second["read"], second["landed"], second["dead_letters"]) == (1, 1, 0)
    assert query("SELECT source_ref FROM raw.click_events ORDER BY event_id")[-1][0].endswith(":2")


def test_last_line_without_newline_lands(settings, query, tmp_path):
    events = tmp_path / "events"
    path = write_jsonl(events, "click", [line(event("click", 1))])
    with path.open("a") as handle:
        handle.write(line(event("click", 2)))  # valid, no newline at the end
    first = run_ingestion(settings, "jsonl", path=events)
    assert (first["read"], first["landed"], first["nothing_new"]) == (2, 2, False)
    again = run_ingestion(settings, "jsonl", path=events)
    assert (again["read"], again["nothing_new"]) == (0, True)
    with path.open("a") as handle:  # the writer ends line 2 and goes on
        handle.write("\n" + line(event("click", 3)) + "\n")
    more = run_ingestion(settings, "jsonl", path=events)
    assert (more["read"], more["landed"]) == (1, 1)
    refs = query("SELECT source_ref FROM raw.click_events ORDER BY event_id")
    assert [r[0].rsplit(":", 1)[1] for r in refs] == ["1", "2", "3"]


def test_duplicates_across_files_and_late_events(settings, query, tmp_path):
    events = tmp_path / "events"
    write_jsonl(events, "search", [line(event("search", i)) for i in range(10, 20)], "part-1")
    # a later file re-sends two events and brings a late one (timestamp before everything else)
    late = line(event("search", 99, timestamp="2024-12-30T23:59:59.000000Z"))
    write_jsonl(
        events, "search", [line(event("search", 12)), line(event("search", 15)), late], "part-2"
    )
    summary = run_ingestion(settings, "jsonl", path=events)
    assert (summary["landed"], summary["duplicates"]) == (11, 2)
    assert query("SELECT count(*) FROM raw.search_events WHERE event_id = 's-000099'") == [(1,)]
    # a late event arriving in a later run is accepted too
    write_jsonl(
        events, "search", [line(event("search", 98, timestamp="2024-12-01T00:00:00Z"))], "p3"
    )
    assert run_ingestion(settings, "jsonl", path=events)["landed"] == 1


def test_empty_run_lands_zero(settings, tmp_path):
    events = tmp_path / "events"
    events.mkdir()
    summary = run_ingestion(settings, "jsonl", path=events)
    assert summary["landed"] == 0 and summary["read"] == 0 and summary["nothing_new"]


def test_missing_path_is_one_clear_error(settings, tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        run_ingestion(settings, "jsonl", path=tmp_path / "nope")
    assert not settings.warehouse_path.exists()  # nothing half-created


def test_failed_chunk_leaves_no_trace(settings, query, tmp_path, monkeypatch):
    """One transaction per chunk: a failure inside it rolls everything back."""
    from searchflow.ingest import land

    events = tmp_path / "events"
    _mixed(events)
    original = land.raw_table
    calls = {"n": 0}

    def exploding(event_type: str) -> str:
        calls["n"] += 1
        if event_type == "click" and calls["n"] > 4:
            raise RuntimeError("disk on fire")
        return original(event_type)

    monkeypatch.setattr(land, "raw_table", exploding)
    with pytest.raises(RuntimeError):
        run_ingestion(settings, "jsonl", path=events)
    monkeypatch.setattr(land, "raw_table", original)
    for table in ("search_events", "click_events", "dead_letter_events", "ingest_files"):
        assert query(f"SELECT count(*) FROM raw.{table}") == [(0,)]
    assert run_ingestion(settings, "jsonl", path=events)["landed"] == 30
