"""Flow ``ingest-events``: land what is new from a source, gate it, publish or hold it, signal dbt.

Thin by design: the write-audit-publish is :func:`flows.gated.gated_ingest` (the logic is
:func:`searchflow.ingest.run_ingestion`). The warehouse slot is held while the DuckDB file is open
(landing, the gate that reads the batch back, the ledger). Nothing new means no gate and no event:
the flow ends quietly and the transform stage is not woken for nothing. The landing runs as a task
retried on transient failures (ingestion lands exactly once, so a retry never lands twice).
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.common import current_flow_run_id, run_and_signal, stage_task, warehouse_slot
from searchflow.contract import SOURCES


def _ingest(
    source: str,
    path: str | None,
    consumer: str | None,
    parent_batch_id: str,
    flow_run_id: str | None,
) -> dict[str, Any]:
    from flows.gated import gated_ingest
    from flows.reports import publish_gate_artifact
    from searchflow.config import get_settings

    with warehouse_slot():
        return gated_ingest(
            get_settings(),
            source,
            path=path,
            consumer=consumer,
            flow_run_id=flow_run_id,
            parent_batch_id=parent_batch_id,
            on_gate=publish_gate_artifact,
        )


@flow(name="ingest-events", log_prints=True)
def ingest_events(
    source: str = SOURCES[0],
    path: str | None = None,
    consumer: str | None = None,
    parent_batch_id: str = "",
) -> dict[str, Any]:
    """Ingest from ``source`` (jsonl, redis, postgres); gate and signal only when rows landed.

    ``parent_batch_id`` is the generated batch whose event woke this run (its trigger passes the
    event's ``batch_id``); the ledger records it as a parent of this ingestion batch, which lands
    everything new in the source, exactly once, that batch included.
    """
    flow_run_id = current_flow_run_id()
    ingest = stage_task("ingestion", _ingest, "land-and-gate")
    summary = run_and_signal(
        "ingestion", lambda: ingest(source, path, consumer, parent_batch_id, flow_run_id)
    )
    print(
        f"ingested from {source} (batch {summary['batch_id']}): read {summary['read']}, "
        f"landed {summary['landed']}, duplicates {summary['duplicates']}, "
        f"dead letters {summary['dead_letters']} in {summary['seconds']}s"
    )
    if summary.get("gate") is None:
        print(
            "nothing new: every line read was already ingested, so no gate, no event and nothing "
            "downstream runs; generate a new batch (another seed or start) to feed the chain"
        )
    return summary


if __name__ == "__main__":
    ingest_events()
