"""Flow ``ingest-events``: land what is new from a source in the raw layer, gate it, signal dbt.

Thin by design: the logic is :func:`searchflow.ingest.run_ingestion`. The warehouse slot is held
while the DuckDB file is open (landing and the gate that reads the batch back). Nothing new means
no gate and no event: the flow ends quietly and the transform stage is not woken for nothing.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.common import gate_and_signal, warehouse_slot


@flow(name="ingest-events", log_prints=True)
def ingest_events(
    source: str = "jsonl",
    path: str | None = None,
    consumer: str | None = None,
    batch_id: str | None = None,
) -> dict[str, Any]:
    """Ingest from ``source`` (jsonl, redis, postgres); gate and signal only when rows landed.

    ``batch_id`` is the generated batch whose event woke this run (its trigger passes it). It is
    for the record only: ingestion lands everything new in the source, exactly once, that batch
    included, under an ingestion batch id of its own.
    """
    from searchflow.config import get_settings
    from searchflow.ingest import run_ingestion

    settings = get_settings()
    with warehouse_slot():
        summary = run_ingestion(settings, source, path=path, consumer=consumer)
        if batch_id:
            summary["generated_batch_id"] = batch_id
        print(
            f"ingested from {source} (batch {summary['batch_id']}): read {summary['read']}, "
            f"landed {summary['landed']}, duplicates {summary['duplicates']}, "
            f"dead letters {summary['dead_letters']} in {summary['seconds']}s"
        )
        if summary["landed"] == 0:
            print("nothing new: no gate, no event")
            return summary
        gate_and_signal("ingestion", settings, summary)
    return summary


if __name__ == "__main__":
    ingest_events()
