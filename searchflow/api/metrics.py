"""``/metrics``: Prometheus text, read from the ledger export and the sync history at scrape time.

A custom collector, not counters incremented in this process: the stages run in other processes
(the CLI, Prefect workers), so only what they recorded counts every run. ``collect()`` yields
fresh metric families on each scrape; ``describe()`` lets a registry learn the names without
collecting (so registering costs no query). A source that does not answer is left out of that
scrape and ``searchflow_scrape_source_up`` says which.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from searchflow.api import queries
from searchflow.api.clients import Postgres
from searchflow.api.published import PublishedData


def _buckets(stats: dict[str, Any]) -> list[tuple[str, float]]:
    bounds = [str(float(b)) for b in queries.DURATION_BUCKETS]
    return [*zip(bounds, stats["buckets"], strict=True), ("+Inf", stats["count"])]


class SearchFlowCollector(Collector):
    """Counters, histograms and gauges of the whole pipeline, computed per scrape."""

    def __init__(self, published: PublishedData, postgres: Postgres) -> None:
        self.published = published
        self.postgres = postgres

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    @staticmethod
    def _families() -> list[Metric]:
        return [
            CounterMetricFamily(
                "searchflow_events_landed",
                "Events landed in the raw layer, by source (batches not discarded).",
                labels=["source"],
            ),
            CounterMetricFamily(
                "searchflow_dead_letters",
                "Lines dead-lettered at ingestion, by reason.",
                labels=["reason"],
            ),
            CounterMetricFamily(
                "searchflow_gate_outcomes",
                "Gate verdicts recorded in the ledger, by stage and outcome.",
                labels=["stage", "outcome"],
            ),
            CounterMetricFamily(
                "searchflow_sync_rows",
                "Rows the reverse-ETL syncs wrote, by sync, destination and outcome.",
                labels=["sync", "destination", "outcome"],
            ),
            CounterMetricFamily(
                "searchflow_sync_runs",
                "Sync runs recorded in crm.sync_runs, by sync and whether they failed.",
                labels=["sync", "failed"],
            ),
            HistogramMetricFamily(
                "searchflow_stage_duration_seconds",
                "Seconds each stage run took (the ledger's batch counts).",
                labels=["stage"],
            ),
            HistogramMetricFamily(
                "searchflow_sync_duration_seconds",
                "Seconds each sync run took (crm.sync_runs).",
                labels=["sync"],
            ),
            GaugeMetricFamily(
                "searchflow_freshness_seconds",
                "Seconds since the latest published ingestion batch of each source landed.",
                labels=["source"],
            ),
            GaugeMetricFamily(
                "searchflow_batches",
                "Batches in the ledger, by stage and state.",
                labels=["stage", "state"],
            ),
            GaugeMetricFamily(
                "searchflow_scrape_source_up",
                "1 when this scrape could read the source (ledger export, sync history).",
                labels=["source"],
            ),
        ]

    def collect(self) -> Iterator[Metric]:
        families = {f.name: f for f in self._families()}
        up = families["searchflow_scrape_source_up"]
        try:
            self._ledger(families)
            up.add_metric(["ledger"], 1)
        except Exception:  # a scrape reports what it can; the gauge says what it could not
            up.add_metric(["ledger"], 0)
        try:
            self._syncs(families)
            up.add_metric(["sync_runs"], 1)
        except Exception:
            up.add_metric(["sync_runs"], 0)
        yield from families.values()

    def _ledger(self, families: dict[str, Metric]) -> None:
        con = self.published.ledger()
        try:
            now = queries.utcnow()
            for source, landed in queries.landed_by_source(con).items():
                families["searchflow_events_landed"].add_metric([source], landed)
            for reason, count in queries.dead_letters_by_reason(con).items():
                families["searchflow_dead_letters"].add_metric([reason], count)
            for stage, stats in queries.gate_outcomes(con).items():
                for outcome, count in stats["outcomes"].items():
                    families["searchflow_gate_outcomes"].add_metric([stage, outcome], count)
            for stage, stats in queries.stage_durations(con).items():
                families["searchflow_stage_duration_seconds"].add_metric(
                    [stage], _buckets(stats), stats["sum"]
                )
            for row in queries.freshness(con, now):
                families["searchflow_freshness_seconds"].add_metric([row["source"]], row["seconds"])
            for stage, states in queries.batches_by_state(con).items():
                for state, count in states.items():
                    families["searchflow_batches"].add_metric([stage, state], count)
        finally:
            con.close()

    def _syncs(self, families: dict[str, Metric]) -> None:
        with self.postgres.cursor() as cur:
            syncs = queries.sync_summary(cur)
        for sync, stats in syncs.items():
            destination = stats["destination"]
            for outcome, rows in stats["rows"].items():
                families["searchflow_sync_rows"].add_metric([sync, destination, outcome], rows)
            ok = stats["runs"] - stats["failed_runs"]
            families["searchflow_sync_runs"].add_metric([sync, "false"], ok)
            families["searchflow_sync_runs"].add_metric([sync, "true"], stats["failed_runs"])
            families["searchflow_sync_duration_seconds"].add_metric(
                [sync], _buckets(stats["durations"]), stats["durations"]["sum"]
            )


def registry_for(published: PublishedData, postgres: Postgres) -> CollectorRegistry:
    """A registry of the app's own (never the process-global one), holding the collector."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(SearchFlowCollector(published, postgres))
    return registry
