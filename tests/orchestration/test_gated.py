"""Write-audit-publish without Prefect: a held batch is recorded, reported, released and discarded.

Real generator, real DuckDB, real quality gates. The generation gate is replaced by a failing one
in one test only: no honest configuration of the generator fails it, and the held path must run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flows import gated
from generator import config_from_options, held_path
from searchflow import ledger, warehouse
from searchflow.config import Settings
from searchflow.errors import GateFailed


def _generate(settings: Settings, out: Path, **options) -> dict:
    config = config_from_options(events=400, users=100, **options)
    return gated.gated_generate(settings, config, "jsonl", out)


def _rows(settings: Settings, batch_id: str) -> int:
    with warehouse.session(settings, read_only=True) as con:
        return sum(
            con.execute(
                f"SELECT count(*) FROM {warehouse.raw_table(t)} WHERE batch_id = ?", [batch_id]
            ).fetchone()[0]
            for t in ("search", "click", "conversion")
        )


def test_a_malformed_batch_is_held_then_forced_then_discarded(settings: Settings, tmp_path):
    events = tmp_path / "events"
    gen = _generate(settings, events, seed=1)
    assert gen["gate"]["outcome"] == "passed"
    clean = gated.gated_ingest(settings, "jsonl", events, parent_batch_id=gen["batch_id"])
    assert clean["gate"]["outcome"] == "passed"

    bad_gen = _generate(settings, events, seed=2, malformed_rate=0.3)
    with pytest.raises(GateFailed) as caught:
        gated.gated_ingest(settings, "jsonl", events, parent_batch_id=bad_gen["batch_id"])
    held = caught.value.summary
    assert held["gate"]["outcome"] == "failed"
    assert any("dead_letter_share" in r for r in held["gate"]["reasons"])
    assert held["per_type"]["search"]["dead_letters"] > 0

    with warehouse.session(settings) as con:
        row = ledger.get(con, held["batch_id"])
        assert row["state"] == "held" and row["gate_outcome"] == "failed"
        assert row["parents"] == [bad_gen["batch_id"]]
        assert ledger.get(con, clean["batch_id"])["state"] == "published"
        story = [r["batch_id"] for r in ledger.lineage(con, bad_gen["batch_id"])]
    assert story == [bad_gen["batch_id"], held["batch_id"]]

    with pytest.raises(GateFailed):
        gated.release(settings, held["batch_id"])
    forced = gated.release(settings, held["batch_id"], force=True)
    assert forced["gate"]["outcome"] == "forced"
    with warehouse.session(settings) as con:
        row = ledger.get(con, held["batch_id"])
    assert row["state"] == "published" and row["forced"] and row["published_at"] is not None

    landed = _rows(settings, held["batch_id"])
    assert landed > 0
    discarded = gated.discard(settings, held["batch_id"])
    assert discarded["state"] == "discarded"
    assert sum(discarded["removed"]["raw"].values()) == landed
    assert _rows(settings, held["batch_id"]) == 0
    with warehouse.session(settings, read_only=True) as con:
        dead = con.execute(
            "SELECT count(*) FROM raw.dead_letter_events WHERE batch_id = ?", [held["batch_id"]]
        ).fetchone()[0]
    assert dead > 0  # dead letters stay

    from searchflow import audit

    with warehouse.session(settings, read_only=True) as con:
        log = audit.entries(con)
    assert [(e["command"], e["touched"].get("outcome")) for e in log] == [
        ("discard", None),
        ("release", "forced"),
        ("release", "held"),
    ]
    assert all(e["target"] == held["batch_id"] and e["actor"].startswith("user:") for e in log)
    assert log[0]["touched"]["raw"] == discarded["removed"]["raw"]


def test_a_batch_left_landed_by_a_crash_is_gated_by_the_next_ingest(settings: Settings, tmp_path):
    from searchflow.ingest import run_ingestion

    events = tmp_path / "events"
    _generate(settings, events, seed=3)
    crashed = run_ingestion(settings, "jsonl", path=events)  # landed, never judged
    summary = gated.gated_ingest(settings, "jsonl", events)
    assert summary["gate"] is None  # nothing new
    assert summary["recovered"] == [{"batch_id": crashed["batch_id"], "gate": "passed"}]
    with warehouse.session(settings, read_only=True) as con:
        assert ledger.get(con, crashed["batch_id"])["state"] == "published"


def test_a_generated_batch_failing_its_gate_is_held_out_of_its_sink(
    settings: Settings, tmp_path, monkeypatch
):
    import searchflow.quality as quality

    real_gate = quality.gate

    def failing(stage, settings, summary, data=None):
        error = GateFailed("generation gate failed: ctr out of band")
        error.outcome = {"status": "failed", "reasons": ["ctr out of band"], "evaluated": 3}
        raise error

    events = tmp_path / "events"
    monkeypatch.setattr(quality, "gate", failing)
    with pytest.raises(GateFailed) as caught:
        _generate(settings, events, seed=4)
    summary = caught.value.summary
    assert summary["gate"]["reasons"] == ["ctr out of band"]
    assert not list(events.rglob("*.jsonl"))  # the sink got nothing
    held = Path(summary["held"])
    assert held == held_path(settings, summary["batch_id"])
    held_files = sorted(p.relative_to(held) for p in held.rglob("*.jsonl"))
    assert held_files  # the generator's JSONL layout, per event type

    monkeypatch.setattr(quality, "gate", real_gate)
    released = gated.release(settings, summary["batch_id"])
    assert released["gate"]["outcome"] == "passed"
    sent = {p.relative_to(events) for p in events.rglob("*.jsonl")}
    assert sent and sent <= set(held_files)  # now in its sink
    assert not held.exists()
    with warehouse.session(settings, read_only=True) as con:
        assert ledger.get(con, summary["batch_id"])["state"] == "published"


def test_ingest_command_exits_3_and_prints_the_summary_last(home: Path, tmp_path):
    env = {**os.environ, "SEARCHFLOW_HOME": str(home)}
    events = tmp_path / "events"
    _generate(Settings(home=home), events, seed=5, malformed_rate=0.3)
    proc = subprocess.run(
        [sys.executable, "-m", "searchflow.cli", "ingest", "--path", str(events), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 3, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["gate"]["outcome"] == "failed"
    assert summary["per_type"]["search"]["read"] > 0
    assert "held" in proc.stderr and "Traceback" not in proc.stderr

    listed = subprocess.run(
        [sys.executable, "-m", "searchflow.cli", "batches", "list", "--state", "held", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout.strip().splitlines()[-1])["batches"]
    assert [r["batch_id"] for r in rows] == [summary["batch_id"]]
    shown = subprocess.run(
        [sys.executable, "-m", "searchflow.cli", "batches", "show", summary["batch_id"]],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    assert "dead_letter_share" in shown.stdout
