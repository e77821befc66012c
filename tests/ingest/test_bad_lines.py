"""No input aborts a load or leaks into the models (issue 11): every bad-line class becomes a
dead letter with a precise reason (or lands, when valid), counts reconcile, the other lines land,
with the same rules for JSONL, Redis and Postgres."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from searchflow.config import Settings
from searchflow.ingest import run_ingestion

from .conftest import event_totals, reconciles
from .helpers import bad_lines, event, line

GOOD = 60  # per type, in the fast tests


def _good_lines(event_type: str, n: int = GOOD) -> list[bytes]:
    return [line(event(event_type, i)).encode() for i in range(n)]


def _write(path: Path, lines: list[bytes], end: bytes = b"\n", last_newline: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(end.join(lines) + (end if last_newline else b""))
    return path


def _bad_folder(root: Path) -> Path:
    """Good lines in every type folder, the bad lines among them, a CRLF file and a file whose
    last line has no newline."""
    bad = [text for text, _, _ in bad_lines().values()]
    search = _good_lines("search")
    _write(root / "search" / "mixed.jsonl", search[:30] + bad + search[30:])
    _write(root / "click" / "crlf.jsonl", _good_lines("click"), end=b"\r\n")
    _write(root / "conversion" / "no-newline.jsonl", _good_lines("conversion"), last_newline=False)
    return root


def _dead_letters(query) -> dict[str, tuple[str, str]]:
    rows = query("SELECT source_ref, reason, detail FROM raw.dead_letter_events")
    return {ref: (reason, detail) for ref, reason, detail in rows}


def test_every_bad_line_class_in_jsonl(settings, query, tmp_path):
    root = _bad_folder(tmp_path / "events")
    summary = run_ingestion(settings, "jsonl", path=root)
    classes = bad_lines()
    bad = sum(1 for _, reason, _ in classes.values() if reason)
    assert reconciles(summary)
    assert summary["read"] == 3 * GOOD + len(classes)
    assert summary["dead_letters"] == bad and summary["duplicates"] == 0
    assert summary["landed"] == 3 * GOOD + len(classes) - bad
    # each class at its own line, with its reason and what exactly
    letters = _dead_letters(query)
    mixed = str((root / "search" / "mixed.jsonl").resolve())
    for n, (name, (_, reason, word)) in enumerate(classes.items(), start=31):
        ref = f"{mixed}:{n}"
        if reason is None:
            assert ref not in letters, name
            continue
        assert letters[ref][0] == reason, name
        assert word in letters[ref][1], (name, letters[ref][1])
    # line numbers after the bad lines and in the CRLF file are those of an editor
    refs = dict(query("SELECT event_id, source_ref FROM raw.search_events"))
    assert refs["s-000030"] == f"{mixed}:{31 + len(classes)}"
    assert refs["s-000902"] == f"{mixed}:{30 + len(classes)}"  # the bare \r did not split it
    crlf = dict(query("SELECT event_id, source_ref FROM raw.click_events"))
    assert crlf["c-000059"].endswith("crlf.jsonl:60") and len(crlf) == GOOD
    texts = [t for (t,) in query("SELECT payload::VARCHAR FROM raw.click_events")]
    assert not any("\r" in t for t in texts)
    # the last line without a newline landed, and nothing is new afterwards
    last = query("SELECT source_ref FROM raw.conversion_events WHERE event_id = 'c-000059'")
    assert last[0][0].endswith("no-newline.jsonl:60")
    again = run_ingestion(settings, "jsonl", path=root)
    assert (again["read"], again["nothing_new"]) == (0, True)
    # the over-long line is kept as its first bytes, the non-UTF-8 one readable
    kept = query("SELECT max(length(raw_text)) FROM raw.dead_letter_events")[0][0]
    assert 0 < kept < 100_000


@pytest.mark.parametrize(
    ("name", "word"), [("not_utf8", "Lisb\ufffdn"), ("over_the_line_limit", "xxx")]
)
def test_plain_file_the_csv_reader_refuses_goes_the_careful_way(
    settings, query, tmp_path, name, word
):
    """No \\r and no NUL, but a line DuckDB's CSV reader refuses: only that line is a dead
    letter, the other files still go the fast way, line numbers hold."""
    root = tmp_path / "events"
    text, reason, detail = bad_lines()[name]
    good = _good_lines("search", 5)
    path = _write(root / "search" / "a.jsonl", good[:2] + [text] + good[2:])
    _write(root / "click" / "b.jsonl", _good_lines("click", 5))
    summary = run_ingestion(settings, "jsonl", path=root)
    assert (summary["landed"], summary["dead_letters"]) == (10, 1)
    ref, got_reason, got_detail, kept = query(
        "SELECT source_ref, reason, detail, raw_text FROM raw.dead_letter_events"
    )[0]
    assert ref == f"{path.resolve()}:3" and got_reason == reason and detail in got_detail
    assert word in kept
    refs = dict(query("SELECT event_id, source_ref FROM raw.search_events"))
    assert refs["s-000004"] == f"{path.resolve()}:6"


def _publish_all(settings: Settings) -> None:
    """What a passed gate does, for a test that runs dbt without the gated command."""
    from searchflow import ledger

    con = duckdb.connect(str(settings.warehouse_path))
    try:
        for row in ledger.list_batches(con, stage="ingestion"):
            if row["state"] == "landed":
                ledger.judge(con, row["batch_id"], "passed")
    finally:
        con.close()


@pytest.mark.slow
def test_bad_folder_ingests_with_exit_0_and_transforms(home, tmp_path):
    """The issue's separate check: every bad class plus hundreds of good lines, by the command,
    then a dbt build that passes."""
    generator = pytest.importorskip("generator")
    from searchflow.transform import run_transform

    settings = Settings(home=home)
    root = tmp_path / "events"
    batch = generator.generate(generator.GeneratorConfig(events=600, users=100, seed=5))
    generator.write(batch, "jsonl", settings, root)
    bad = [text for text, _, _ in bad_lines().values()]
    _write(root / "search" / "bad.jsonl", bad)
    proc = subprocess.run(
        [sys.executable, "-m", "searchflow.cli", "ingest", "--source", "jsonl"]
        + ["--path", str(root), "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "SEARCHFLOW_HOME": str(home)},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert reconciles(summary)
    events = event_totals(summary)  # the users/ and bookings/ records are counted apart
    assert events["read"] == 600 + len(bad)
    assert events["landed"] == 600 + 1  # every good line, and the valid one among the bad
    assert summary["parents"] == [batch.batch_id]
    _publish_all(settings)
    result = run_transform(settings)
    assert result["failed"] == 0


# --- Redis -----------------------------------------------------------------------------------


@pytest.mark.services
def test_every_bad_entry_class_in_redis(home, redis_url, query):
    import redis as redis_lib

    settings = Settings(home=home, redis_url=redis_url)
    client = redis_lib.Redis.from_url(redis_url)
    classes = bad_lines()
    pipe = client.pipeline()
    for text in _good_lines("search", 20):
        pipe.xadd("events:search", {"data": text, "batch": "gen-20250101-aaaa"})
    for text, _, _ in classes.values():
        pipe.xadd("events:search", {"data": text})
    pipe.execute()
    client.close()
    summary = run_ingestion(settings, "redis", consumer="c1", chunk_size=7)
    bad = sum(1 for _, reason, _ in classes.values() if reason)
    assert reconciles(summary) and summary["pending"] == 0
    assert (summary["landed"], summary["dead_letters"]) == (20 + len(classes) - bad, bad)
    assert summary["parents"] == ["gen-20250101-aaaa"]
    got = query("SELECT reason, detail, raw_text FROM raw.dead_letter_events")
    details = " | ".join(detail for _, detail, _ in got)
    for name, (_, reason, word) in classes.items():
        if reason:
            assert word in details, name
    assert not any("\ufffd" in text for _, detail, text in got if "not UTF-8" not in detail)
    assert query(
        "SELECT count(*) FROM raw.search_events WHERE payload::VARCHAR LIKE '%\ufffd%'"
    ) == [(0,)]


# --- Postgres --------------------------------------------------------------------------------


@pytest.mark.services
def test_every_bad_row_class_in_postgres(home, postgres_url, query):
    """The classes a Postgres text column can hold (no NUL, always UTF-8), a 5 MB payload too."""
    import psycopg2

    settings = Settings(home=home, postgres_url=postgres_url)
    classes = {k: v for k, v in bad_lines().items() if k not in ("not_utf8", "nul_and_garbage")}
    classes["five_mb"] = (
        line({**event("search", 950), "query": "y" * 5_000_000}).encode(),
        "unparsable",
        "over the limit",
    )
    rows = [("search", t.decode(), "gen-20250101-bbbb") for t in _good_lines("search", 20)]
    rows += [("search", t.decode(), None) for t, _, _ in classes.values()]
    con = psycopg2.connect(postgres_url)
    with con, con.cursor() as cur:
        cur.execute(
            "CREATE SCHEMA IF NOT EXISTS app; CREATE TABLE IF NOT EXISTS app.events ("
            "seq bigserial PRIMARY KEY, event_type text NOT NULL, payload text NOT NULL, "
            "created_at timestamptz NOT NULL DEFAULT now(), batch_id text)"
        )
        cur.executemany(
            "INSERT INTO app.events (event_type, payload, batch_id) VALUES (%s, %s, %s)", rows
        )
    con.close()
    summary = run_ingestion(settings, "postgres", chunk_size=9)
    bad = sum(1 for _, reason, _ in classes.values() if reason)
    assert reconciles(summary)
    assert (summary["landed"], summary["dead_letters"]) == (20 + len(classes) - bad, bad)
    assert summary["parents"] == ["gen-20250101-bbbb"]
    letters = {ref.rsplit("/", 1)[1]: (r, d) for ref, (r, d) in _dead_letters(query).items()}
    for seq, (name, (_, reason, word)) in enumerate(classes.items(), start=21):
        if reason:
            assert letters[str(seq)][0] == reason and word in letters[str(seq)][1], name
