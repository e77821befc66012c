"""``searchflow ingest``: land events in the DuckDB raw layer, exactly once."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from searchflow.config import get_settings
from searchflow.output import format_table, report

SOURCES = ("jsonl", "redis", "postgres")


def _human(summary: Mapping[str, Any]) -> str:
    head = (
        f"ingested from {summary['source']} (batch {summary['batch_id']}): "
        f"read {summary['read']:,} = landed {summary['landed']:,} + duplicates "
        f"{summary['duplicates']:,} + dead letters {summary['dead_letters']:,}"
    )
    if summary["landed"] == 0:
        head += "\nnothing new landed"
    rest = {
        k: v
        for k, v in summary.items()
        if k not in {"batch_id", "source", "read", "landed", "duplicates", "dead_letters"}
    }
    return head + "\n" + format_table(rest)


@click.command()
@click.option(
    "--source",
    type=click.Choice(SOURCES),
    default="jsonl",
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
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
def ingest(source: str, path: Path | None, consumer: str | None, as_json: bool) -> None:
    """Land new events from jsonl, redis or postgres; re-runs land nothing twice.

    Malformed lines go to raw.dead_letter_events with their reason; counts reconcile:
    read = landed + duplicates + dead_letters.
    """
    from searchflow.ingest import run_ingestion

    summary = run_ingestion(get_settings(), source, path=path, consumer=consumer)
    report(summary, as_json, _human)
