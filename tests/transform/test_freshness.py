"""``dbt source freshness`` in the transformation stage: reported per raw table, never raised."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from searchflow import warehouse
from searchflow.transform.freshness import source_freshness, summarize


def _result(name: str, status: str, age: float) -> SimpleNamespace:
    return SimpleNamespace(
        node=SimpleNamespace(name=name),
        status=SimpleNamespace(value=status),
        max_loaded_at=datetime(2026, 1, 1, tzinfo=UTC),
        age=age,
    )


def test_summary_takes_the_worst_status() -> None:
    summary = summarize(
        [_result("search_events", "pass", 1.0), _result("click_events", "warn", 2.0)]
    )
    assert summary["status"] == "warn"
    assert summary["sources"]["click_events"] == {
        "status": "warn",
        "max_loaded_at": "2026-01-01T00:00:00+00:00",
        "age_seconds": 2.0,
    }
    assert summarize([])["status"] == "pass"


@pytest.mark.slow
@pytest.mark.parametrize(("hours", "status"), [(30, "warn"), (80, "error")])
def test_stale_raw_data_is_reported_not_raised(settings, hours: int, status: str) -> None:
    landed = datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=hours)
    with warehouse.session(settings) as con:
        warehouse.ensure_raw_schema(con)
        for table in ("search_events", "click_events", "conversion_events"):
            con.execute(
                f"INSERT INTO raw.{table} (event_id, event_time, payload, source, source_ref, "
                "batch_id, ingested_at) VALUES ('e1', ?, '{}', 'jsonl', 'f:1', 'b1', ?)",
                [landed, landed],
            )
    summary = source_freshness(settings)
    assert summary["status"] == status, summary
