"""The custom collector: values read from the ledger export and crm.sync_runs at scrape time."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from searchflow import ledger, published, warehouse
from searchflow.api.clients import Postgres
from searchflow.api.metrics import SearchFlowCollector
from searchflow.api.published import PublishedData

pytestmark = pytest.mark.services


@pytest.fixture
def registry(api_settings, world) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(
        SearchFlowCollector(PublishedData(api_settings.home_path), Postgres(api_settings))
    )
    return registry


def test_counters_histograms_and_gauges(registry: CollectorRegistry) -> None:
    value = registry.get_sample_value
    assert value("searchflow_events_landed_total", {"source": "jsonl"}) == 100
    assert value("searchflow_events_landed_total", {"source": "redis"}) == 40
    assert value("searchflow_dead_letters_total", {"reason": "missing_field"}) == 2
    assert value("searchflow_gate_outcomes_total", {"stage": "ingestion", "outcome": "failed"}) == 1
    rows = {"sync": "user_segments", "destination": "postgres crm.user_segments"}
    assert value("searchflow_sync_rows_total", {**rows, "outcome": "inserted"}) == 6
    assert value("searchflow_sync_rows_total", {**rows, "outcome": "failed"}) == 3
    assert value("searchflow_sync_duration_seconds_count", {"sync": "user_segments"}) == 3
    assert value("searchflow_sync_duration_seconds_sum", {"sync": "user_segments"}) == 4.5
    assert (
        value("searchflow_sync_duration_seconds_bucket", {"sync": "user_segments", "le": "1.0"})
        == 2
    )
    # the two ingestion batches that recorded their seconds (the discarded one did not)
    assert value("searchflow_stage_duration_seconds_count", {"stage": "ingestion"}) == 2
    assert (
        value("searchflow_stage_duration_seconds_bucket", {"stage": "ingestion", "le": "+Inf"}) == 2
    )
    assert 0 <= value("searchflow_freshness_seconds", {"source": "jsonl"}) < 600
    assert value("searchflow_batches", {"stage": "ingestion", "state": "held"}) == 1
    assert value("searchflow_scrape_source_up", {"source": "sync_runs"}) == 1


def test_read_at_scrape_time(registry: CollectorRegistry, api_settings) -> None:
    """Work recorded by another process after the registry was made shows in the next scrape."""
    before = registry.get_sample_value("searchflow_events_landed_total", {"source": "postgres"})
    with warehouse.session(api_settings) as con:
        ledger.record(con, "ingest-pg", "ingestion", source="postgres", counts={"landed": 7})
        published.export_ops(con, api_settings.home_path)
    assert before is None
    assert registry.get_sample_value("searchflow_events_landed_total", {"source": "postgres"}) == 7


def test_describe_names_every_family_without_querying(api_settings) -> None:
    class Unreachable(Postgres):
        def cursor(self):  # type: ignore[override]
            raise AssertionError("describe() must not query")

    collector = SearchFlowCollector(
        PublishedData(api_settings.home_path), Unreachable(api_settings)
    )
    names = {family.name for family in collector.describe()}
    assert {"searchflow_events_landed", "searchflow_freshness_seconds"} <= names
    CollectorRegistry(auto_describe=True).register(collector)


def test_a_source_that_does_not_answer_is_reported(api_settings, world) -> None:
    settings = api_settings.model_copy(update={"postgres_url": "postgresql://x@127.0.0.1:1/x"})
    registry = CollectorRegistry()
    registry.register(SearchFlowCollector(PublishedData(settings.home_path), Postgres(settings)))
    assert registry.get_sample_value("searchflow_scrape_source_up", {"source": "sync_runs"}) == 0
    assert registry.get_sample_value("searchflow_events_landed_total", {"source": "jsonl"}) == 100


def test_metrics_endpoint_is_prometheus_text(client: TestClient) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert "searchflow_events_landed" in names and "searchflow_sync_duration_seconds" in names
