"""Faults while ingesting: a full disk is one clear line (never hidden behind a failed ROLLBACK),
scratch files a killed run left are removed, the batch's ledger row moves with its rows, and a
discarded batch's rows go while its dead letters stay."""

from __future__ import annotations

import os
import secrets
import subprocess
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pytest

from searchflow import ledger
from searchflow.config import Settings
from searchflow.errors import SearchflowError
from searchflow.ingest import discard_ingestion_batch, run_ingestion

from .conftest import reconciles
from .helpers import event, line, malformed, write_jsonl


def _events(root: Path, n: int, event_type: str = "search", name: str = "part-0") -> Path:
    lines = [
        line(event(event_type, i, event_id=f"{event_type}-{i}", session_id=secrets.token_hex(60)))
        for i in range(n)
    ]
    return write_jsonl(root, event_type, lines, name)


class _FailingCommit:
    """A real DuckDB connection whose first COMMIT fails the way a full disk fails it: the
    transaction is gone, and the error is an IOException."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con
        self.failed = False

    def execute(self, sql, *args):
        if sql.strip() == "COMMIT" and not self.failed:
            self.failed = True
            self._con.execute("ROLLBACK")
            raise duckdb.IOException(
                'IO Error: Could not write file "/x/warehouse.duckdb.wal": No space left on device'
            )
        return self._con.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self._con, name)


def test_failed_commit_surfaces_the_real_error(settings, query, tmp_path, monkeypatch):
    import searchflow.ingest as ingest

    real = ingest.session

    @contextmanager
    def failing(*args, **kwargs):
        with real(*args, **kwargs) as con:
            yield _FailingCommit(con)

    monkeypatch.setattr(ingest, "session", failing)
    _events(tmp_path / "events", 20)
    with pytest.raises(SearchflowError) as caught:
        run_ingestion(settings, "jsonl", path=tmp_path / "events")
    message = str(caught.value)
    assert message.startswith("no space left in /x (") and "needs about" in message
    assert "rollback" not in message.lower() and "\n" not in message
    monkeypatch.setattr(ingest, "session", real)
    assert query("SELECT count(*) FROM raw.search_events") == [(0,)]
    assert run_ingestion(settings, "jsonl", path=tmp_path / "events")["landed"] == 20


@pytest.fixture
def tiny_disk(tmp_path: Path):
    """A 3 MiB tmpfs (root only: skipped elsewhere)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)])
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_is_one_line_and_a_rerun_converges(tiny_disk, tmp_path):
    events = tmp_path / "events"
    _events(events, 40_000)
    settings = Settings(home=tiny_disk / "home")
    with pytest.raises(SearchflowError) as caught:
        run_ingestion(settings, "jsonl", path=events)
    message = str(caught.value)
    assert message.startswith(f"no space left in {tiny_disk / 'home'} (")
    assert "needs about" in message and "MiB" in message and "\n" not in message
    subprocess.run(["mount", "-o", "remount,size=200m", str(tiny_disk)], check=True)
    summary = run_ingestion(settings, "jsonl", path=events)
    assert summary["landed"] == 40_000 and reconciles(summary)


def test_stale_scratch_is_removed_at_the_next_start(settings, tmp_path):
    stale = settings.ensure_home() / "ingest-pg-k1lled"
    stale.mkdir()
    (stale / "batch.csv").write_text("1,search,{}\n")
    (tmp_path / "events").mkdir()
    run_ingestion(settings, "jsonl", path=tmp_path / "events")
    assert not stale.exists()


def test_ledger_row_moves_with_the_first_chunk(settings, query, tmp_path):
    events = tmp_path / "events"
    _events(events, 5, name="gen-20250101-0123456789")
    _events(events, 3, "click", name="gen-20250102-abcdefabcd")
    write_jsonl(events, "click", [malformed("click", 1)["unparsable"][0]], "external")
    summary = run_ingestion(settings, "jsonl", path=events)
    assert summary["parents"] == ["gen-20250101-0123456789", "gen-20250102-abcdefabcd"]
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        row = ledger.get(con, summary["batch_id"])
    finally:
        con.close()
    assert row["stage"] == "ingestion" and row["state"] == "landed" and row["source"] == "jsonl"
    assert sorted(row["parents"]) == summary["parents"]
    counts = (
        row["counts"]
        if isinstance(row["counts"], dict)
        else __import__("json").loads(row["counts"])
    )
    assert (counts["read"], counts["landed"], counts["dead_letters"]) == (9, 8, 1)
    # nothing new: no second row
    again = run_ingestion(settings, "jsonl", path=events)
    assert again["read"] == 0
    assert query("SELECT count(*) FROM ops.batches WHERE stage = 'ingestion'") == [(1,)]


def test_failed_landing_records_no_ledger_row(settings, query, tmp_path, monkeypatch):
    """The ledger row is written inside the chunk's transaction: a failure after it (before the
    COMMIT) leaves neither the row nor the events."""
    real = ledger.record

    def record_then_fail(*args, **kwargs):
        real(*args, **kwargs)
        raise RuntimeError("boom after the ledger row")

    monkeypatch.setattr(ledger, "record", record_then_fail)
    _events(tmp_path / "events", 4)
    with pytest.raises(RuntimeError, match="boom"):
        run_ingestion(settings, "jsonl", path=tmp_path / "events")
    assert query("SELECT count(*) FROM ops.batches") == [(0,)]
    assert query("SELECT count(*) FROM raw.search_events") == [(0,)]
    monkeypatch.setattr(ledger, "record", real)
    assert run_ingestion(settings, "jsonl", path=tmp_path / "events")["landed"] == 4


def test_discard_removes_rows_and_keeps_dead_letters(settings, query, tmp_path):
    events = tmp_path / "events"
    _events(events, 6)
    write_jsonl(events, "click", [malformed("click", 1)["wrong_type"][0]], "bad")
    first = run_ingestion(settings, "jsonl", path=events)
    _events(events, 2, "click", name="later")
    second = run_ingestion(settings, "jsonl", path=events)
    con = duckdb.connect(str(settings.warehouse_path))
    try:
        removed = discard_ingestion_batch(con, first["batch_id"])
    finally:
        con.close()
    assert removed == {"search": 6, "click": 0, "conversion": 0}
    assert query("SELECT count(*) FROM raw.search_events") == [(0,)]
    assert query("SELECT count(*) FROM raw.click_events") == [(second["landed"],)]
    assert query("SELECT count(*) FROM raw.dead_letter_events") == [(1,)]
    # the discarded input is not read again
    assert run_ingestion(settings, "jsonl", path=events)["read"] == 0
