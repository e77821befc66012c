"""``searchflow generate``: simulate search, click and conversion events into a sink."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import click

from searchflow.config import get_settings
from searchflow.contract import GENERATOR_DEFAULTS as DEFAULTS
from searchflow.contract import SINKS
from searchflow.output import check_rate, format_table, report


def _rate(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    return check_rate(param.name.replace("_", "-"), value)


def _human(summary: Mapping[str, Any]) -> str:
    head = (
        f"generated {summary['events']:,} events (batch {summary['batch_id']}) "
        f"into {summary['sink']}: {summary['out']}"
    )
    rows = {k: v for k, v in summary.items() if k not in {"batch_id", "sink", "out", "events"}}
    return head + "\n" + format_table(rows)


SIMULATION_OPTIONS = [
    click.option(
        "--events",
        type=int,
        default=DEFAULTS.events,
        show_default=True,
        help="Lines to emit, exactly (faults included).",
    ),
    click.option(
        "--users",
        type=int,
        default=DEFAULTS.users,
        show_default=True,
        help="Size of the user pool.",
    ),
    click.option(
        "--seed",
        type=int,
        default=DEFAULTS.seed,
        show_default=True,
        help="Same seed and arguments -> the same bytes.",
    ),
    click.option(
        "--start",
        default=None,
        help=f"First simulated day, YYYY-MM-DD [default: {DEFAULTS.start.isoformat()}].",
    ),
    click.option(
        "--days",
        type=int,
        default=DEFAULTS.days,
        show_default=True,
        help="Days in the simulated range.",
    ),
    click.option(
        "--click-through-rate",
        type=float,
        default=DEFAULTS.click_through_rate,
        show_default=True,
        callback=_rate,
    ),
    click.option(
        "--conversion-rate",
        type=float,
        default=DEFAULTS.conversion_rate,
        show_default=True,
        callback=_rate,
        help="Share of clicks that book.",
    ),
    *(
        click.option(
            f"--{name.replace('_', '-')}",
            type=float,
            default=getattr(DEFAULTS, name),
            show_default=True,
            callback=_rate,
        )
        for name in ("malformed_rate", "duplicate_rate", "late_rate")
    ),
]


def simulation_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The generator's options (volume, seed, range, funnel rates, faults), shared with `run`."""
    for option in reversed(SIMULATION_OPTIONS):
        command = option(command)
    return command


@click.command()
@simulation_options
@click.option("--sink", default=SINKS[0], show_default=True, help=f"{', '.join(SINKS)}.")
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder for --sink jsonl [default: $SEARCHFLOW_HOME/events].",
)
@click.option("--live", is_flag=True, help="Trickle events with current timestamps.")
@click.option(
    "--rate",
    type=float,
    default=DEFAULTS.rate,
    show_default=True,
    help="Events per second with --live.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
def generate(as_json: bool, sink: str, out: str | None, **options: Any) -> None:
    """Simulate search, click and conversion events (see generator/README.md).

    Bulk mode backfills --days from --start; --live trickles at --rate until --events are sent
    (or Ctrl-C).
    """
    from generator import run_generation

    summary = run_generation(get_settings(), sink=sink, out=out, **options)
    report(summary, as_json, _human)
