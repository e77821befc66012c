"""The ``generate-events`` flow: its name and parameters, and that it gates the batch it made."""

from __future__ import annotations

import inspect


def test_flow_is_named_and_mirrors_the_command():
    from flows.generate import generate_events

    assert generate_events.name == "generate-events"
    params = set(inspect.signature(generate_events.fn).parameters)
    assert params == {
        "events", "users", "seed", "sink", "out", "start", "days", "live", "rate",
        "click_through_rate", "conversion_rate", "malformed_rate", "duplicate_rate", "late_rate",
    }  # fmt: skip


def test_flow_body_gates_then_writes_the_batch(settings, tmp_path, monkeypatch):
    from contextlib import nullcontext

    import flows.generate as module

    calls = []
    monkeypatch.setenv("SEARCHFLOW_HOME", str(settings.home_path))
    monkeypatch.setattr(module, "warehouse_slot", nullcontext)  # no Prefect server here
    monkeypatch.setattr(module, "current_flow_run_id", lambda: None)

    def fake_signal(stage, run, labels=None):
        calls.append((stage, labels))
        return run()

    monkeypatch.setattr(module, "run_and_signal", fake_signal)
    summary = module.generate_events.fn(events=300, seed=3, out=str(tmp_path))
    assert summary["events"] == 300
    assert summary["gate"]["outcome"] == "passed"
    assert calls == [("generation", {"sink": "jsonl"})]  # the ingest trigger reads the source
    assert (tmp_path / "search" / f"{summary['batch_id']}.jsonl").exists()
