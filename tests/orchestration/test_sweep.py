"""The sweeper's decision without a server: given ledger rows and the deployments with a run to
come, which deployments it starts, with which parent batch, and under which idempotency key; and
the ledger as the export writes it (Parquet from a real DuckDB ledger) reads back into the same
decision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from flows.sweep import plan_sweep, read_ledger, read_warehouse_ledger
from searchflow import ledger
from searchflow.published import export_ops

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
LONG_AGO = (NOW - timedelta(minutes=10)).replace(tzinfo=None)  # the ledger stores naive UTC
SYNC_DEPLOYMENTS = {"sync-user-segments", "sync-email-triggers", "sync-recommendations"}


def _row(batch_id, stage, *, state="published", parents=(), source=None, at=LONG_AGO):
    return {
        "batch_id": batch_id,
        "stage": stage,
        "state": state,
        "parents": list(parents),
        "source": source,
        "published_at": at if state == "published" else None,
        "updated_at": at,
    }


def _plan(rows, active=(), grace=60):
    return {
        (s.deployment, s.batch_id): s
        for s in plan_sweep(rows, set(active), now=NOW, grace_seconds=grace)
    }


def _complete_chain() -> list[dict]:
    return [
        _row("g1", "generation", source="jsonl"),
        _row("i1", "ingestion", parents=["g1"], source="jsonl"),
        _row("t1", "transformation", parents=["i1"]),
        *(
            _row(f"s-{name}", "sync", parents=["t1"], source=name)
            for name in ("user_segments", "email_triggers", "recommendations")
        ),
    ]


def test_a_complete_chain_needs_nothing() -> None:
    assert _plan(_complete_chain()) == {}
    assert _plan([]) == {}


def test_a_generated_batch_without_ingestion_starts_ingest_from_its_sink() -> None:
    rows = [*_complete_chain(), _row("g2", "generation", source="redis")]
    plan = _plan(rows)
    assert set(plan) == {("ingest-events", "g2")}
    start = plan["ingest-events", "g2"]
    assert start.parameters == {"source": "redis", "parent_batch_id": "g2"}
    assert start.idempotency_key == "sweep:ingest-events:g2"
    assert start.full_name == "ingest-events/ingest-events"


def test_one_ingest_per_sink_named_after_the_newest_waiting_batch() -> None:
    older = LONG_AGO - timedelta(minutes=5)
    rows = [
        _row("g1", "generation", source="jsonl", at=older),
        _row("g2", "generation", source="jsonl"),
        _row("g3", "generation", source="postgres"),
    ]
    plan = _plan(rows)
    assert set(plan) == {("ingest-events", "g2"), ("ingest-events", "g3")}
    assert plan["ingest-events", "g3"].parameters["source"] == "postgres"


def test_a_published_ingestion_batch_outside_every_build_starts_transform() -> None:
    rows = [*_complete_chain(), _row("i2", "ingestion", parents=[], source="redis")]
    plan = _plan(rows)
    assert set(plan) == {("transform", "i2")}
    assert plan["transform", "i2"].parameters == {"parent_batch_id": "i2"}


def test_a_held_build_counts_as_tried() -> None:
    rows = [
        *_complete_chain(),
        _row("i2", "ingestion"),
        _row("t2", "transformation", state="held", parents=["i2"]),
    ]
    assert _plan(rows) == {}


def test_the_served_version_is_synced_by_each_sync_it_is_missing_from() -> None:
    rows = [r for r in _complete_chain() if r["source"] != "email_triggers"]
    plan = _plan(rows)
    assert set(plan) == {("sync-email-triggers", "t1")}
    assert plan["sync-email-triggers", "t1"].parameters == {"parent_batch_id": "t1"}


def test_only_the_newest_published_version_is_synced() -> None:
    newer = LONG_AGO + timedelta(minutes=1)
    rows = [*_complete_chain(), _row("i2", "ingestion")]
    rows.append(_row("t2", "transformation", parents=["i2"], at=newer))
    plan = _plan(rows)
    assert set(plan) == {(d, "t2") for d in SYNC_DEPLOYMENTS}


def test_held_and_discarded_batches_wait_for_a_person() -> None:
    rows = [
        _row("g1", "generation", state="held", source="jsonl"),
        _row("i1", "ingestion", state="held"),
        _row("i2", "ingestion", state="discarded"),
        _row("i3", "ingestion", state="landed"),
    ]
    assert _plan(rows) == {}


def test_a_deployment_with_a_run_to_come_is_left_alone() -> None:
    rows = [r for r in _complete_chain() if r["stage"] != "sync"]
    rows.append(_row("g2", "generation", source="jsonl"))
    plan = _plan(rows, active={"ingest-events", "sync-recommendations"})
    assert set(plan) == {("sync-user-segments", "t1"), ("sync-email-triggers", "t1")}


def test_a_fresh_batch_is_left_to_its_trigger() -> None:
    fresh = (NOW - timedelta(seconds=10)).replace(tzinfo=None)
    rows = [*_complete_chain(), _row("g2", "generation", source="jsonl", at=fresh)]
    assert _plan(rows) == {}
    assert set(_plan(rows, grace=0)) == {("ingest-events", "g2")}


def test_the_key_is_the_same_on_every_sweep() -> None:
    rows = [*_complete_chain(), _row("i2", "ingestion")]
    first = plan_sweep(rows, set(), now=NOW)
    second = plan_sweep(rows, set(), now=NOW + timedelta(minutes=2))
    assert [s.idempotency_key for s in first] == [s.idempotency_key for s in second]


def test_the_exported_ledger_reads_back_into_the_decision(tmp_path: Path) -> None:
    assert read_ledger(tmp_path) == []  # nothing exported yet: nothing to sweep
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    try:
        ledger.ensure_ledger(con)
        ledger.record(con, "g1", "generation", source="jsonl")
        ledger.judge(con, "g1", "passed")
        ledger.record(con, "i1", "ingestion", parents=["g1"], source="jsonl")
        ledger.judge(con, "i1", "passed")
        export_ops(con, tmp_path)
    finally:
        con.close()
    rows = read_ledger(tmp_path)
    assert {r["batch_id"] for r in rows} == {"g1", "i1"}
    from_warehouse = read_warehouse_ledger(tmp_path / "warehouse.duckdb")
    assert {(r["batch_id"], r["state"]) for r in from_warehouse} == {
        (r["batch_id"], r["state"]) for r in rows
    }
    assert read_warehouse_ledger(tmp_path / "missing.duckdb") is None
    later = datetime.now(UTC) + timedelta(minutes=5)
    plan = plan_sweep(rows, set(), now=later)
    assert [(s.deployment, s.batch_id) for s in plan] == [("transform", "i1")]


def test_a_downstream_batch_that_never_reached_its_gate_leaves_its_parents_waiting() -> None:
    """A run killed (or cut off from the server) after landing, before its gate: only ``landed``."""
    rows = [
        *_complete_chain(),
        _row("g2", "generation", source="jsonl"),
        _row("i2", "ingestion", state="landed", parents=["g2"], source="jsonl"),
    ]
    assert set(_plan(rows)) == {("ingest-events", "g2")}
    rows = [
        *_complete_chain(),
        _row("i2", "ingestion"),
        _row("t2", "transformation", state="landed", parents=["i2"]),
    ]
    assert set(_plan(rows)) == {("transform", "i2")}
    rows = [r for r in _complete_chain() if r["source"] != "recommendations"]
    rows.append(_row("s2", "sync", state="landed", parents=["t1"], source="recommendations"))
    assert set(_plan(rows)) == {("sync-recommendations", "t1")}
