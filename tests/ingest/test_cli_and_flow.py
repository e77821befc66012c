"""The command (one-line errors, --json) and the flow (quiet when nothing is new)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import event, line, write_jsonl


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "searchflow.cli", "ingest", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def test_json_summary_is_the_last_line(home, tmp_path):
    events = tmp_path / "events"
    write_jsonl(events, "search", [line(event("search", i)) for i in range(3)])
    proc = _cli("--path", str(events), "--json", env={"SEARCHFLOW_HOME": str(home)})
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["landed"] == 3 and summary["per_type"]["search"]["landed"] == 3
    assert {"batch_id", "source", "read", "duplicates", "dead_letters", "seconds"} <= set(summary)
    again = _cli("--path", str(events), env={"SEARCHFLOW_HOME": str(home)})
    assert "nothing new landed" in again.stdout


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        (["--source", "kafka"], {}, "'kafka' is not one of"),
        (["--path", "/nonexistent/events"], {}, "does not exist"),
        (["--source", "redis", "--path", "/tmp"], {}, "--path applies to --source jsonl only"),
        ([], {"SEARCHFLOW_HOME": "/proc/searchflow"}, "is not writable"),
        (["--source", "redis"], {"SEARCHFLOW_REDIS_URL": "redis://127.0.0.1:1/0"}, "Redis"),
        (
            ["--source", "postgres"],
            {"SEARCHFLOW_POSTGRES_URL": "postgresql://u:pw@127.0.0.1:1/x"},
            "PostgreSQL",
        ),
    ],
)
def test_bad_input_is_one_line(home, args, env, needle):
    proc = _cli(*args, env={"SEARCHFLOW_HOME": str(home), **env})
    assert proc.returncode != 0
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.lower().startswith(("error", "usage"))]
    assert errors and "pw@" not in proc.stderr


def test_flow_gates_only_when_rows_landed(home, tmp_path, monkeypatch):
    from contextlib import nullcontext

    import flows.common as common
    import flows.ingest as flow_module
    from searchflow import ledger
    from searchflow.config import Settings
    from searchflow.warehouse import session

    events_sent: list[tuple[str, str, str]] = []
    monkeypatch.setattr(flow_module, "warehouse_slot", nullcontext)
    monkeypatch.setattr(flow_module, "stage_task", lambda stage, fn, name: fn)
    monkeypatch.setattr(flow_module, "current_flow_run_id", lambda: "run-1")
    monkeypatch.setattr(
        common,
        "emit_stage_event",
        lambda stage, outcome, batch, payload: events_sent.append((stage, outcome, batch)),
    )
    monkeypatch.setenv("SEARCHFLOW_HOME", str(home))
    events = tmp_path / "events"
    write_jsonl(events, "search", [line(event("search", i)) for i in range(4)])
    first = flow_module.ingest_events.fn(source="jsonl", path=str(events), parent_batch_id="gen-1")
    assert first["landed"] == 4 and first["gate"]["outcome"] == "passed"
    assert events_sent == [("ingestion", "validated", first["batch_id"])]
    with session(Settings(home=home), read_only=True) as con:
        row = ledger.get(con, first["batch_id"])
    assert row["state"] == "published" and row["flow_run_id"] == "run-1"
    assert "gen-1" in row["parents"]
    second = flow_module.ingest_events.fn(source="jsonl", path=str(events))
    assert second["landed"] == 0 and len(events_sent) == 1  # nothing new: no gate, no event


def test_flow_name():
    from flows.ingest import ingest_events

    assert ingest_events.name == "ingest-events"
    assert Path(ingest_events.fn.__code__.co_filename).name == "ingest.py"
