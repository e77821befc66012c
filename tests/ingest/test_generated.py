"""Against the generator: its reference classify() is the oracle, its sinks are the input."""

from __future__ import annotations

import pyarrow.compute as pc
import pytest

from generator import GeneratorConfig, classify, faults, generate, write
from searchflow.config import Settings
from searchflow.ingest import run_ingestion, validate

from .conftest import reconciles


def test_rules_are_the_generators():
    assert validate.REQUIRED_FIELDS == faults.REQUIRED_FIELDS
    assert validate.NULLABLE_FIELDS == faults.NULLABLE_FIELDS
    assert validate.MINIMUMS == faults.MINIMUMS
    assert validate.MALFORMED_CLASSES == faults.MALFORMED_CLASSES
    assert validate.TIMESTAMP_REGEX in faults.TIMESTAMP_PATTERN.pattern


@pytest.fixture(scope="module")
def batch():
    return generate(
        GeneratorConfig(
            events=4000, seed=11, malformed_rate=0.05, duplicate_rate=0.04, late_rate=0.05
        )
    )


def test_jsonl_matches_the_oracle_line_for_line(settings, query, tmp_path, batch):
    out = tmp_path / "events"
    write(batch, "jsonl", settings, out)
    summary = run_ingestion(settings, "jsonl", path=out)
    counts = batch.counts()
    assert summary["read"] == counts["events"]
    assert summary["dead_letters"] == counts["malformed"]
    assert summary["duplicates"] == counts["duplicates"]
    assert summary["landed"] == sum(counts[t] for t in ("search", "click", "conversion"))
    assert reconciles(summary)
    expected = {}
    for t in ("search", "click", "conversion"):
        for text in batch.lines(t).to_pylist():
            reason = classify(text)
            if reason:
                expected[text] = reason
    got = dict(query("SELECT raw_text, reason FROM raw.dead_letter_events"))
    assert got == expected
    for t in ("search", "click", "conversion"):
        truth = set(batch.to_arrow(t)["event_id"].to_pylist())
        ids = query(f"SELECT event_id FROM raw.{t}_events")
        assert len(ids) == len(truth) and {i for (i,) in ids} == truth
    again = run_ingestion(settings, "jsonl", path=out)
    assert again["landed"] == 0 and again["dead_letters"] == 0


@pytest.mark.services
def test_postgres_sink_lands_the_same(home, postgres_url, query, batch):
    settings = Settings(home=home, postgres_url=postgres_url)
    write(batch, "postgres", settings)
    summary = run_ingestion(settings, "postgres")
    counts = batch.counts()
    assert (summary["read"], summary["dead_letters"], summary["duplicates"]) == (
        counts["events"],
        counts["malformed"],
        counts["duplicates"],
    )
    late = batch.meta.filter(pc.equal(batch.meta["fault"], "late"))["event_id"].to_pylist()
    assert late
    landed = {
        i
        for t in ("search", "click", "conversion")
        for (i,) in query(f"SELECT event_id FROM raw.{t}_events", settings)
    }
    assert set(late) <= landed  # late events are accepted
