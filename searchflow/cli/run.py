"""``searchflow run``: generate -> ingest -> transform -> sync, in one process, no Prefect server."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click

from searchflow.cli.gating import run_and_report
from searchflow.cli.generate import simulation_options
from searchflow.config import get_settings


@click.command()
@simulation_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
def run(as_json: bool, **options: Any) -> None:
    """The whole chain in one process: generate, ingest, transform, then the three syncs.

    Takes the generator's options. Each stage is followed by its quality gate; a failed gate holds
    the batch, stops the chain (exit code 3) and names the stage and the expectations (with --json
    the held stage's summary is the last line). The developer's loop: no
    Prefect server needed.
    """
    from flows.chain import run_chain

    settings = get_settings()
    run_and_report(
        lambda: run_chain(settings, echo=lambda line: click.echo(line, err=as_json), **options),
        as_json,
        _human,
    )


def _human(summary: Mapping[str, Any]) -> str:
    if "stages" not in summary:  # the summary of the stage whose gate stopped the chain
        return f"batch {summary.get('batch_id')} held by its gate"
    return f"chain done in {summary['seconds']:.2f}s (batch {summary['batch_id']})"
