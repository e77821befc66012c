"""``searchflow run``: generate -> ingest -> transform -> sync, in one process, no Prefect server."""

from __future__ import annotations

from typing import Any

import click

from searchflow.cli.generate import simulation_options
from searchflow.config import get_settings
from searchflow.output import report


@click.command()
@simulation_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
def run(as_json: bool, **options: Any) -> None:
    """The whole chain in one process: generate, ingest, transform, then the three syncs.

    Takes the generator's options. Each stage is followed by its quality gate; a failed gate stops
    the chain (exit code 3) and names the stage and the expectations. The developer's loop: no
    Prefect server needed.
    """
    from flows.chain import run_chain

    summary = run_chain(get_settings(), echo=lambda line: click.echo(line, err=as_json), **options)
    report(summary, as_json, lambda s: f"chain done in {s['seconds']:.2f}s (batch {s['batch_id']})")
