"""The ``generate-events`` flow: its name and parameters, and that it gates the batch it made."""

from __future__ import annotations

import inspect

from generator import GeneratedBatch


def test_flow_is_named_and_mirrors_the_command():
    from flows.generate import generate_events

    assert generate_events.name == "generate-events"
    params = set(inspect.signature(generate_events.fn).parameters)
    assert params == {
        "events", "users", "seed", "sink", "out", "start", "days", "live", "rate",
        "click_through_rate", "conversion_rate", "malformed_rate", "duplicate_rate", "late_rate",
    }  # fmt: skip


def test_flow_body_writes_then_gates_the_batch(settings, tmp_path, monkeypatch):
    import flows.generate as module

    calls = []
    monkeypatch.setenv("SEARCHFLOW_HOME", str(settings.home_path))

    def fake_gate(stage, s, summary, data=None, labels=None):
        calls.append((stage, summary, data, labels))

    monkeypatch.setattr(module, "gate_and_signal", fake_gate)
    summary = module.generate_events.fn(events=300, seed=3, out=str(tmp_path))
    assert summary["events"] == 300
    ((stage, gated, data, labels),) = calls
    assert stage == "generation" and gated is summary
    assert isinstance(data, GeneratedBatch) and data.batch_id == summary["batch_id"]
    assert labels == {"sink": "jsonl"}  # the ingest trigger reads the source from the event
    assert (tmp_path / "search" / f"{summary['batch_id']}.jsonl").exists()
