"""Flow ``generate-events``: simulate a batch, gate it, send it to a sink (or hold it), signal
ingestion. The write-audit-publish is :func:`flows.gated.gated_generate`."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.common import current_flow_run_id, run_and_signal, warehouse_slot
from searchflow.contract import GENERATOR_DEFAULTS as DEFAULTS
from searchflow.contract import SINKS


@flow(name="generate-events", log_prints=True)
def generate_events(
    events: int = DEFAULTS.events,
    users: int = DEFAULTS.users,
    seed: int = DEFAULTS.seed,
    sink: str = SINKS[0],
    out: str | None = None,
    start: str | None = None,
    days: int = DEFAULTS.days,
    live: bool = False,
    rate: float = DEFAULTS.rate,
    click_through_rate: float = DEFAULTS.click_through_rate,
    conversion_rate: float = DEFAULTS.conversion_rate,
    malformed_rate: float = DEFAULTS.malformed_rate,
    duplicate_rate: float = DEFAULTS.duplicate_rate,
    late_rate: float = DEFAULTS.late_rate,
) -> dict[str, Any]:
    """Generate a batch; the gate judges it before the sink is written. The warehouse slot is
    held only while the ledger row is written."""
    from pathlib import Path

    from flows.gated import gated_generate
    from flows.reports import publish_gate_artifact
    from generator import config_from_options
    from searchflow.config import get_settings

    settings = get_settings()
    config = config_from_options(
        events=events,
        users=users,
        seed=seed,
        start=start,
        days=days,
        live=live,
        rate=rate,
        click_through_rate=click_through_rate,
        conversion_rate=conversion_rate,
        malformed_rate=malformed_rate,
        duplicate_rate=duplicate_rate,
        late_rate=late_rate,
    )
    # the sink rides on the event: the ingest-events trigger reads from where this batch went
    summary = run_and_signal(
        "generation",
        lambda: gated_generate(
            settings,
            config,
            sink,
            Path(out) if out else None,
            flow_run_id=current_flow_run_id(),
            warehouse_guard=warehouse_slot,
            on_gate=publish_gate_artifact,
        ),
        labels={"sink": sink},
    )
    print(
        f"generated {summary['events']} events (batch {summary['batch_id']}) into {summary['out']}"
    )
    return summary


if __name__ == "__main__":
    generate_events()
