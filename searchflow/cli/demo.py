"""``searchflow demo``: the served chain end to end, on a real Prefect server, and where to look."""

from __future__ import annotations

import signal
import sys
from collections.abc import Mapping
from typing import Any

import click

from deployments.demo import DEMO_EVENTS, DEMO_USERS, FIRST_DEMO_BATCHES
from searchflow.output import format_table, report


def _human(summary: Mapping[str, Any]) -> str:
    from deployments.follow import format_rows

    out = []
    batches = summary.get("batches") or (
        [summary["generation"]] if summary.get("generation") else []
    )
    for number, batch in enumerate(batches, start=1):
        followed = f": {batch['outcome']} in {batch['seconds']:.0f} s" if "outcome" in batch else ""
        out.append(
            f"batch {number}/{len(batches)}: {batch['events']:,} events, {batch['users']:,} users, "
            f"seed {batch['seed']}, {batch['days']} days from {batch['start']}{followed}"
        )
    if len(batches) > 1:
        out.append("the table shows the last batch's chain")
    services = summary.get("services") or {}
    if services:
        out.append(f"Postgres: {services['postgres']}   Redis: {services['redis']}")
        if services.get("prefect_database"):
            out.append(f"Prefect server's database: {services['prefect_database']}")
        out.append("")
    out.append(format_rows(summary["runs"]))
    if summary["outcome"] == "completed":
        out.append("\nevery stage completed; the downstream runs were started by their triggers")
    else:
        out.append(
            f"\nchain {summary['outcome']} at {summary['stopped_at']}: {summary['reason']}\n"
            "nothing downstream of that stage ran"
        )
        if summary["outcome"] == "stalled":
            out.append(
                "a batch that was already ingested is nothing new: run `searchflow demo` without "
                "--seed (each run takes a new seed) or with a seed not used before"
            )
    if summary.get("hops"):
        hops = ", ".join(f"{h['to']} {h['seconds']:.1f}s" for h in summary["hops"])
        out.append(f"trigger hops (event -> next run running): {hops}")
    out.append("\nwhere to look:")
    out.append(format_table(summary["where"]))
    left = summary.get("left_running") or {}
    if left:
        out.append("\nleft running in the background (the next demo reuses them):")
        for role, entry in left.items():
            address = f" {entry['url']}" if entry.get("url") else ""
            out.append(f"  {role:<10} pid {entry['pid']}{address}")
        out.append("stop them with `make stop` or `searchflow stop`")
    return "\n".join(out)


@click.command()
@click.option(
    "--events",
    default=DEMO_EVENTS,
    show_default=True,
    type=click.IntRange(min=1),
    help="Events to generate.",
)
@click.option(
    "--users",
    default=DEMO_USERS,
    show_default=True,
    type=click.IntRange(min=1),
    help="Size of the simulated user pool.",
)
@click.option(
    "--seed",
    default=None,
    type=click.IntRange(min=0),
    help="Seed of the generated batch [default: the one after the last demo's, so each run "
    "brings a new batch].",
)
@click.option(
    "--batches",
    default=None,
    type=click.IntRange(min=1),
    help="Consecutive batches splitting the 90 days (and the events), each followed through the "
    f"chain before the next [default: {FIRST_DEMO_BATCHES} on a data folder without an earlier "
    "demo, so the segment history shows transitions at once; else 1].",
)
@click.option(
    "--pool", default=None, metavar="NAME", help="Process work pool (default searchflow-local)."
)
@click.option(
    "--timeout",
    default=900.0,
    show_default=True,
    type=click.FloatRange(min=1),
    help="Seconds to wait for each batch's chain to finish.",
)
@click.option(
    "--once",
    is_flag=True,
    help="Stop the server and worker this run started when it ends (by default they stay up, "
    "with the dashboards, until `searchflow stop`).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
def demo(
    events: int,
    users: int,
    seed: int | None,
    batches: int | None,
    pool: str | None,
    timeout: float,
    once: bool,
    as_json: bool,
) -> None:
    """Run the chain on a Prefect server: PREFECT_API_URL when set, else a local server started
    here. Creates the pool and the concurrency limit, deploys, starts a worker, generates a new
    batch over the last 90 days (the first demo of a data folder: several consecutive batches,
    one after the other) and follows the triggered runs to the last sync. The server, the
    worker and the dashboards stay up afterwards (reused by the next demo) until `searchflow stop`,
    unless --once. Exits 0 only if every stage completed."""
    from deployments.demo import default_batches, run_demo
    from searchflow.config import get_settings

    def progress(message: str) -> None:
        click.echo(message, err=True)

    settings = get_settings()
    if batches is None:
        batches = default_batches(settings.home_path)
    previous = _stop_on_sigterm()
    try:
        result = run_demo(
            settings, events, seed, pool, timeout, progress, once=once, users=users, batches=batches
        )
        summary = result.to_dict()
        report(summary, as_json, _human)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if not result.chain.ok:
        failed_gate = any(r.event.endswith(".failed") for r in result.chain.runs)
        # sys.exit, not ctx.exit: the console entry point runs click with standalone_mode=False,
        # which turns ctx.exit's code into a return value that nobody reads (exit 0)
        sys.exit(3 if failed_gate else 1)


def _stop_on_sigterm() -> Any:
    """SIGTERM unwinds like Ctrl-C, so what a ``--once`` demo started is stopped too (it runs in
    sessions of its own and would otherwise outlive a killed demo)."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, handler)
