"""``searchflow ingest``: land events in the DuckDB raw layer, exactly once."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from searchflow.cli.gating import gate_line, run_and_report
from searchflow.config import get_settings
from searchflow.contract import SOURCES
from searchflow.output import format_table


def _human(summary: Mapping[str, Any]) -> str:
    head = (
        f"ingested from {summary['source']} (batch {summary['batch_id']}): "
        f"read {summary['read']:,} = landed {summary['landed']:,} + duplicates "
        f"{summary['duplicates']:,} + dead letters {summary['dead_letters']:,}"
    )
    if summary["landed"] == 0:
        head += "\nnothing new landed"
    skip = {"batch_id", "source", "read", "landed", "duplicates", "dead_letters", "gate"}
    rest = {k: v for k, v in summary.items() if k not in skip}
    return head + "\n" + format_table(rest) + "\n" + gate_line(summary)


@click.command()
@click.option(
    "--source",
    type=click.Choice(SOURCES),
    default=SOURCES[0],
    show_default=True,
    help="Where the events are.",
)
@click.option(
    "--path",
    type=click.Path(path_type=Path),
    default=None,
    help="JSONL folder (search/, click/, conversion/) [default: $SEARCHFLOW_HOME/events].",
)
@click.option(
    "--consumer",
    default=None,
    help="Redis consumer name [default: ingest-<hostname>, stable across restarts].",
)
@click.option(
    "--full", is_flag=True, help="--source app: re-extract every row, not only the new ones."
)
@click.option(
    "--since",
    type=click.DateTime(),
    default=None,
    help="--source app: backfill rows updated from this UTC time (or date) on.",
)
@click.option(
    "--until",
    type=click.DateTime(),
    default=None,
    help="--source app: backfill rows updated before this UTC time (or date).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
def ingest(
    source: str,
    path: Path | None,
    consumer: str | None,
    full: bool,
    since: datetime | None,
    until: datetime | None,
    as_json: bool,
) -> None:
    """Land new events from jsonl, redis or postgres, or the application's users and bookings
    (app); re-runs land nothing twice.

    Malformed lines go to raw.dead_letter_events with their reason; counts reconcile:
    read = landed + duplicates + dead_letters. The ingestion gate then judges the landed batch:
    a failing batch is held (exit code 3), its rows stay in the warehouse but out of the models.
    """
    from flows.gated import gated_ingest

    settings = get_settings()
    run_and_report(
        lambda: gated_ingest(
            settings,
            source,
            path=path,
            consumer=consumer,
            extract={"full": full, "since": since, "until": until} if source == "app" else None,
        ),
        as_json,
        _human,
    )
