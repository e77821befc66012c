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
@click.option(
    "--batches",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Split the days and the events into this many consecutive batches, each run through the "
    "whole chain before the next (seeds counting up from --seed), so the segment snapshot records "
    "a build per batch and the segment history shows transitions.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
def run(as_json: bool, batches: int, **options: Any) -> None:
    """The whole chain in one process: generate, ingest, transform, then the three syncs.

    Takes the generator's options. Each stage is followed by its quality gate; a failed gate holds
    the batch, stops the chain (exit code 3) and names the stage and the expectations (with --json
    the held stage's summary is the last line). The developer's loop: no
    Prefect server needed.
    """
    from flows.chain import run_chain

    settings = get_settings()

    def echo(line: str) -> None:
        click.echo(line, err=as_json)

    if batches == 1:
        run_and_report(lambda: run_chain(settings, echo=echo, **options), as_json, _human)
        return
    run_and_report(lambda: _run_batches(settings, batches, echo, options), as_json, _human)


def _run_batches(settings: Any, batches: int, echo: Any, options: dict[str, Any]) -> dict[str, Any]:
    """The chain once per consecutive window (:func:`deployments.demo.plan_windows`, the split
    the first demo uses); the last chain's summary, with every batch listed."""
    from deployments.demo import plan_windows
    from flows.chain import run_chain
    from generator import config_from_options
    from searchflow.errors import UsageError

    config = config_from_options(**options)
    if config.live:
        raise UsageError("--batches splits a simulated range; leave it out with --live")
    done: list[dict[str, Any]] = []
    for number, (start, days, events) in enumerate(
        plan_windows(config.start, config.days, config.events, batches)
    ):
        chosen = {"start": start.isoformat(), "days": days, "events": events}
        chosen["seed"] = config.seed + number
        echo(f"batch {number + 1}/{batches}: {events:,} events, {days} days from {start}")
        summary = run_chain(settings, echo=echo, **{**options, **chosen})
        done.append({**chosen, "batch_id": summary["batch_id"], "seconds": summary["seconds"]})
    return {**summary, "batches": done, "seconds": round(sum(b["seconds"] for b in done), 3)}


def _human(summary: Mapping[str, Any]) -> str:
    if "stages" not in summary:  # the summary of the stage whose gate stopped the chain
        return f"batch {summary.get('batch_id')} held by its gate"
    if summary.get("batches"):
        ids = ", ".join(b["batch_id"] for b in summary["batches"])
        return f"{len(summary['batches'])} chains done in {summary['seconds']:.2f}s (batches {ids})"
    return f"chain done in {summary['seconds']:.2f}s (batch {summary['batch_id']})"
