"""``searchflow run``: generate -> ingest -> transform -> sync, in one process, no Prefect server."""

from __future__ import annotations

import click

from searchflow.config import get_settings
from searchflow.output import check_rate, report


@click.command()
@click.option(
    "--events",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Events to generate.",
)
@click.option(
    "--users",
    type=click.IntRange(min=1),
    default=None,
    help="Distinct users (default: the generator's).",
)
@click.option("--seed", type=int, default=42, show_default=True, help="Random seed.")
@click.option("--days", type=click.IntRange(min=1), default=None, help="Days of history.")
@click.option(
    "--malformed-rate",
    type=float,
    default=None,
    callback=lambda c, p, v: check_rate("malformed-rate", v),
    help="Share of malformed events (0-1).",
)
@click.option(
    "--duplicate-rate",
    type=float,
    default=None,
    callback=lambda c, p, v: check_rate("duplicate-rate", v),
    help="Share of duplicated events (0-1).",
)
@click.option(
    "--late-rate",
    type=float,
    default=None,
    callback=lambda c, p, v: check_rate("late-rate", v),
    help="Share of late events (0-1).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
def run(events, users, seed, days, malformed_rate, duplicate_rate, late_rate, as_json) -> None:
    """The whole chain in one process: generate, ingest, transform, then the three syncs.

    Each stage is followed by its quality gate; a failed gate stops the chain (exit code 3) and
    names the stage and the expectations. The developer's loop: no Prefect server needed.
    """
    from searchflow.chain import run_chain

    options = {
        k: v
        for k, v in {
            "days": days,
            "malformed_rate": malformed_rate,
            "duplicate_rate": duplicate_rate,
            "late_rate": late_rate,
        }.items()
        if v is not None
    }
    summary = run_chain(
        get_settings(),
        events=events,
        users=users,
        seed=seed,
        echo=lambda line: click.echo(line, err=as_json),
        **options,
    )
    report(summary, as_json, lambda s: f"chain done in {s['seconds']:.2f}s (batch {s['batch_id']})")
