"""``searchflow generate``: simulate search, click and conversion events into a sink."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import click

from searchflow.cli.gating import gate_line, run_and_report
from searchflow.config import get_settings
from searchflow.contract import GENERATOR_DEFAULTS as DEFAULTS
from searchflow.contract import SINKS
from searchflow.output import check_rate, format_table


def _rate(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    return check_rate(param.name.replace("_", "-"), value)


def _human(summary: Mapping[str, Any]) -> str:
    where = (
        f"held in {summary['held']} (not sent to {summary['sink']})"
        if summary.get("held")
        else f"into {summary['sink']}: {summary['out']}"
    )
    head = f"generated {summary['events']:,} events (batch {summary['batch_id']}) {where}"
    skip = {"batch_id", "sink", "out", "events", "gate", "held"}
    rows = {k: v for k, v in summary.items() if k not in skip}
    return head + "\n" + format_table(rows) + "\n" + gate_line(summary)


SIMULATION_OPTIONS = [
    click.option(
        "--events",
        type=click.IntRange(min=1),
        default=DEFAULTS.events,
        show_default=True,
        help="Lines to emit, exactly (faults included).",
    ),
    click.option(
        "--users",
        type=click.IntRange(min=1),
        default=DEFAULTS.users,
        show_default=True,
        help="Size of the user pool.",
    ),
    click.option(
        "--seed",
        type=click.IntRange(min=0),
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
        type=click.IntRange(min=1),
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
        help="Share of searches followed by a click.",
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
            help=text,
        )
        for name, text in (
            ("malformed_rate", "Share of lines broken on purpose (dead letters at ingestion)."),
            ("duplicate_rate", "Share of lines re-sending an earlier event (ingestion keeps one)."),
            ("late_rate", "Share of events sent after later ones (out of order)."),
        )
    ),
]


def simulation_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The generator's options (volume, seed, range, funnel rates, faults), shared with `run`."""
    for option in reversed(SIMULATION_OPTIONS):
        command = option(command)
    return command


@click.command()
@simulation_options
@click.option(
    "--sink", type=click.Choice(SINKS), default=SINKS[0], show_default=True, help="Where to write."
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder for --sink jsonl [default: $SEARCHFLOW_HOME/events].",
)
@click.option("--live", is_flag=True, help="Trickle events with current timestamps.")
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULTS.rate,
    show_default=True,
    help="Events per second with --live.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
def generate(as_json: bool, sink: str, out: str | None, **options: Any) -> None:
    """Simulate search, click and conversion events (see generator/README.md).

    Bulk mode backfills --days from --start; --live trickles at --rate until --events are sent
    (or Ctrl-C). The generation gate judges the batch before it is sent: a failing batch is held
    (exit code 3) and `searchflow batches release ID` sends it later.
    """
    from pathlib import Path

    from flows.gated import gated_generate
    from generator import config_from_options

    settings = get_settings()
    config = config_from_options(**options)
    target = Path(out) if out else None
    run_and_report(lambda: gated_generate(settings, config, sink, target), as_json, _human)
