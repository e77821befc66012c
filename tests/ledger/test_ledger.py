"""The batch ledger on a real DuckDB file: states, verdicts, lineage and publications."""

from __future__ import annotations

import duckdb
import pytest

from searchflow import ledger, warehouse
from searchflow.config import Settings
from searchflow.errors import SearchflowError


@pytest.fixture
def con(settings: Settings):
    with warehouse.session(settings) as connection:
        ledger.ensure_ledger(connection)
        yield connection


def test_ensure_ledger_is_idempotent_and_part_of_the_raw_ddl(settings: Settings) -> None:
    with warehouse.session(settings) as con:
        warehouse.ensure_raw_schema(con)
        warehouse.ensure_raw_schema(con)
        tables = {
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'ops'"
            ).fetchall()
        }
    assert tables == {"batches", "publish_log"}


def test_record_inserts_then_updates_keeping_what_it_is_not_told(con) -> None:
    ledger.record(
        con, "g1", "generation", source="jsonl", counts={"events": 10}, flow_run_id="fr-1"
    )
    row = ledger.get(con, "g1")
    assert row is not None
    assert (row["stage"], row["state"], row["source"]) == ("generation", "landed", "jsonl")
    assert row["counts"] == {"events": 10}
    assert row["parents"] == []
    assert row["gate_outcome"] is None and row["forced"] is False
    assert row["created_at"] == row["updated_at"]

    ledger.record(con, "i1", "ingestion", parents=["g1"], source="jsonl")
    ledger.record(con, "i1", "ingestion", parents=["g2", "g1"], counts={"landed": 3})
    row = ledger.get(con, "i1")
    assert row["parents"] == ["g1", "g2"]
    assert row["source"] == "jsonl"
    assert row["counts"] == {"landed": 3}
    assert row["updated_at"] >= row["created_at"]
    assert ledger.get(con, "nope") is None


def test_record_rejects_unknown_stage_and_state(con) -> None:
    with pytest.raises(ValueError, match="unknown stage"):
        ledger.record(con, "x", "loading")
    with pytest.raises(ValueError, match="unknown state"):
        ledger.record(con, "x", "ingestion", state="maybe")


def test_judge_publishes_or_holds(con) -> None:
    ledger.record(con, "ok", "ingestion")
    ledger.record(con, "bad", "ingestion")
    ledger.record(con, "err", "ingestion")
    passed = ledger.judge(con, "ok", "passed")
    assert passed["state"] == "published" and passed["published_at"] is not None
    held = ledger.judge(con, "bad", "failed", ["dead letters 30% > 5%"])
    assert held["state"] == "held" and held["published_at"] is None
    assert held["gate_reasons"] == ["dead letters 30% > 5%"]
    assert ledger.judge(con, "err", "errored", ["boom"])["state"] == "held"

    forced = ledger.judge(con, "bad", "failed", ["dead letters 30% > 5%"], forced=True)
    assert forced["state"] == "published"
    assert forced["gate_outcome"] == "forced" and forced["forced"] is True
    assert forced["published_at"] is not None
    assert forced["gate_reasons"] == ["dead letters 30% > 5%"]

    with pytest.raises(SearchflowError, match="no batch 'ghost'"):
        ledger.judge(con, "ghost", "passed")
    with pytest.raises(ValueError, match="unknown gate outcome"):
        ledger.judge(con, "ok", "fine")


def test_discard_marks_the_batch(con) -> None:
    ledger.record(con, "i1", "ingestion")
    ledger.judge(con, "i1", "passed")
    row = ledger.discard(con, "i1")
    assert row["state"] == "discarded" and row["discarded_at"] is not None
    with pytest.raises(SearchflowError):
        ledger.discard(con, "ghost")


def test_list_batches_filters_and_orders_newest_first(con) -> None:
    for i in range(4):
        ledger.record(con, f"i{i}", "ingestion")
    ledger.record(con, "g0", "generation")
    ledger.judge(con, "i1", "failed", ["x"])
    ledger.judge(con, "i3", "failed", ["y"])
    assert [r["batch_id"] for r in ledger.list_batches(con, state="held")] == ["i3", "i1"]
    assert [r["batch_id"] for r in ledger.list_batches(con, stage="generation")] == ["g0"]
    assert len(ledger.list_batches(con, limit=2)) == 2
    assert len(ledger.list_batches(con)) == 5
    with pytest.raises(ValueError):
        ledger.list_batches(con, state="gone")


def test_lineage_tells_a_generated_batch_story_in_stage_order(con) -> None:
    ledger.record(con, "g1", "generation")
    ledger.record(con, "g2", "generation")  # a sibling read by the same ingestion
    ledger.record(con, "i1", "ingestion", parents=["g1", "g2"])
    ledger.record(con, "i9", "ingestion")  # unrelated
    ledger.record(con, "t1", "transformation", parents=["i1"])
    ledger.record(con, "s1", "sync", parents=["t1"], source="user_segments")
    ledger.record(con, "s2", "sync", parents=["t1"], source="recommendations")
    story = [r["batch_id"] for r in ledger.lineage(con, "g1")]
    assert story == ["g1", "i1", "t1", "s1", "s2"]
    up = [r["batch_id"] for r in ledger.lineage(con, "s1")]
    assert up == ["g1", "g2", "i1", "t1", "s1"]
    assert ledger.lineage(con, "ghost") == []


def test_publications_latest_is_served(con) -> None:
    assert ledger.published_version(con) is None
    ledger.record_publication(con, "t1", parents=["i1"], schemas={"analytics": "analytics__t1"})
    ledger.record_publication(con, "t2", parents=["i2"], forced=True)
    served = ledger.published_version(con)
    assert served["version"] == "t2" and served["forced"] is True
    assert served["parents"] == ["i2"]
    with pytest.raises(duckdb.ConstraintException):
        ledger.record_publication(con, "t2")


def test_publication_rolls_back_with_its_transaction(con) -> None:
    con.execute("BEGIN")
    ledger.record_publication(con, "t1")
    con.execute("ROLLBACK")
    assert ledger.published_version(con) is None
