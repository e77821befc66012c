"""Flow ``generate-events``: simulate a batch, send it to a sink, gate it, signal ingestion."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.common import gate_and_signal


@flow(name="generate-events", log_prints=True)
def generate_events(
    events: int = 10_000,
    users: int = 10_000,
    seed: int = 42,
    sink: str = "jsonl",
    out: str | None = None,
    start: str | None = None,
    days: int = 7,
    live: bool = False,
    rate: float = 10.0,
    click_through_rate: float = 0.30,
    conversion_rate: float = 0.10,
    malformed_rate: float = 0.0,
    duplicate_rate: float = 0.0,
    late_rate: float = 0.0,
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
