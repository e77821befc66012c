"""Against the generator: its reference classify() is the oracle, its sinks are the input."""

from __future__ import annotations

import pyarrow.compute as pc
import pytest

from generator import GeneratorConfig, classify, generate, write
from searchflow.config import Settings
from searchflow.ingest import run_ingestion

from .conftest import event_totals, reconciles


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
    events = event_totals(summary)
    assert events["read"] == counts["events"]
    assert events["dead_letters"] == counts["malformed"]
    assert events["duplicates"] == counts["duplicates"]
    assert events["landed"] == sum(counts[t] for t in ("search", "click", "conversion"))
    assert reconciles(summary)
    # the change records the sink writes beside the events land too, every version once
    for record_type, n in batch.records.counts().items():
        assert summary["per_type"][f"app_{record_type}"]["landed"] == n > 0
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


def _edge_lines() -> list[str]:
    """Lines near the rules' edges: kinds a lenient parse would blur, nesting, spacing, escapes."""
    import json

    from .helpers import event, line

    s, c, v = event("search", 1), event("click", 2), event("conversion", 3)
    return [
        line({**s, "user_id": 42, "geo": {"user_id": "nested", "city": "x"}}),
        line({**s, "results_count": True}),
        line({**s, "results_count": 1.0}),
        line({**s, "results_count": 0}),
        line({**s, "page": 0}),
        line({**s, "results_count": 12345678901234567890}),
        line({**s, "geo": "Lisbon"}),
        line({**s, "geo": None}),
        line({**s, "utm_campaign": {"a": 1}}),
        json.dumps({**s, "query": 'caf\u00e9 "quoted" \\ back'}, ensure_ascii=True),
        json.dumps(s, indent=2).replace("\n", " "),
        "  " + line(s) + "  ",
        line({**c, "event_type": "click", "result_price": 0.01}),
        line({**c, "result_price": 0}),
        line({**c, "result_position": "3"}),
        line({**v, "commission": -0.5}),
        line({**v, "booking_value": "250"}),
        line({**v, "event_type": True}),
        line({**v, "event_type": None}),
        line({**v, "timestamp": "2025-01-01T10:00:00.1234567Z"}),
        line({**v, "timestamp": "2025-01-01T10:00:00"}),
        line({k: val for k, val in v.items() if k != "utm_source"}),
        '{"event_type": "search"}',
        "{}",
        "null",
        '"a string"',
        "42",
    ]


def test_edge_lines_match_the_oracle(settings, query, tmp_path):
    from .helpers import write_jsonl

    out = tmp_path / "events"
    lines = _edge_lines()
    # every line in the search folder: an event is judged by its own event_type, not the folder
    write_jsonl(out, "search", lines)
    summary = run_ingestion(settings, "jsonl", path=out)
    assert reconciles(summary)
    got = dict(query("SELECT raw_text, reason FROM raw.dead_letter_events"))
    expected = {text: classify(text) for text in lines if classify(text)}
    assert got == expected
    # the valid variants of one event share its id: the first lands, the rest are duplicates
    assert summary["landed"] + summary["duplicates"] == len(lines) - len(expected)
    assert summary["landed"] == 3
