"""Flow ``generate-events``: simulate a batch, send it to a sink, gate it, signal ingestion."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.common import gate_and_signal
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
    """Generate events (no warehouse slot: the generator never opens the DuckDB file)."""
    from pathlib import Path

    from generator import config_from_options, run
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
    batch, summary = run(settings, config, sink, Path(out) if out else None)
    print(f"generated {summary['events']} events (batch {batch.batch_id}) into {summary['out']}")
    # the sink rides on the event: the ingest-events trigger reads from where this batch went
    gate_and_signal("generation", settings, summary, data=batch, labels={"sink": sink})
    return summary


if __name__ == "__main__":
    generate_events()
