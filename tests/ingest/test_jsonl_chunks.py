"""JSONL ingestion in bounded chunks lands exactly what one chunk lands, and a run stopped at any
chunk boundary, re-run, lands nothing twice."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from searchflow.config import Settings
from searchflow.ingest import run_ingestion
from searchflow.ingest.jsonl import chunk_ranges

from .helpers import event, line, malformed, write_jsonl

ROWS = """
SELECT 'search', event_id, payload::VARCHAR, source_ref FROM raw.search_events
UNION ALL SELECT 'click', event_id, payload::VARCHAR, source_ref FROM raw.click_events
UNION ALL SELECT 'conversion', event_id, payload::VARCHAR, source_ref FROM raw.conversion_events
UNION ALL SELECT 'dead', dead_letter_id, reason, source_ref FROM raw.dead_letter_events
ORDER BY ALL
"""
FILES = "SELECT path, size, lines FROM raw.ingest_files ORDER BY path"


class Killed(BaseException):
    """Stands for the process dying right after a chunk's commit."""


def _inputs(root: Path) -> None:
    """Several files per type, duplicates inside and across files, malformed lines, a file the
    CSV reader cannot take (a carriage return), a last line without a newline, an empty file."""
    searches = [line(event("search", i)) for i in range(1, 12)]
    write_jsonl(root, "search", searches[:7] + [searches[2]], "part-0000")
    write_jsonl(root, "search", searches[5:] + malformed("search", 1)["missing_field"], "part-0001")
    clicks = [line(event("click", i)) for i in range(1, 6)]
    write_jsonl(root, "click", clicks + malformed("click", 2)["unparsable"], "part-0000")
    crlf = root / "conversion" / "part-0000.jsonl"
    crlf.parent.mkdir(parents=True, exist_ok=True)
    crlf.write_bytes(b"".join(line(event("conversion", i)).encode() + b"\r\n" for i in (1, 2)))
    tail = root / "conversion" / "part-0001.jsonl"
    tail.write_text(line(event("conversion", 3)) + "\n" + line(event("conversion", 4)))
    (root / "click" / "part-0001.jsonl").write_text("")


def _state(settings: Settings) -> tuple[list[tuple], list[tuple]]:
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        return con.execute(ROWS).fetchall(), [
            (Path(p).name, s, n) for p, s, n in con.execute(FILES).fetchall()
        ]
    finally:
        con.close()


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    root = tmp_path / "events"
    _inputs(root)
    return root


@pytest.fixture
def reference(tmp_path: Path, inputs: Path) -> tuple[dict, tuple]:
    settings = Settings(home=tmp_path / "one-chunk")
    summary = run_ingestion(settings, "jsonl", path=inputs)
    assert summary["chunks"] <= 2  # the CSV-read lines, then the split ones
    return summary, _state(settings)


@pytest.mark.parametrize("size", [1, 3, 7])
def test_chunked_lands_the_same_rows_as_one_chunk(tmp_path, inputs, reference, size):
    settings = Settings(home=tmp_path / f"chunks-{size}")
    summary = run_ingestion(settings, "jsonl", path=inputs, chunk_size=size)
    one, state = reference
    assert summary["chunks"] > 1
    for key in ("read", "landed", "duplicates", "dead_letters"):
        assert summary[key] == one[key], key
    assert _state(settings) == state
    assert run_ingestion(settings, "jsonl", path=inputs, chunk_size=size)["read"] == 0


def test_a_run_stopped_at_every_chunk_boundary_lands_nothing_twice(tmp_path, inputs, reference):
    one, state = reference
    settings = Settings(home=tmp_path / "stopped")
    runs = 0
    while True:

        def die_after_first(_counts: dict) -> None:
            raise Killed

        runs += 1
        try:
            summary = run_ingestion(
                settings, "jsonl", path=inputs, chunk_size=4, after_commit=die_after_first
            )
        except Killed:
            continue  # one chunk committed, then the process "died"
        finally:
            assert runs < 50
        if summary["read"] == 0:
            break
    assert runs > 3
    assert _state(settings) == state
    rows, _files = _state(settings)
    assert len(rows) == one["landed"] + one["dead_letters"]


def test_chunk_ranges_cover_every_row_once():
    assert chunk_ranges(5, 15, 4, False) == [(5, 9), (9, 13), (13, 15)]
    assert chunk_ranges(0, 0, 4, False) == [None]
    assert chunk_ranges(0, 3, 10, True) == [(0, 3), None]
