"""Fault injection: each malformed class at its rate and really malformed; duplicates; late."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from generator import MALFORMED_CLASSES, GeneratorConfig, classify, generate

CONFIG = GeneratorConfig(
    events=20_000, seed=5, malformed_rate=0.05, duplicate_rate=0.04, late_rate=0.03
)


@pytest.fixture(scope="module")
def batch():
    return generate(CONFIG)


@pytest.fixture(scope="module")
def rows(batch):
    return batch.emitted.to_pylist()


def test_counts_match_the_rates(batch):
    counts = batch.counts()
    assert counts["malformed"] == 1_000
    assert counts["duplicates"] == 800
    assert counts["late"] == round(0.03 * (20_000 - 1_000 - 800))
    assert counts["malformed_by_class"] == {c: 200 for c in MALFORMED_CLASSES}


def test_each_malformed_line_is_really_of_its_class(rows):
    seen = Counter()
    for row in rows:
        verdict = classify(row["line"])
        assert verdict == row["reason"], row
        if row["reason"]:
            seen[row["reason"]] += 1
    assert set(seen) == set(MALFORMED_CLASSES)


def test_malformed_lines_sit_in_an_event_stream_as_text(rows):
    malformed = [r for r in rows if r["fault"] == "malformed"]
    assert {r["stream"] for r in malformed} == {"search", "click", "conversion"}
    for r in malformed:
        if r["reason"] in {"missing_field", "wrong_type", "impossible_value"}:
            assert json.loads(r["line"])["event_type"] == r["stream"]


def test_malformed_never_reuses_a_well_formed_event_id(batch, rows):
    good = {r["event_id"] for r in rows if r["fault"] != "malformed"}
    assert not any(r["event_id"] in good for r in rows if r["fault"] == "malformed")


def test_duplicates_are_byte_identical_resends_later_in_the_same_stream(rows):
    first_seen: dict[str, tuple[int, str, str]] = {}
    duplicates = 0
    for position, row in enumerate(rows):
        if row["fault"] == "malformed":
            continue
        key = row["event_id"]
        if row["fault"] == "duplicate":
            duplicates += 1
            earlier, stream, line = first_seen[key]
            assert earlier < position
            assert (stream, line) == (row["stream"], row["line"])
        else:
            assert key not in first_seen
            first_seen[key] = (position, row["stream"], row["line"])
    assert duplicates == 800


def test_late_events_come_after_later_events_with_their_own_timestamp(batch, rows):
    latest_so_far = {t: None for t in ("search", "click", "conversion")}
    out_of_order = 0
    late = 0
    for row in rows:
        if row["fault"] == "malformed":
            continue
        stream = row["stream"]
        if row["fault"] == "late":
            late += 1
            assert json.loads(row["line"])["timestamp"].replace("Z", "") == row[
                "timestamp"
            ].strftime("%Y-%m-%dT%H:%M:%S.%f")
            assert row["emitted_at"] > row["timestamp"]
            if latest_so_far[stream] is not None and latest_so_far[stream] > row["timestamp"]:
                out_of_order += 1
        latest_so_far[stream] = max(filter(None, [latest_so_far[stream], row["timestamp"]]))
    assert late == batch.counts()["late"]
    assert out_of_order > 0.9 * late


def test_fault_free_batches_have_no_faults():
    counts = generate(GeneratorConfig(events=2_000, seed=1)).counts()
    assert counts["malformed"] == counts["duplicates"] == counts["late"] == 0


def test_well_formed_lines_pass_the_validation_rules():
    batch = generate(GeneratorConfig(events=3_000, seed=9))
    for event_type in ("search", "click", "conversion"):
        assert all(classify(line) is None for line in batch.lines(event_type).to_pylist())
